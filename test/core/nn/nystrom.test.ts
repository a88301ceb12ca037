import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { moorePenrosePinv, NystromAttention, type NystromOptions } from '../../../src/core/nn/nystrom.js';
import { Rng } from '../../../src/core/runtime/random.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const OPTIONS: NystromOptions = { dim: 8, heads: 2, dimHead: 4, landmarks: 4, pinvIterations: 6, residualKernel: 5, dropout: 0, alignment: 'fixed', init: 'torch-default' };

describe('nn/nystrom', () => {
  it('iterates to the inverse of row-stochastic matrices (global scaling over heads)', () => {
    // Diagonally dominant softmax rows, as landmark-to-landmark attention tends to be; 12 iterations.
    const logits = tf.add(tf.mul(tf.eye(5), 3), tf.mul(tf.randomNormal([2, 5, 5], 0, 1, 'float32', 1), 0.5)); // two heads
    const a = tf.softmax(logits) as tf.Tensor3D;
    const z = moorePenrosePinv(a, 12);
    const product = tf.matMul(a, z).arraySync() as number[][][];
    product.forEach((head) => head.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - (i === j ? 1 : 0))).toBeLessThan(1e-3))));
  });

  it('keeps the first L rows (0.0.9) or the last L rows (fixed) after left padding', () => {
    const rng = new Rng(3);
    const fixed = new NystromAttention(OPTIONS, rng.fork('a'));
    const pinned = new NystromAttention({ ...OPTIONS, alignment: 'pinned-0.0.9' }, rng.fork('b'));
    // Same weights in both.
    pinned.namedTensors().forEach(([, entry], i) => entry.variable.assign((fixed.namedTensors()[i] as [string, { variable: tf.Variable }])[1].variable));
    const io = { training: false, rng: new Rng(0) };
    const padded = tf.randomNormal([6, 8], 0, 1, 'float32', 4) as tf.Tensor2D; // 6 rows, m = 4: two zero rows on the left
    const a = fixed.forward(padded, io).arraySync();
    const b = pinned.forward(padded, io).arraySync();
    // The pinned output is the fixed computation shifted by the padding: row 2 of pinned = row 0 of fixed.
    expect(b[2]?.map((v, i) => Math.abs(v - (a[0]?.[i] as number)) < 1e-5).every(Boolean)).toBe(true);
    expect(b[0]?.some((v, i) => Math.abs(v - (a[0]?.[i] as number)) > 1e-4)).toBe(true);
    const aligned = tf.randomNormal([8, 8], 0, 1, 'float32', 5) as tf.Tensor2D; // a multiple of m: no padding, no difference
    expect(fixed.forward(aligned, io).arraySync()).toEqual(pinned.forward(aligned, io).arraySync());
  });
});
