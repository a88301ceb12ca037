import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initWeight, torchFans } from '../../../src/core/nn/init.js';
import { Linear, dropout } from '../../../src/core/nn/layers.js';
import { Rng } from '../../../src/core/runtime/random.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function stats(values: Float32Array): { mean: number; std: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) };
}

describe('nn/init', () => {
  it('computes torch fans for 2-D and 3-D weights', () => {
    expect(torchFans([4, 3])).toEqual({ fanIn: 3, fanOut: 4 });
    // CKA's coefficient tensor [in, out, K+1]: fan_in = out·(K+1), fan_out = in·(K+1) (docs/methods/conventions.md#initialisations).
    expect(torchFans([5, 2, 13])).toEqual({ fanIn: 26, fanOut: 65 });
  });

  it('draws xavier-normal with std sqrt(2/(fan_in+fan_out))', () => {
    const w = initWeight('xavier-normal', [200, 300], new Rng(1));
    const { mean, std } = stats(w.dataSync() as Float32Array);
    expect(Math.abs(mean)).toBeLessThan(0.003);
    expect(std).toBeCloseTo(Math.sqrt(2 / 500), 3);
    w.dispose();
  });

  it('draws torch-default within ±1/sqrt(fan_in) with the uniform variance', () => {
    const w = initWeight('torch-default', [100, 400], new Rng(2));
    const values = w.dataSync() as Float32Array;
    const bound = 1 / Math.sqrt(400);
    expect(Math.max(...values)).toBeLessThanOrEqual(bound);
    expect(Math.min(...values)).toBeGreaterThanOrEqual(-bound);
    expect(stats(values).std).toBeCloseTo(bound / Math.sqrt(3), 3);
    w.dispose();
  });

  it('makes orthogonal weights with orthonormal rows (out < in)', () => {
    const w = initWeight('orthogonal', [3, 7], new Rng(3));
    const gram = tf.matMul(w, w, false, true).arraySync() as number[][];
    for (let i = 0; i < 3; i += 1) for (let j = 0; j < 3; j += 1) expect(gram[i]?.[j]).toBeCloseTo(i === j ? 1 : 0, 5);
    tf.dispose(w);
  });

  it('is deterministic per seed and differs across seeds', () => {
    const a = initWeight('xavier-normal', [4, 4], new Rng(9)).dataSync();
    const b = initWeight('xavier-normal', [4, 4], new Rng(9)).dataSync();
    const c = initWeight('xavier-normal', [4, 4], new Rng(10)).dataSync();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });
});

describe('nn/layers', () => {
  it('Linear computes x W^T + b in torch terms and exports its weight with perm [1,0]', () => {
    const fc = new Linear(2, 3, new Rng(0));
    // Set torch-layout weight [[1,2],[3,4],[5,6]] and bias [0.5,-1,2].
    fc.weight.assign(tf.tensor2d([[1, 2], [3, 4], [5, 6]]).transpose());
    fc.bias?.assign(tf.tensor1d([0.5, -1, 2]));
    const y = fc.forward(tf.tensor2d([[1, -1]])).arraySync();
    expect(y).toEqual([[-0.5, -2, 1]]);
    const entries = fc.namedTensors();
    expect(entries.map(([name, e]) => [name, e.variable.shape, e.torch.perm ?? null])).toEqual([
      ['weight', [2, 3], [1, 0]],
      ['bias', [3], null],
    ]);
    fc.dispose();
  });

  it('dropout scales kept values by 1/(1-p) and is the identity at eval', () => {
    const x = tf.ones([1000]);
    const kept = dropout(x, 0.25, true, new Rng(4)).dataSync();
    const nonZero = Array.from(kept).filter((v) => v !== 0);
    expect(new Set(nonZero)).toEqual(new Set([Math.fround(1 / 0.75)]));
    expect(nonZero.length / 1000).toBeGreaterThan(0.7);
    expect(nonZero.length / 1000).toBeLessThan(0.8);
    expect(dropout(x, 0.25, false, new Rng(4))).toBe(x);
  });
});
