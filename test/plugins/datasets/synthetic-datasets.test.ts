import { describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { digitPools, planBags, MnistBagsOptions } from '../../../plugins/datasets/mnist-bags.js';
import { validateSource } from '../../../src/core/data/bags.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { loadMnistDigits } from '../../../src/core/data/mnist.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { Registry, type BagSource } from '../../../src/registry/index.js';

const registry = new Registry(builtinManifest());

async function source(name: string, options: Record<string, unknown> = {}, seed = 0): Promise<BagSource> {
  const resolved = await registry.resolve('dataset', { name, ...options }, { key: 'data.dataset' });
  return registry.create(resolved, { seed, logger: new MemoryLogger(), baseDir: '.' });
}

/**
 * Per label, the mean over slides of (mean lesion instance − mean normal instance of the same slide): the
 * lesion shift with the slide's own background and offset removed.
 */
async function lesionMeans(src: BagSource): Promise<Map<number, Float64Array>> {
  const sums = new Map<number, { sum: Float64Array; n: number }>();
  for (const s of src.slides) {
    const bag = await src.load(s.slideId);
    const lesion = new Float64Array(bag.d);
    const normal = new Float64Array(bag.d);
    let nLesion = 0;
    for (let i = 0; i < bag.n; i += 1) {
      const isLesion = bag.instanceLabels?.[i] === 1;
      const target = isLesion ? lesion : normal;
      for (let j = 0; j < bag.d; j += 1) target[j] = (target[j] as number) + (bag.features[i * bag.d + j] as number);
      if (isLesion) nLesion += 1;
    }
    if (nLesion === 0 || nLesion === bag.n) continue;
    const acc = sums.get(s.label) ?? { sum: new Float64Array(bag.d), n: 0 };
    for (let j = 0; j < bag.d; j += 1) acc.sum[j] = (acc.sum[j] as number) + (lesion[j] as number) / nLesion - (normal[j] as number) / (bag.n - nLesion);
    acc.n += 1;
    sums.set(s.label, acc);
  }
  return new Map([...sums].map(([label, v]) => [label, v.sum.map((x) => x / v.n)]));
}

const distance = (a: Float64Array, b: Float64Array): number => Math.sqrt(a.reduce((acc, v, j) => acc + (v - (b[j] as number)) ** 2, 0));

describe('dataset/synthetic-subtyping', () => {
  it('gives most instances the subtype signal and separates subtypes by 2σ_s along the subtype axis', async () => {
    const src = await source('synthetic-subtyping', { slides: 24, instances: [60, 120] });
    expect(src.classNames).toEqual(['TCGA-LUSC', 'TCGA-LUAD']);
    expect(src.slides.filter((s) => s.label === 1)).toHaveLength(12);
    for (const s of src.slides) {
      const bag = await src.load(s.slideId);
      const fraction = Array.from(bag.instanceLabels ?? []).reduce((a, b) => a + b, 0) / bag.n;
      expect(fraction).toBeGreaterThanOrEqual(0.39);
      expect(fraction).toBeLessThanOrEqual(0.91);
    }
    const means = await lesionMeans(src);
    // LUAD − LUSC = 2·1.5 along b_2 (per-slide offsets and background mixes add a little noise).
    expect(distance(means.get(0) as Float64Array, means.get(1) as Float64Array)).toBeGreaterThan(2.6);
    expect(distance(means.get(0) as Float64Array, means.get(1) as Float64Array)).toBeLessThan(3.4);
  });
});

describe('dataset/synthetic-hierarchical', () => {
  it('exposes 3 coarse over 7 fine classes, consistent with the table', async () => {
    const src = await source('synthetic-hierarchical', { slides: 28, instances: [40, 80] });
    expect(src.classNames).toEqual(['N', 'PB', 'UDH', 'FEA', 'ADH', 'DCIS', 'IC']);
    expect(src.hierarchy).toEqual({ coarseNames: ['benign', 'atypical', 'malignant'], fineToCoarse: [0, 0, 0, 1, 1, 2, 2] });
    for (const s of src.slides) {
      expect(s.meta['fine_label']).toBe(s.labelName);
      expect(s.meta['coarse_label']).toBe(src.hierarchy?.coarseNames[src.hierarchy.fineToCoarse[s.label] as number]);
    }
    expect(src.slides.filter((s) => s.label === 3)).toHaveLength(4);
  });

  it('puts fine classes of one coarse class closer together than classes of different coarse classes', async () => {
    // Big bags: the mean of ~60 lesion instances leaves ~0.3 of noise norm per class in 64 dimensions.
    const src = await source('synthetic-hierarchical', { slides: 70, instances: [300, 400] });
    const means = await lesionMeans(src);
    expect(means.has(0)).toBe(false); // N holds no lesion
    const m = (j: number) => means.get(j) as Float64Array;
    // Same coarse class: √2·a_f ≈ 1.70; different coarse classes: √(2a_c² + 2a_f²) ≈ 3.92.
    for (const [a, b] of [[1, 2], [3, 4], [5, 6]] as const) {
      expect(distance(m(a), m(b))).toBeGreaterThan(1.3);
      expect(distance(m(a), m(b))).toBeLessThan(2.1);
    }
    for (const [a, b] of [[1, 3], [2, 5], [4, 6]] as const) {
      expect(distance(m(a), m(b))).toBeGreaterThan(3.4);
      expect(distance(m(a), m(b))).toBeLessThan(4.4);
    }
  });
});

describe('dataset/mnist-bags', () => {
  const digits = loadMnistDigits();

  it('ships 10,000 digits and splits them into disjoint train/test pools per class', () => {
    expect(digits.count).toBe(10000);
    const pools = digitPools(digits.labels, 0.2, new Rng(1));
    expect(pools.train.length + pools.test.length).toBe(10000);
    const train = new Set(pools.train);
    expect(pools.test.some((r) => train.has(r))).toBe(false);
    // 978 nines → round(195.6) = 196 test nines.
    expect(pools.test.filter((r) => digits.labels[r] === 9)).toHaveLength(196);
  });

  it('draws bags of length max(1, trunc(N(μ, σ²))) labelled by the presence of a 9 (quick generator)', () => {
    const options = MnistBagsOptions.parse({});
    const pools = digitPools(digits.labels, 0.2, new Rng(1));
    const bags = planBags(pools.train, digits.labels, 2000, 'train', options, new Rng(2));
    const lengths = bags.map((b) => b.rows.length);
    const mean = lengths.reduce((a, b) => a + b, 0) / lengths.length;
    // E[trunc(N(10, 4))] ≈ 9.5 (truncation towards zero), sd ≈ 2.
    expect(mean).toBeGreaterThan(9.3);
    expect(mean).toBeLessThan(9.7);
    for (const b of bags) expect(b.label).toBe(b.rows.some((r) => digits.labels[r] === 9) ? 1 : 0);
    // P(positive) = 1 − (1 − 0.0978)^|bag| ≈ 0.62 for |bag| ≈ 9.5: the quick generator is unbalanced.
    const positive = bags.filter((b) => b.label === 1).length / bags.length;
    expect(positive).toBeGreaterThan(0.55);
    expect(positive).toBeLessThan(0.68);
    const trainRows = new Set(pools.train);
    expect(bags.every((b) => b.rows.every((r) => trainRows.has(r)))).toBe(true);
  });

  it('alternates positive and negative bags with the balanced generator', () => {
    const options = MnistBagsOptions.parse({ generator: 'balanced', stdBagSize: 1 });
    const pools = digitPools(digits.labels, 0.2, new Rng(1));
    const bags = planBags(pools.test, digits.labels, 40, 'test', options, new Rng(3));
    expect(bags.map((b) => b.label)).toEqual(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? 1 : 0)));
  });

  it('serves normalised pixels with instance labels, test bags marked split=test', async () => {
    const src = await source('mnist-bags', { trainBags: 20, testBags: 10 });
    expect(src.featureDim).toBe(784);
    expect(src.slides.filter((s) => s.meta['split'] === 'test').map((s) => s.slideId)).toEqual(Array.from({ length: 10 }, (_, i) => `test-${i}`));
    const bag = await src.load('train-00');
    const digitsInBag = (src.slides[0]?.meta['digits'] ?? '').split(' ').map(Number);
    expect(digitsInBag).toHaveLength(bag.n);
    expect(Array.from(bag.instanceLabels ?? [])).toEqual(digitsInBag.map((d) => (d === 9 ? 1 : 0)));
    // Background pixels are 0 → (0 − 0.1307) / 0.3081.
    expect(Math.min(...bag.features)).toBeCloseTo(-0.1307 / 0.3081, 5);
    // The same pixels as digits for an encoder (view `images`), sharing the features' buffer.
    expect(bag.views?.['images']?.shape).toEqual([bag.n, 28, 28, 1]);
    expect(bag.views?.['images']?.data).toBe(bag.features);
    expect((await validateSource(src, { inputDim: 784, onBadSlide: 'error', logger: new MemoryLogger() })).slides).toHaveLength(30);
  });
});
