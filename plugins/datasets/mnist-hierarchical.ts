/**
 * Hierarchical MNIST bags (dataset/mnist-hierarchical)
 * Paper: a two-level MIL task built from Ilse et al.'s MNIST-bags (ICML 2018, arXiv:1802.04712) for HMIL-style
 *   hierarchical models (Jin et al., IEEE TMI 2025): the fine class is the key digit a bag holds, the coarse class
 *   the group of that digit (docs/methods/abmil.md#hierarchical-mnist-bags)
 * Implements: bag b gets fine class b mod F (F key digits, classes balanced); |bag| = max(k, trunc(N(μ, σ²))),
 *   k ~ U{keyInstances} copies of the key digit (distinct draws), the rest background digits (never a key digit),
 *   rows shuffled; instance label 1 on the key digits
 * Symbols: x [N, 784] normalised pixels (x − 0.1307) / 0.3081 · images [N, 28, 28, 1] the same pixels (view
 *   `images`, read by encoder/lenet-mnist) · y fine class index · coarse class via `hierarchy.fineToCoarse`
 * Choices: class names `digit-<d>`; coarse names from `coarseNames`; meta coarse_label / fine_label / split /
 *   digits as synthetic-hierarchical; train and test bags come from disjoint digit pools (per digit class, a seeded
 *   `testPoolFraction` of the 10,000 shipped digits is reserved for test bags, marked split=test for
 *   `split.mode: official-test`)
 * Checked against: label, hierarchy, key-digit and pool-disjointness checks in
 *   test/plugins/datasets/mnist-hierarchical.test.ts; golden fingerprint (test/reference/goldens_datasets.ts)
 */
import { z } from 'zod';
import { applyDeclaredLabels, ConfigError, definePlugin, GeneratedBagSource, loadMnistDigits, MNIST_PIXELS, MNIST_SIDE, Rng, type BagData, type SlideRecord } from 'milkit';
import { bagLength, digitPools, writeNormalisedDigit } from './_shared/mnist.js';

const Digit = z.int().min(0).max(9);

export const MnistHierarchicalOptions = z.strictObject({
  groups: z.array(z.array(Digit).min(1)).min(2).default([[0, 1, 2], [3, 4, 5]]).describe('coarse classes as groups of key digits; the fine classes are the key digits in this order'),
  coarseNames: z.array(z.string().min(1)).optional().describe('names of the coarse classes (default group-0, group-1, ...)'),
  background: z.array(Digit).min(1).default([6, 7, 8, 9]).describe('digits that fill the bags besides the key digit (never a key digit)'),
  keyInstances: z.tuple([z.int().min(1), z.int().min(1)]).default([1, 3]).describe('[min, max] copies of the key digit per bag (uniform)'),
  meanBagSize: z.number().positive().max(10_000).default(10).describe('μ: mean bag length'),
  stdBagSize: z.number().min(0).max(10_000).default(2).describe('σ: standard deviation of the bag length'),
  trainBags: z.int().min(1).max(100_000).default(300).describe('number of training bags (classes balanced)'),
  testBags: z.int().min(0).max(100_000).default(300).describe('number of test bags (split=test in the table)'),
  testPoolFraction: z.number().gt(0).lt(1).default(0.2).describe('share of each digit class reserved for test bags (pools are disjoint)'),
  seed: z.int().min(0).optional().describe('data seed; defaults to the experiment seed'),
});
export type MnistHierarchicalOptions = z.output<typeof MnistHierarchicalOptions>;

export interface HierarchicalBagPlan {
  readonly id: string;
  readonly split: 'train' | 'test';
  /** Row indices into the shipped digits, in bag order. */
  readonly rows: number[];
  /** Fine class index (position of the key digit in the flattened groups). */
  readonly fine: number;
  /** The key digit. */
  readonly key: number;
}

/** Checks the options' digits: key digits distinct, background disjoint from them, names matching groups. */
export function checkHierarchyOptions(options: MnistHierarchicalOptions): void {
  const keys = options.groups.flat();
  const fail = (key: string, message: string, hint: string): never => {
    throw new ConfigError('invalid-dataset-options', `data.dataset.${key}: ${message}`, { hint });
  };
  if (new Set(keys).size !== keys.length) fail('groups', `a key digit appears twice in ${JSON.stringify(options.groups)}.`, 'List every key digit in one group only.');
  const clash = options.background.filter((d) => keys.includes(d));
  if (clash.length > 0) fail('background', `digit(s) ${clash.join(', ')} are key digits too, so a bag could hold two fine classes.`, 'Keep background digits out of groups.');
  if (options.coarseNames && options.coarseNames.length !== options.groups.length) {
    fail('coarseNames', `${options.coarseNames.length} names for ${options.groups.length} groups.`, 'Give one name per group, or leave coarseNames out.');
  }
  if (options.keyInstances[0] > options.keyInstances[1]) fail('keyInstances', `min ${options.keyInstances[0]} exceeds max ${options.keyInstances[1]}.`, 'Write [min, max] with min ≤ max.');
}

/** The bags of one split: fine class b mod F, k key digits among background digits, shuffled. */
export function planHierarchicalBags(pool: readonly number[], labels: Uint8Array, count: number, split: 'train' | 'test', options: MnistHierarchicalOptions, rng: Rng): HierarchicalBagPlan[] {
  const keys = options.groups.flat();
  const byDigit = new Map<number, number[]>(Array.from({ length: 10 }, (_, d) => [d, pool.filter((r) => labels[r] === d)] as const));
  const background = pool.filter((r) => options.background.includes(labels[r] as number));
  const [kMin, kMax] = options.keyInstances;
  const width = String(Math.max(count - 1, 0)).length;
  const plans: HierarchicalBagPlan[] = [];
  for (let b = 0; b < count; b += 1) {
    const fine = b % keys.length;
    const key = keys[fine] as number;
    const keyPool = byDigit.get(key) as number[];
    const k = kMin + rng.int(kMax - kMin + 1);
    const length = Math.max(k, bagLength(options.meanBagSize, options.stdBagSize, rng));
    const keyRows = rng.shuffle([...keyPool]).slice(0, k);
    const fill = Array.from({ length: length - keyRows.length }, () => background[rng.int(background.length)] as number);
    plans.push({ id: `${split}-${String(b).padStart(width, '0')}`, split, rows: rng.shuffle([...keyRows, ...fill]), fine, key });
  }
  return plans;
}

export default definePlugin({
  kind: 'dataset',
  name: 'mnist-hierarchical',
  summary: 'two-level MNIST bags: fine class = the key digit a bag holds, coarse class = its digit group; disjoint train/test pools',
  paper: { cite: 'Ilse, Tomczak, Welling, Attention-based Deep Multiple Instance Learning, ICML 2018 (MNIST-bags, extended to two label levels)', arxiv: '1802.04712' },
  options: MnistHierarchicalOptions,
  capabilities: { instanceLabels: true, thumbs: false, coords: false, views: ['images'] },
  create: (options, ctx) => {
    checkHierarchyOptions(options);
    const digits = loadMnistDigits();
    const root = new Rng(`mnist-hierarchical/${options.seed ?? ctx.seed}`);
    const pools = digitPools(digits.labels, options.testPoolFraction, root.fork('pools'));
    const plans = [
      ...planHierarchicalBags(pools.train, digits.labels, options.trainBags, 'train', options, root.fork('train')),
      ...planHierarchicalBags(pools.test, digits.labels, options.testBags, 'test', options, root.fork('test')),
    ];
    const keys = options.groups.flat();
    const fineNames = keys.map((d) => `digit-${d}`);
    const coarseNames = options.coarseNames ?? options.groups.map((_, g) => `group-${g}`);
    const coarseOfDigit = new Map<number, number>(options.groups.flatMap((group, g) => group.map((d) => [d, g] as const)));
    const byId = new Map(plans.map((p) => [p.id, p] as const));
    const slides: SlideRecord[] = plans.map((p) => ({
      slideId: p.id,
      caseId: p.id,
      label: p.fine,
      labelName: fineNames[p.fine] as string,
      meta: {
        split: p.split,
        coarse_label: coarseNames[coarseOfDigit.get(p.key) as number] as string,
        fine_label: fineNames[p.fine] as string,
        digits: p.rows.map((r) => String(digits.labels[r])).join(' '),
      },
    }));
    const generate = (slide: SlideRecord): BagData => {
      const plan = byId.get(slide.slideId) as HierarchicalBagPlan;
      const n = plan.rows.length;
      const features = new Float32Array(n * MNIST_PIXELS);
      plan.rows.forEach((row, i) => writeNormalisedDigit(digits, row, features, i));
      const instanceLabels = Uint8Array.from(plan.rows, (r) => (digits.labels[r] === plan.key ? 1 : 0));
      return { slideId: slide.slideId, n, d: MNIST_PIXELS, features, instanceLabels, views: { images: { data: features, shape: [n, MNIST_SIDE, MNIST_SIDE, 1] } } };
    };
    const table = applyDeclaredLabels(slides, fineNames, ctx.labelMap, ctx.logger);
    // With a declared label map the classes may be re-indexed: the hierarchy follows the fine names.
    const fineToCoarse = table.classNames.map((name) => coarseOfDigit.get(keys[fineNames.indexOf(name)] as number) as number);
    return Promise.resolve(new GeneratedBagSource(table.slides, MNIST_PIXELS, table.classNames, generate, ctx.cacheBytes ?? 256 * 1024 ** 2, 'mnist-hierarchical', { coarseNames, fineToCoarse }));
  },
});
