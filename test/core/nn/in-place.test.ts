// assignInPlace: on wasm the variable keeps its buffer (the optimizers' parameters and moments stay where step 1 put
// them, which keeps the heap flat over steps), kernels that cache a weight's packed form see the new values, a
// buffer shared with a clone is never overwritten; on cpu it is the ordinary assign.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOptimizer } from '../../../src/core/engine/optim/index.js';
import { OptimizerSection } from '../../../src/core/engine/schema.js';
import { silentLogger } from '../../../src/core/logger.js';
import { assignInPlace } from '../../../src/core/nn/in-place.js';
import { initRuntime } from '../../../src/core/runtime/index.js';
import { RuntimeSection } from '../../../src/core/runtime/schema.js';

const offsetOf = (t: tf.Tensor): number => (tf.backend() as unknown as { getMemoryOffset(id: tf.DataId): number }).getMemoryOffset(t.dataId);

/** x [2,3] · W [3,2] on the host, in float64 (the expected values of the kernel). */
function hostMatMul(x: number[][], w: number[][]): number[][] {
  return x.map((row) => [0, 1].map((j) => row.reduce((s, v, k) => s + v * (w[k]![j] as number), 0)));
}

describe('core/nn assignInPlace on wasm', () => {
  beforeAll(async () => {
    // blas off: the stock XNNPACK matmul, which caches the packed right operand by tensor id.
    await initRuntime(RuntimeSection.parse({ backend: 'wasm', blas: 'off' }), { logger: silentLogger });
    expect(tf.getBackend()).toBe('wasm');
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('writes the new values into the variable\'s own buffer', () => {
    const v = tf.tidy(() => tf.variable(tf.tensor2d([[1, 2], [3, 4]]), false)); // the initial tensor freed: v alone holds the buffer
    const before = offsetOf(v);
    const value = tf.tensor2d([[5, 6], [7, 8]]);
    assignInPlace(v, value);
    value.dispose();
    expect(offsetOf(v)).toBe(before);
    expect(Array.from(v.dataSync())).toEqual([5, 6, 7, 8]);
    v.dispose();
  });

  it('drops what a matmul cached of the old weights', () => {
    const xRows = [[1, 2, 3], [-1, 0.5, 2]];
    const w1 = [[1, 0], [0, 1], [1, 1]];
    const w2 = [[2, -1], [0.5, 3], [-2, 1]];
    const x = tf.tensor2d(xRows);
    const w = tf.tidy(() => tf.variable(tf.tensor2d(w1), false));
    const before = offsetOf(w);
    const first = tf.matMul(x, w);
    expect(Array.from(first.dataSync())).toEqual(hostMatMul(xRows, w1).flat());
    const next = tf.tensor2d(w2);
    assignInPlace(w, next);
    next.dispose();
    expect(offsetOf(w)).toBe(before); // written in place, same tensor id
    const second = tf.matMul(x, w);
    expect(Array.from(second.dataSync())).toEqual(hostMatMul(xRows, w2).flat());
    tf.dispose([x, w, first, second]);
  });

  it('leaves a buffer another tensor shares alone (ordinary assign)', () => {
    const v = tf.tidy(() => tf.variable(tf.tensor1d([1, 2, 3]), false));
    const snapshot = tf.clone(v); // shares v's buffer
    const value = tf.tensor1d([9, 9, 9]);
    assignInPlace(v, value);
    value.dispose();
    expect(Array.from(snapshot.dataSync())).toEqual([1, 2, 3]);
    expect(Array.from(v.dataSync())).toEqual([9, 9, 9]);
    expect(offsetOf(v)).not.toBe(offsetOf(snapshot));
    tf.dispose([v, snapshot]);
  });

  it('keeps Adam\'s parameters and moments at the addresses of step 1 while large temporaries come and go', () => {
    const params: Array<[string, tf.Variable]> = [
      ['w', tf.variable(tf.randomNormal([256, 64], 0, 1, 'float32', 1), true)],
      ['b', tf.variable(tf.zeros([64]), true)],
    ];
    const optimizer = createOptimizer(OptimizerSection.parse({ name: 'adam', lr: 1e-3 }), params);
    const step = (size: number): void => {
      const x = tf.randomNormal([size, 256], 0, 1, 'float32', size);
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.add(tf.matMul(x, params[0]![1]), params[1]![1]))) as tf.Scalar, params.map(([, v]) => v));
      const ordered = params.map(([, v]) => grads[v.name] as tf.Tensor);
      optimizer.step(ordered, 1e-3);
      tf.dispose([x, value, ...ordered]);
    };
    step(4096);
    const offsets = params.map(([, v]) => offsetOf(v));
    const state = optimizer.state();
    tf.dispose(Object.values(state));
    const tensorsAfterOne = tf.memory().numTensors;
    const w0 = Array.from(params[0]![1].dataSync().slice(0, 4));
    for (const size of [4096, 1024, 8192]) step(size);
    expect(params.map(([, v]) => offsetOf(v))).toEqual(offsets);
    expect(tf.memory().numTensors).toBe(tensorsAfterOne);
    // The steps did update the weights.
    expect(Array.from(params[0]![1].dataSync().slice(0, 4))).not.toEqual(w0);
    optimizer.dispose();
    params.forEach(([, v]) => v.dispose());
  });
});

describe('core/nn assignInPlace on cpu', () => {
  it('is the ordinary assign', async () => {
    await tf.setBackend('cpu');
    const v = tf.variable(tf.tensor1d([1, 2]), false);
    const value = tf.tensor1d([3, 4]);
    assignInPlace(v, value);
    value.dispose();
    expect(Array.from(v.dataSync())).toEqual([3, 4]);
    v.dispose();
  });
});
