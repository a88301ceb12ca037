import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { BackendError } from '../../../src/core/errors.js';
import { MemoryBudget, defaultMemoryLimit, modelStepProbe, parseByteSize, profilePeakBytes, type BudgetMode } from '../../../src/core/engine/memory-budget.js';
import { bagToTensors } from '../../../src/core/data/bags.js';
import { Rng } from '../../../src/core/runtime/random.js';
import type { BagData } from '../../../src/registry/contracts/data.js';
import { buildModel } from '../../helpers/zoo.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function bagData(n: number, d: number, seed = 1): BagData {
  const rng = new Rng(seed);
  const features = new Float32Array(n * d);
  for (let i = 0; i < features.length; i += 1) features[i] = rng.next() - 0.5;
  return { slideId: `s${n}`, n, d, features };
}

describe('engine/memory-budget: the arithmetic', () => {
  // A probe with a known line (1 MB fixed + 3 KB per instance) counts its calls.
  function lineProbe(): { probe: (n: number, mode: BudgetMode, data: BagData) => Promise<number>; calls: number[] } {
    const calls: number[] = [];
    return { calls, probe: async (n) => { calls.push(n); return 1_048_576 + 3072 * n; } };
  }

  it('fits fixed + per-instance bytes from two probes and extrapolates exactly for a linear model', async () => {
    const { probe, calls } = lineProbe();
    const budget = new MemoryBudget({ limit: { bytes: 1e12, what: 'test' }, model: 'toy', probe });
    expect(await budget.estimate(bagData(50_000, 1), 'train')).toBeCloseTo(1_048_576 + 3072 * 50_000, 3);
    expect(calls).toEqual([512, 2048]);
    expect(budget.estimateFor('train')).toEqual({ fixed: 1_048_576, perInstance: 3072, probedAt: [512, 2048] });
    await budget.estimate(bagData(10_000, 1), 'train');
    expect(calls).toHaveLength(2); // calibrated once per mode
  });

  it('passes small bags without probing, a bag just under the limit, and refuses one just over it before compute', async () => {
    const { probe, calls } = lineProbe();
    const limit = 1_048_576 + 3072 * 10_000; // exactly 10,000 instances fit
    const budget = new MemoryBudget({ limit: { bytes: limit, what: 'runtime.memoryLimit' }, model: 'toy-agg', probe, checkFrom: 4096 });
    await budget.check(bagData(4095, 1), 'train', 'fold 0, slide a');
    expect(calls).toEqual([]);
    await budget.check(bagData(10_000, 1), 'train', 'fold 0, slide b');
    await budget.check(bagData(20_000, 1), 'train', 'fold 0, slide b', 10_000); // cut to 10,000 by instance sampling
    const error = await budget.check(bagData(10_001, 1), 'train', 'fold 0, slide c').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendError);
    const e = error as BackendError;
    expect(e.exitCode).toBe(7);
    expect(e.code).toBe('memory-budget-exceeded');
    const text = e.render();
    for (const part of ['fold 0, slide c', 'toy-agg', 'N = 10,001', '30 MB', 'runtime.memoryLimit', 'About 10,000 instances fit', 'data.maxInstances', 'tensorflow backend', 'smaller model']) {
      expect(text).toContain(part);
    }
  });

  it("raises the estimate to the aggregator's measured floor: just under it passes, just over fails before compute", async () => {
    const { probe } = lineProbe(); // 1 MB + 3 KB per instance
    const floor = (n: number, mode: BudgetMode): number | undefined => (mode === 'train' ? 5000 * n : undefined); // above the line from 512 instances
    const limit = 5000 * 20_000; // the floor reaches it at exactly 20,000 instances
    const budget = new MemoryBudget({ limit: { bytes: limit, what: 'runtime.memoryLimit' }, model: 'floored', probe, floor, checkFrom: 4096 });
    expect(await budget.estimate(bagData(30_000, 1), 'train')).toBe(5000 * 30_000);
    expect(await budget.estimate(bagData(30_000, 1), 'eval')).toBeCloseTo(1_048_576 + 3072 * 30_000, 3); // no floor: the line
    await budget.check(bagData(20_000, 1), 'train', 'fold 0, slide under');
    const error = await budget.check(bagData(20_001, 1), 'train', 'fold 0, slide over').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendError);
    const text = (error as BackendError).render();
    // The line alone would let about 32,200 instances in; the floor's bisection finds the real largest count.
    expect(text).toContain('About 20,000 instances fit');
    expect(text).toContain('the wasm heap this aggregator was measured to need at this size');
    expect(text).toContain('N = 20,001');
  });

  it('cuts the probes below small bags so they never exceed the bag', async () => {
    const { probe, calls } = lineProbe();
    const budget = new MemoryBudget({ limit: { bytes: 1e12, what: 't' }, model: 'toy', probe, checkFrom: 100 });
    await budget.check(bagData(1000, 1), 'eval', 'x');
    expect(calls).toEqual([125, 500]);
  });

  it('reads sizes and picks the backend limit', () => {
    expect(parseByteSize('3.5GB')).toBe(3.5 * 1024 ** 3);
    expect(parseByteSize('512 mb')).toBe(512 * 1024 ** 2);
    expect(parseByteSize(1000)).toBe(1000);
    expect(parseByteSize('lots')).toBeUndefined();
    expect(parseByteSize(-1)).toBeUndefined();
    expect(defaultMemoryLimit('wasm').bytes).toBe(Math.floor(4_294_901_760 * 0.85));
    expect(defaultMemoryLimit('wasm', 123).bytes).toBe(123);
  });
});

describe('engine/memory-budget: probing real models', () => {
  // The estimate from probes at 32 and 128 instances against the measured peak of the same step at larger N.
  for (const spec of [
    { name: 'abmil', aggregator: { name: 'abmil', dropout: 0 }, losses: { bag: { name: 'cross-entropy', weight: 1 } } },
    { name: 'dsmil', aggregator: { name: 'dsmil' }, losses: { bag: { name: 'binary-cross-entropy', weight: 0.5 }, max: { name: 'dsmil-max-instance', weight: 0.5 } } },
  ] as const) {
    it(`${spec.name}: the training-step estimate is within ±25 % of the measured peak at three bag sizes`, async () => {
      const d = 48;
      const model = await buildModel({ inputDim: d, numClasses: 2, aggregator: spec.aggregator, losses: spec.losses });
      const variables = model.namedTrainable().map(([, v]) => v);
      const before = tf.memory().numTensors;
      for (const n of [600, 1200, 2400]) {
        const data = bagData(n, d);
        const probe = modelStepProbe({ model, label: 1, numClasses: 2, views: [], variables, rng: new Rng(5) });
        const budget = new MemoryBudget({ limit: { bytes: 1e12, what: 't' }, model: spec.name, probe, probeSizes: [32, 128], checkFrom: 0 });
        const estimate = await budget.estimate(data, 'train');
        const bag = bagToTensors(data);
        const measured = await profilePeakBytes(() => {
          const { value, grads } = tf.variableGrads(() => model.losses(model.forward(bag, { training: true, rng: new Rng(5) }), 1, 2).total, variables);
          return [value, ...Object.values(grads)];
        });
        bag.features.dispose();
        expect(estimate / measured, `N = ${n}: estimate ${estimate} vs measured ${measured}`).toBeGreaterThan(0.75);
        expect(estimate / measured, `N = ${n}: estimate ${estimate} vs measured ${measured}`).toBeLessThan(1.25);
      }
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('probing changes nothing: parameters, buffers and the training mode are as before', async () => {
    const model = await buildModel({ inputDim: 32, numClasses: 2, aggregator: { name: 'abmil' }, losses: { bag: { name: 'cross-entropy', weight: 1 } } });
    model.setTraining(false);
    const snapshot = model.namedTensors().map(([name, e]) => [name, Array.from(e.variable.dataSync())] as const);
    const data = bagData(300, 32);
    const probe = modelStepProbe({ model, label: 0, numClasses: 2, views: [], variables: model.namedTrainable().map(([, v]) => v), rng: new Rng(1) });
    expect(await probe(100, 'train', data)).toBeGreaterThan(0);
    expect(await probe(100, 'eval', data)).toBeGreaterThan(0);
    expect(model.training).toBe(false);
    for (const [name, values] of snapshot) expect(Array.from(model.namedTensors().find(([n]) => n === name)![1].variable.dataSync()), name).toEqual(values);
  });
});
