// The degree-major Chebyshev layout of the CKA layer on the wasm backend (the training backend): the same numbers
// and gradients as the stacked [M, I, K+1] formulation it replaced, without the Pack/Unpack kernels that made
// that formulation slow, and with flat memory.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CHEBYSHEV_HOST_MAX_VALUES, ChebyshevKanLayer, chebyshevBasis, chebyshevBasisDegreeMajor } from '../../../src/core/nn/chebyshev.js';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime } from '../../../src/core/runtime/index.js';
import { RuntimeSection } from '../../../src/core/runtime/schema.js';
import { Rng } from '../../../src/core/runtime/random.js';

const M = 5;
const I = 7;
const O = 3;
const K = 4;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i += 1) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  return worst;
}

/** The formulation before the degree-major layout: stack on the last axis, Θ [I, K+1, O] read as is. */
function stackedForward(layer: ChebyshevKanLayer, x: tf.Tensor2D): tf.Tensor2D {
  const basis = tf.reshape(chebyshevBasis(tf.tanh(x), layer.degree), [x.shape[0], layer.inFeatures * (layer.degree + 1)]);
  return tf.matMul(basis, tf.reshape(layer.coefficients, [layer.inFeatures * (layer.degree + 1), layer.outFeatures])) as tf.Tensor2D;
}

beforeAll(async () => {
  await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
});

describe('core/nn/chebyshev on wasm', () => {
  it('runs on the wasm backend', () => {
    expect(tf.getBackend()).toBe('wasm');
  });

  it('puts T_k(t) in block k, the stacked basis permuted', () => {
    const t = tf.tidy(() => tf.tanh(tf.randomNormal([M, I], 0, 1, 'float32', 3)) as tf.Tensor2D);
    const blocks = chebyshevBasisDegreeMajor(t, K);
    expect(blocks.shape).toEqual([K + 1, M, I]);
    const stacked = chebyshevBasis(t, K).arraySync() as number[][][]; // [M][I][K+1]
    const byDegree = blocks.arraySync();
    for (let k = 0; k <= K; k += 1) {
      for (let m = 0; m < M; m += 1) {
        for (let i = 0; i < I; i += 1) expect(byDegree[k]?.[m]?.[i]).toBe(stacked[m]?.[i]?.[k]); // same recurrence, same float32 ops
      }
    }
    // Degree 0 is the constant basis, degree 1 adds t itself.
    expect(chebyshevBasisDegreeMajor(t, 0).arraySync()).toEqual([tf.onesLike(t).arraySync()]);
    expect(chebyshevBasisDegreeMajor(t, 1).arraySync()[1]).toEqual(t.arraySync());
    expect(() => chebyshevBasisDegreeMajor(t, -1)).toThrow(RangeError);
    expect(() => chebyshevBasisDegreeMajor(t, 1.5)).toThrow(RangeError);
    tf.dispose([t, blocks]);
  });

  it('computes small bases on the host with the kernels\' float32 values, value and gradient', () => {
    // Enough rows to be above CHEBYSHEV_HOST_MAX_VALUES (the kernel recurrence); the first row alone is below it (host).
    const rows = Math.ceil(CHEBYSHEV_HOST_MAX_VALUES / (I * (K + 1))) + 1;
    expect(rows * I * (K + 1)).toBeGreaterThan(CHEBYSHEV_HOST_MAX_VALUES);
    const t = tf.tidy(() => tf.tanh(tf.randomNormal([rows, I], 0, 1.5, 'float32', 11)) as tf.Tensor2D);
    const first = tf.slice(t, [0, 0], [1, I]) as tf.Tensor2D;
    const weights = tf.tidy(() => tf.randomNormal([K + 1, 1, I], 0, 1, 'float32', 12));
    const valueAndGrad = (input: tf.Tensor2D): { basis: Float32Array; grad: Float32Array } => tf.tidy(() => {
      const basis = tf.slice(chebyshevBasisDegreeMajor(input, K), [0, 0, 0], [K + 1, 1, I]).dataSync() as Float32Array;
      const grad = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.slice(chebyshevBasisDegreeMajor(x as tf.Tensor2D, K), [0, 0, 0], [K + 1, 1, I]), weights)))(input);
      return { basis, grad: tf.slice(grad, [0, 0], [1, I]).dataSync() as Float32Array };
    });
    const kernels = valueAndGrad(t);
    const host = valueAndGrad(first);
    expect(Array.from(host.basis)).toEqual(Array.from(kernels.basis));
    expect(Array.from(host.grad)).toEqual(Array.from(kernels.grad));
    tf.dispose([t, first, weights]);
  });

  it('has the derivative k·U_{k-1}(t) as its gradient', () => {
    // d/dt Σ_k T_k(t) at t = cos θ is Σ_k k sin(kθ) / sin θ.
    const values = [-0.9, -0.3, 0, 0.45, 0.8];
    const t = tf.tensor2d([values]);
    const dt = tf.grad((input: tf.Tensor) => tf.sum(chebyshevBasisDegreeMajor(input as tf.Tensor2D, K)))(t).dataSync();
    values.forEach((value, j) => {
      const theta = Math.acos(value);
      let expected = 0;
      for (let k = 1; k <= K; k += 1) expected += (k * Math.sin(k * theta)) / Math.sin(theta);
      expect(dt[j]).toBeCloseTo(expected, 4);
    });
    t.dispose();
  });

  it('gives the stacked formulation\'s output and gradients (float32 rounding only)', () => {
    const layer = new ChebyshevKanLayer(I, O, K, new Rng('cheby-wasm'));
    const x = tf.tidy(() => tf.randomNormal([M, I], 0, 1.5, 'float32', 11) as tf.Tensor2D);
    const upstream = tf.tidy(() => tf.randomNormal([M, O], 0, 1, 'float32', 12));
    const gradsOf = (forward: (input: tf.Tensor2D) => tf.Tensor2D): { y: Float32Array; dx: Float32Array; dTheta: Float32Array } =>
      tf.tidy(() => {
        const y = forward(x);
        const { grads } = tf.variableGrads(() => tf.sum(tf.mul(forward(x), upstream)), [layer.coefficients]);
        const dx = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(forward(input as tf.Tensor2D), upstream)))(x);
        return { y: y.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array, dTheta: (grads[layer.coefficients.name] as tf.Tensor).dataSync() as Float32Array };
      });
    const now = gradsOf((input) => layer.forward(input));
    const before = gradsOf((input) => stackedForward(layer, input));
    // Sums run in another order and dx comes from the differentiated recurrence instead of autodiff through
    // it: float32 rounding only.
    expect(maxAbsDiff(now.y, before.y)).toBeLessThan(1e-5);
    expect(maxAbsDiff(now.dx, before.dx)).toBeLessThan(1e-5);
    expect(maxAbsDiff(now.dTheta, before.dTheta)).toBeLessThan(1e-5);
    expect(Math.max(...Array.from(now.dx).map(Math.abs))).toBeGreaterThan(0.01);
    expect(Math.max(...Array.from(now.dTheta).map(Math.abs))).toBeGreaterThan(0.01); // a real gradient reached Θ
    tf.dispose([x, upstream]);
    layer.dispose();
  });

  it('backpropagates without Unpack, SplitV or Slice kernels and with flat memory', async () => {
    const layer = new ChebyshevKanLayer(64, 2, 12, new Rng('cheby-kernels'));
    const x = tf.tidy(() => tf.randomNormal([32, 64], 0, 1, 'float32', 5) as tf.Tensor2D);
    const step = (): void => {
      const dx = tf.grad((input: tf.Tensor) => tf.sum(layer.forward(input as tf.Tensor2D)))(x);
      const { value, grads } = tf.variableGrads(() => tf.sum(layer.forward(x)), [layer.coefficients]);
      tf.dispose([dx, value, grads]);
    };
    step();
    const tensors = tf.memory().numTensors;
    const info = await tf.profile(step);
    const names = new Set(info.kernels.map((k) => k.name));
    // The stacked layout's backward went through Unpack (a strided Slice per degree); the block layout's
    // through SplitV; each wasm Slice copies its whole input first.
    for (const slow of ['Unpack', 'SplitV', 'Slice']) expect(names.has(slow)).toBe(false);
    expect(names.has('BatchMatMul')).toBe(true);
    step();
    expect(tf.memory().numTensors).toBe(tensors);
    x.dispose();
    layer.dispose();
  });
});
