// dataset/mnist-hierarchical: balanced fine classes, the fine → coarse hierarchy, key digits as instance labels,
// background digits only besides the key, disjoint train/test digit pools, the images view, and option errors.
import { describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { MnistHierarchicalOptions, planHierarchicalBags } from '../../../plugins/datasets/mnist-hierarchical.js';
import { digitPools } from '../../../plugins/datasets/mnist-bags.js';
import { validateSource } from '../../../src/core/data/bags.js';
import { loadMnistDigits } from '../../../src/core/data/mnist.js';
import { ConfigError } from '../../../src/core/errors.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { Registry, type BagSource } from '../../../src/registry/index.js';

const registry = new Registry(builtinManifest());

async function source(options: Record<string, unknown> = {}, seed = 0): Promise<BagSource> {
  const resolved = await registry.resolve('dataset', { name: 'mnist-hierarchical', ...options }, { key: 'data.dataset' });
  return registry.create(resolved, { seed, logger: new MemoryLogger(), baseDir: '.' });
}

describe('dataset/mnist-hierarchical', () => {
  const digits = loadMnistDigits();

  it('plans balanced fine classes, each bag holding k ∈ [min, max] key digits and otherwise background digits only', () => {
    const options = MnistHierarchicalOptions.parse({ keyInstances: [2, 4] });
    const pools = digitPools(digits.labels, 0.2, new Rng(1));
    const bags = planHierarchicalBags(pools.train, digits.labels, 600, 'train', options, new Rng(2));
    expect(bags.map((b) => b.fine).slice(0, 7)).toEqual([0, 1, 2, 3, 4, 5, 0]);
    for (let fine = 0; fine < 6; fine += 1) expect(bags.filter((b) => b.fine === fine)).toHaveLength(100);
    for (const bag of bags) {
      const present = bag.rows.map((r) => digits.labels[r] as number);
      const keyCount = present.filter((d) => d === bag.key).length;
      expect(keyCount).toBeGreaterThanOrEqual(2);
      expect(keyCount).toBeLessThanOrEqual(4);
      expect(present.every((d) => d === bag.key || [6, 7, 8, 9].includes(d))).toBe(true);
      expect(new Set(bag.rows.filter((r) => digits.labels[r] === bag.key)).size, 'key digits are distinct images').toBe(keyCount);
    }
    // Every count in [2, 4] occurs.
    const counts = new Set(bags.map((b) => b.rows.filter((r) => digits.labels[r] === b.key).length));
    expect([...counts].sort()).toEqual([2, 3, 4]);
  });

  it('serves fine labels with the fine → coarse hierarchy, key digits as instance labels and a 28×28×1 images view', async () => {
    const src = await source({ trainBags: 12, testBags: 6, groups: [[0, 6], [1, 7], [3]], coarseNames: ['round', 'straight', 'three'], background: [2, 5] });
    expect(src.classNames).toEqual(['digit-0', 'digit-6', 'digit-1', 'digit-7', 'digit-3']);
    expect(src.hierarchy).toEqual({ coarseNames: ['round', 'straight', 'three'], fineToCoarse: [0, 0, 1, 1, 2] });
    const slide = src.slides.find((s) => s.label === 3);
    expect(slide?.meta).toMatchObject({ coarse_label: 'straight', fine_label: 'digit-7', split: 'train' });
    const bag = await src.load(slide?.slideId ?? '');
    const present = (slide?.meta['digits'] ?? '').split(' ').map(Number);
    expect(Array.from(bag.instanceLabels ?? [])).toEqual(present.map((d) => (d === 7 ? 1 : 0)));
    expect(bag.views?.['images']?.shape).toEqual([bag.n, 28, 28, 1]);
    expect(bag.views?.['images']?.data).toBe(bag.features);
    expect(src.slides.filter((s) => s.meta['split'] === 'test')).toHaveLength(6);
    expect((await validateSource(src, { inputDim: 784, onBadSlide: 'error', logger: new MemoryLogger() })).slides).toHaveLength(18);
  });

  it('draws train and test bags from disjoint digit pools', async () => {
    const options = MnistHierarchicalOptions.parse({});
    const pools = digitPools(digits.labels, 0.2, new Rng(1));
    const train = planHierarchicalBags(pools.train, digits.labels, 60, 'train', options, new Rng(2));
    const test = planHierarchicalBags(pools.test, digits.labels, 60, 'test', options, new Rng(3));
    const trainRows = new Set(train.flatMap((b) => b.rows));
    expect(test.flatMap((b) => b.rows).some((r) => trainRows.has(r))).toBe(false);
  });

  it('rejects a background digit that is also a key digit, naming the key', async () => {
    await expect(source({ background: [3, 8] })).rejects.toThrow(ConfigError);
    await expect(source({ background: [3, 8] })).rejects.toThrow(/data\.dataset\.background: digit\(s\) 3 are key digits/);
    await expect(source({ groups: [[0, 1], [1, 2]] })).rejects.toThrow(/key digit appears twice/);
  });
});
