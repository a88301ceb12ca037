import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEAP_SLICE, heapConcat, heapSlice } from '../../../src/core/nn/heap-slice.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

const cases: Array<{ name: string; shape: number[]; begin: number[]; size: number[] }> = [
  { name: 'rows of a matrix (one contiguous run)', shape: [9, 5], begin: [2, 0], size: [4, -1] },
  { name: 'columns of a matrix (a run per row)', shape: [6, 7], begin: [1, 2], size: [4, 3] },
  { name: 'middle axis of a 3-d tensor', shape: [3, 8, 4], begin: [0, 3, 0], size: [3, 2, 4] },
  { name: 'two sliced axes of a 4-d tensor', shape: [2, 3, 5, 4], begin: [1, 0, 1, 1], size: [1, 3, 3, 2] },
  { name: 'first axis only', shape: [3, 2, 2, 6], begin: [1, 0, 0, 0], size: [1, -1, -1, -1] },
  { name: 'a single element', shape: [4, 4], begin: [3, 1], size: [1, 1] },
];

describe('nn/heap-slice', () => {
  it.each(cases)('equals tf.slice on wasm, and its gradient is the padded upstream: $name', ({ shape, begin, size }) => {
    const x = tf.tidy(() => tf.reshape(tf.range(0, shape.reduce((a, b) => a * b, 1), 1, 'float32'), shape));
    const expected = tf.slice(x, begin, size);
    const actual = heapSlice(x, begin, size);
    expect(actual.shape).toEqual(expected.shape);
    expect(Array.from(actual.dataSync())).toEqual(Array.from(expected.dataSync()));
    // The gradient: the upstream (here a distinct value per output element) placed back at the slice, zeros elsewhere.
    const weights = tf.tidy(() => tf.add(tf.range(0, expected.size, 1, 'float32'), 1).reshape(expected.shape));
    const gradOf = (f: (t: tf.Tensor) => tf.Tensor): Float32Array => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), weights)))(x).dataSync() as Float32Array);
    expect(Array.from(gradOf((t) => heapSlice(t, begin, size)))).toEqual(Array.from(gradOf((t) => tf.slice(t, begin, size))));
    tf.dispose([x, expected, actual, weights]);
  });

  it.each([0, 1])('heapConcat equals tf.concat along axis %i, gradients included, without SplitV', async (axis) => {
    const parts = [tf.randomNormal([3, 4], 0, 1, 'float32', 1), tf.randomNormal([axis === 0 ? 5 : 3, axis === 0 ? 4 : 2], 0, 1, 'float32', 2), tf.randomNormal([axis === 0 ? 1 : 3, axis === 0 ? 4 : 6], 0, 1, 'float32', 3)];
    const expected = tf.concat(parts, axis);
    const actual = heapConcat(parts, axis);
    expect(Array.from(actual.dataSync())).toEqual(Array.from(expected.dataSync()));
    const weights = tf.randomNormal(expected.shape, 0, 1, 'float32', 4);
    const gradsOf = (f: (...xs: tf.Tensor[]) => tf.Tensor) => tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), weights)))(parts);
    const ours = gradsOf((...xs) => heapConcat(xs, axis));
    const theirs = gradsOf((...xs) => tf.concat(xs, axis));
    ours.forEach((g, i) => expect(Array.from(g.dataSync())).toEqual(Array.from(theirs[i]!.dataSync())));
    const info = await tf.profile(() => tf.grads((...xs: tf.Tensor[]) => tf.sum(heapConcat(xs, axis)))(parts));
    expect(info.kernelNames).not.toContain('SplitV');
    tf.dispose([...parts, expected, actual, weights, ...ours, ...theirs, ...(info.result as tf.Tensor[])]);
  });

  it('runs its own kernel on wasm, not Slice (which copies the whole input first)', async () => {
    const x = tf.ones([64, 8]);
    const info = await tf.profile(() => heapSlice(x, [10, 0], [20, 8]));
    expect(info.kernelNames).toEqual([HEAP_SLICE]);
    tf.dispose([x, info.result as tf.Tensor]);
  });

  it('is tf.slice on other backends, and rejects a slice outside the tensor', async () => {
    await tf.setBackend('cpu');
    const x = tf.ones([4, 3]);
    const info = await tf.profile(() => heapSlice(x, [1, 0], [2, -1]));
    expect(info.kernelNames).toEqual(['Slice']);
    await tf.setBackend('wasm');
    const y = tf.ones([4, 3]);
    expect(() => heapSlice(y, [3, 0], [2, 3])).toThrow(/outside a tensor of shape \[4, 3\]/);
    tf.dispose([x, y, info.result as tf.Tensor]);
  });
});
