import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatherRows, HEAP_SLICE, heapConcat, heapSlice, topKIndices } from '../../../src/core/nn/heap-slice.js';
import { installSmallNKernels, restoreSmallNKernels } from '../../../src/core/runtime/small-n-kernels.js';

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

describe('nn/heap-slice topKIndices', () => {
  it('equals tf.topk (largest) and tf.topk of the negation (smallest), ties to the lower index', () => {
    // Values on a coarse grid: many ties, including at the k-th place.
    let seed = 17;
    const values = Float32Array.from({ length: 300 }, () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return Math.floor((seed / 2147483648) * 40) / 8 - 2.5;
    });
    for (const k of [1, 8, 37, 300]) {
      const largest = tf.tidy(() => Array.from(tf.topk(tf.tensor1d(values), k).indices.dataSync()));
      const smallest = tf.tidy(() => Array.from(tf.topk(tf.neg(tf.tensor1d(values)), k).indices.dataSync()));
      expect(Array.from(topKIndices(values, k, 'largest'))).toEqual(largest);
      expect(Array.from(topKIndices(values, k, 'smallest'))).toEqual(smallest);
    }
    expect(Array.from(topKIndices([3, 1, 2], 5, 'largest'))).toEqual([0, 2, 1]); // k clamped to N
    expect(Array.from(topKIndices([], 2, 'smallest'))).toEqual([]);
  });
});

describe('nn/heap-slice gatherRows', () => {
  const data = Float32Array.from({ length: 40 }, (_, i) => Math.sin(i + 1));
  const upstream = Float32Array.from({ length: 20 }, (_, i) => Math.cos(3 * i));
  const rows = [9, 0, 4, 9, 2];
  const valueAndGrad = (): number[][] => tf.tidy(() => {
    const x = tf.tensor2d(data, [10, 4]);
    const f = (t: tf.Tensor): tf.Tensor => tf.sum(tf.mul(gatherRows(t as tf.Tensor2D, rows), tf.tensor2d(upstream, [5, 4])));
    return [Array.from(gatherRows(x, rows).dataSync()), Array.from(tf.grad(f)(x).dataSync())];
  });

  it('gathers with a scatter-add gradient where UnsortedSegmentSum exists, else through the selection matmul: same numbers', () => {
    installSmallNKernels();
    try {
      const withGather = valueAndGrad();
      restoreSmallNKernels();
      expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeUndefined();
      const withMatMul = valueAndGrad();
      expect(withGather[0]).toEqual(withMatMul[0]);
      expect(withGather[1]).toEqual(withMatMul[1]);
      // Expected: row r of the result is row rows[r] of x; row 9 was taken twice, so its gradient sums two upstream rows.
      expect(withGather[0]!.slice(0, 4)).toEqual(Array.from(data.slice(36, 40)));
      for (let j = 0; j < 4; j += 1) expect(withGather[1]![36 + j]).toBeCloseTo(upstream[j]! + upstream[12 + j]!, 6);
      expect(withGather[1]!.slice(0, 4)).toEqual(Array.from(upstream.slice(4, 8))); // x row 0 was taken once, at position 1
      expect(withGather[1]!.slice(4, 8)).toEqual([0, 0, 0, 0]); // x row 1 was not taken
    } finally {
      restoreSmallNKernels();
    }
  });

  it('uses GatherV2 (no OneHot, no matmul) when the backend can differentiate it', async () => {
    installSmallNKernels();
    try {
      const x = tf.tensor2d(data, [10, 4]);
      const info = await tf.profile(() => tf.grad((t: tf.Tensor) => tf.sum(gatherRows(t as tf.Tensor2D, rows)))(x));
      const names = info.kernels.map((k) => k.name);
      expect(names).toContain('GatherV2');
      expect(names).toContain('UnsortedSegmentSum');
      expect(names).not.toContain('OneHot');
      expect(names).not.toContain('BatchMatMul');
      expect(names).not.toContain('Transpose'); // tfjs' own GatherV2 gradient adds two
      x.dispose();
    } finally {
      restoreSmallNKernels();
    }
  });
});
