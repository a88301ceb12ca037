// Summaries over repeated cross-validation: the ± of a table cell with repeats is the spread of the per-repeat
// means (as MHIM-MIL reports it), not the spread of all folds, which mixes fold and repeat variance.

export interface RepeatValue {
  readonly repeat: number;
  readonly value: number | null | undefined;
}

export interface RepeatSummary {
  /** Mean of the per-repeat means (each repeat's mean over its folds with a finite value). */
  readonly mean: number | null;
  /** Sample standard deviation (n − 1) of the per-repeat means; null with fewer than two repeats. */
  readonly std: number | null;
  /** Repeats with at least one finite value. */
  readonly repeats: number;
  /** Per-repeat means, by repeat index. */
  readonly perRepeat: ReadonlyMap<number, number>;
}

/** Mean ± std of the per-repeat means of fold values tagged with their repeat. */
export function summarizeRepeats(values: readonly RepeatValue[]): RepeatSummary {
  const sums = new Map<number, { sum: number; n: number }>();
  for (const { repeat, value } of values) {
    if (typeof value !== 'number' || !Number.isFinite(value)) continue;
    const entry = sums.get(repeat) ?? { sum: 0, n: 0 };
    entry.sum += value;
    entry.n += 1;
    sums.set(repeat, entry);
  }
  const perRepeat = new Map([...sums.entries()].sort(([a], [b]) => a - b).map(([r, { sum, n }]) => [r, sum / n] as const));
  const means = [...perRepeat.values()];
  if (means.length === 0) return { mean: null, std: null, repeats: 0, perRepeat };
  const mean = means.reduce((a, b) => a + b, 0) / means.length;
  const std = means.length < 2 ? null : Math.sqrt(means.reduce((a, m) => a + (m - mean) ** 2, 0) / (means.length - 1));
  return { mean, std, repeats: means.length, perRepeat };
}

/** The median (mean of the two middle values for an even count); NaN for an empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
