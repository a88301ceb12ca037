import { describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { Registry, type Metric, type MetricInput } from '../../../src/registry/index.js';
import { Rng } from '../../../src/core/runtime/random.js';

const registry = new Registry(builtinManifest());
const ids = registry.ids('metric');

async function build(id: string, numClasses: number): Promise<Metric> {
  const resolved = await registry.resolve('metric', { name: id.slice('metric/'.length) }, { key: 'eval.metrics' });
  return registry.create(resolved, { numClasses });
}

function randomInput(n: number, numClasses: number, seed: number): MetricInput {
  const rng = new Rng(seed);
  const labels = Array.from({ length: n }, (_, i) => (i < numClasses ? i : rng.int(numClasses)));
  const probs = labels.map(() => {
    const raw = Array.from({ length: numClasses }, () => rng.next() + 1e-3);
    const total = raw.reduce((a, b) => a + b, 0);
    return raw.map((v) => v / total);
  });
  return { labels, probs, numClasses };
}

describe('metric plugin contract', () => {
  it('finds the built-in metrics', () => {
    expect(ids).toEqual(expect.arrayContaining(['metric/auc', 'metric/accuracy', 'metric/balanced-accuracy', 'metric/f1', 'metric/kappa', 'metric/kappa-quadratic', 'metric/precision', 'metric/recall']));
  });

  describe.each(ids)('%s', (id) => {
    it.each([2, 3, 5])('scores perfect predictions 1 and stays in [-1, 1] on random ones (C = %i)', async (numClasses) => {
      const metric = await build(id, numClasses);
      const labels = Array.from({ length: 12 }, (_, i) => i % numClasses);
      const perfect = metric.compute({ labels, probs: labels.map((y) => Array.from({ length: numClasses }, (_, c) => (c === y ? 0.9 : 0.1 / (numClasses - 1)))), numClasses });
      expect(perfect.value).toBeCloseTo(1, 12);
      for (let seed = 0; seed < 5; seed += 1) {
        const v = metric.compute(randomInput(30, numClasses, seed)).value;
        expect(v).not.toBeNull();
        expect(v as number).toBeGreaterThanOrEqual(-1);
        expect(v as number).toBeLessThanOrEqual(1);
      }
    });

    it('does not depend on the order of the slides', async () => {
      const metric = await build(id, 3);
      const input = randomInput(25, 3, 11);
      const order = new Rng('perm').shuffle(Array.from({ length: 25 }, (_, i) => i));
      const permuted = { labels: order.map((i) => input.labels[i] as number), probs: order.map((i) => input.probs[i] as number[]), numClasses: 3 };
      expect(metric.compute(permuted).value).toBeCloseTo(metric.compute(input).value as number, 12);
    });

    it('reports an empty input as undefined with a reason', async () => {
      const value = (await build(id, 2)).compute({ labels: [], probs: [], numClasses: 2 });
      expect(value.value).toBeNull();
      if (value.value === null) expect(value.reason).toBe('no slides');
    });

    it('declares a direction for model selection', async () => {
      const description = await registry.describe(id);
      expect(description.capabilities['higherIsBetter']).toBe(true);
    });
  });
});
