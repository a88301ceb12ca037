// The order in which one training epoch visits the bags: a seeded shuffle, or the class-balanced sampling of
// CLAM and HDMIL (torch WeightedRandomSampler with weight N / N_class per bag, N draws with replacement;
// docs/methods/training.md#class-balanced-sampling), under which every class is drawn with probability 1 / C per draw.
import { DataError } from '../errors.js';
import type { Rng } from '../runtime/random.js';

export interface EpochOrderOptions {
  /** Draw with replacement, weight N / N_class per bag, instead of shuffling. */
  readonly balanced: boolean;
  /** The epoch's random stream (fork one per epoch so a resumed run draws the same orders). */
  readonly rng: Rng;
}

/** One epoch's bag order (indices into `labels`, length N): a shuffle, or class-balanced draws with replacement. */
export function epochOrder(labels: readonly number[], opts: EpochOrderOptions): number[] {
  const n = labels.length;
  labels.forEach((label, i) => {
    if (!Number.isInteger(label) || label < 0) {
      throw new DataError('invalid-label', `bag ${i} has label ${label}; sampling needs class indices 0, 1, 2, ...`, {
        hint: 'Map the slide table labels to class indices before training.',
      });
    }
  });
  if (!opts.balanced) return opts.rng.shuffle(Array.from({ length: n }, (_, i) => i));

  const classSize = new Map<number, number>();
  for (const label of labels) classSize.set(label, (classSize.get(label) ?? 0) + 1);
  // Cumulative weights w_i = N / N_{y_i} (summing to N * C); each draw inverts the CDF by binary search.
  const cumulative = new Float64Array(n);
  let total = 0;
  labels.forEach((label, i) => {
    total += n / (classSize.get(label) as number);
    cumulative[i] = total;
  });
  const order = new Array<number>(n);
  for (let draw = 0; draw < n; draw += 1) {
    const target = opts.rng.next() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cumulative[mid] as number) > target) hi = mid;
      else lo = mid + 1;
    }
    order[draw] = lo;
  }
  return order;
}
