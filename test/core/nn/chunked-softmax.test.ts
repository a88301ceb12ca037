import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { landmarkLogSumExp, landmarkSoftmaxProduct, rowSoftmaxProduct } from '../../../src/core/nn/chunked-softmax.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number);
}

// h = 2 heads, L = 10 rows, d = 3, m = 4 landmarks, e = 5; blocks of 3 rows (4 blocks, the last one partial).
const q = tf.randomNormal([2, 10, 3], 0, 1, 'float32', 1) as tf.Tensor3D;
const keysT = tf.randomNormal([2, 3, 4], 0, 1, 'float32', 2) as tf.Tensor3D;
const w = tf.randomNormal([2, 4, 5], 0, 1, 'float32', 3) as tf.Tensor3D;
const landmarks = tf.randomNormal([2, 4, 3], 0, 2, 'float32', 4) as tf.Tensor3D;
const keys = tf.randomNormal([2, 10, 3], 0, 2, 'float32', 5) as tf.Tensor3D;
const values = tf.randomNormal([2, 10, 5], 0, 1, 'float32', 6) as tf.Tensor3D;
const weights = tf.randomNormal([2, 10, 5], 0, 1, 'float32', 7) as tf.Tensor3D; // upstream gradient pattern for the row op
const weightsLandmark = tf.randomNormal([2, 4, 5], 0, 1, 'float32', 8) as tf.Tensor3D;

describe('nn/chunked-softmax', () => {
  it('rowSoftmaxProduct equals softmax(q kᵀ) w in value and in all three gradients, in blocks or whole', () => {
    const plain = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(tf.matMul(tf.softmax(tf.matMul(a, b)), c), weights)) as tf.Scalar;
    const expected = tf.grads(plain)([q, keysT, w]);
    for (const block of [3, 10, 4096]) {
      const chunked = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(rowSoftmaxProduct(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D, block), weights)) as tf.Scalar;
      expect(maxAbsDiff(rowSoftmaxProduct(q, keysT, w, block), tf.matMul(tf.softmax(tf.matMul(q, keysT)), w))).toBeLessThan(1e-5);
      tf.grads(chunked)([q, keysT, w]).forEach((g, i) => expect(maxAbsDiff(g, expected[i]!)).toBeLessThan(1e-5));
    }
    // The gradients are not trivially zero (the comparison above would pass on two zero tensors).
    expected.forEach((g) => expect(tf.max(tf.abs(g)).dataSync()[0]).toBeGreaterThan(1e-2));
  });

  it('landmarkSoftmaxProduct equals softmax over the tokens of qL kᵀ times v, value and gradients', () => {
    const plain = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(tf.matMul(tf.softmax(tf.matMul(a, b, false, true)), c), weightsLandmark)) as tf.Scalar;
    const expected = tf.grads(plain)([landmarks, keys, values]);
    for (const block of [3, 10, 4096]) {
      const chunked = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(landmarkSoftmaxProduct(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D, block), weightsLandmark)) as tf.Scalar;
      expect(maxAbsDiff(landmarkSoftmaxProduct(landmarks, keys, values, block), tf.matMul(tf.softmax(tf.matMul(landmarks, keys, false, true)), values))).toBeLessThan(1e-5);
      tf.grads(chunked)([landmarks, keys, values]).forEach((g, i) => expect(maxAbsDiff(g, expected[i]!)).toBeLessThan(1e-5));
      expect(maxAbsDiff(landmarkLogSumExp(landmarks, keys, block), tf.logSumExp(tf.matMul(landmarks, keys, false, true), -1, true))).toBeLessThan(1e-5);
    }
    expected.forEach((g) => expect(tf.max(tf.abs(g)).dataSync()[0]).toBeGreaterThan(1e-2));
  });

  it('keeps no tensor behind after a gradient in blocks', () => {
    const before = tf.memory().numTensors;
    tf.dispose(tf.grads((a: tf.Tensor) => tf.sum(landmarkSoftmaxProduct(a as tf.Tensor3D, keys, values, 3)) as tf.Scalar)([landmarks]));
    tf.dispose(tf.grads((a: tf.Tensor) => tf.sum(rowSoftmaxProduct(a as tf.Tensor3D, keysT, w, 3)) as tf.Scalar)([q]));
    expect(tf.memory().numTensors).toBe(before);
  });
});
