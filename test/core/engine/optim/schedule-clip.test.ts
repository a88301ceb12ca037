import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { clipByGlobalNorm, clipGradientsByGlobalNorm, learningRateAt } from '../../../../src/core/engine/optim/index.js';
import { TrainSection } from '../../../../src/core/engine/schema.js';
import { expectClose, loadOptimFixture } from './fixture.js';

const fixture = loadOptimFixture();

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('core/engine/optim learningRateAt', () => {
  it.each(fixture.schedules.map((s) => [s.name, s] as const))('%s equals the torch scheduler epoch by epoch', (_name, s) => {
    const train = TrainSection.parse(s.train);
    const ours = s.lrs.map((_, epoch) => learningRateAt(train, epoch));
    // torch steps its schedulers recursively (lr *= ratio), we use the closed form: equal up to float64 rounding.
    expectClose(ours, s.lrs, 0, 1e-12, s.name);
  });

  it('hand values: MHIM-MIL v1 cosine over 200 epochs, DTFD-MIL MultiStepLR at epoch 100', () => {
    const mhim = TrainSection.parse({ epochs: 200, schedule: 'cosine', optimizer: { lr: 2e-4 } });
    expect(learningRateAt(mhim, 0)).toBe(2e-4);
    expect(learningRateAt(mhim, 100)).toBeCloseTo(1e-4, 18); // cos(pi/2) = 0: halfway
    expect(learningRateAt(mhim, 199)).toBeCloseTo(2e-4 * (1 + Math.cos((Math.PI * 199) / 200)) / 2, 18);
    const dtfd = TrainSection.parse({ epochs: 200, schedule: 'step', milestones: [100], gamma: 0.2, optimizer: { lr: 1e-4 } });
    expect(learningRateAt(dtfd, 99)).toBe(1e-4);
    expect(learningRateAt(dtfd, 100)).toBeCloseTo(2e-5, 18);
    expect(learningRateAt(dtfd, 199)).toBeCloseTo(2e-5, 18);
  });

  it('rejects fractional or negative epochs', () => {
    const train = TrainSection.parse({});
    expect(() => learningRateAt(train, -1)).toThrow('epoch must be an integer >= 0 (got -1)');
    expect(() => learningRateAt(train, 1.5)).toThrow('epoch must be an integer >= 0 (got 1.5)');
  });
});

describe('core/engine/optim clipByGlobalNorm', () => {
  it.each(fixture.clip.map((c) => [c.maxNorm, c] as const))('max norm %s matches torch.nn.utils.clip_grad_norm_', (_max, c) => {
    const grads = c.grads.map((g) => tf.tensor(g.values, g.shape));
    const { grads: clipped, norm } = clipByGlobalNorm(grads, c.maxNorm);
    expect(Math.abs(norm - c.norm)).toBeLessThan(1e-5 * c.norm);
    clipped.forEach((g, i) => {
      expect(g.shape).toEqual(c.grads[i]?.shape);
      expectClose(g.dataSync(), c.clipped[i] as number[], 1e-7, 1e-5, `grad ${i}`);
    });
    tf.dispose([...grads, ...clipped]);
  });

  it('clips to the max norm (up to torch\'s 1e-6) and leaves small gradients unchanged', () => {
    const g = [tf.tensor([3, 0]), tf.tensor([[0, 4]])]; // global norm 5
    const big = clipByGlobalNorm(g, 1);
    expect(big.norm).toBeCloseTo(5, 6);
    expectClose(big.grads[0]?.dataSync() ?? [], [3 / (5 + 1e-6), 0], 1e-7, 0, 'clipped a');
    expectClose(big.grads[1]?.dataSync() ?? [], [0, 4 / (5 + 1e-6)], 1e-7, 0, 'clipped b');
    const small = clipByGlobalNorm(g, 10);
    expect(Array.from(small.grads[0]?.dataSync() ?? [])).toEqual([3, 0]);
    tf.dispose([...g, ...big.grads, ...small.grads]);
  });

  it('the tensor form leaks nothing and keeps the norm on the device', () => {
    const g = [tf.tensor([1, 2, 2])];
    const before = tf.memory().numTensors;
    const out = clipGradientsByGlobalNorm(g, 1);
    expect(tf.memory().numTensors).toBe(before + 2); // one clipped gradient + the norm scalar
    expect(out.norm.dataSync()[0]).toBeCloseTo(3, 6);
    tf.dispose([...g, ...out.grads, out.norm]);
  });
});
