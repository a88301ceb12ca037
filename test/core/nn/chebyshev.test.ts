// The degree-major Chebyshev layout of the CKA layer on the wasm backend (the training backend): the same numbers
// and gradients as the stacked [M, I, K+1] formulation it replaced, without the Pack/Unpack kernels that made
// that formulation slow, and with flat memory.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ChebyshevKanLayer, chebyshevBasis, chebyshevBasisBlocks } from '../../../src/core/nn/chebyshev.js';
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

  it('lays T_k(t[m, i]) at column k·I + i, the stacked basis permuted', () => {
    const t = tf.tidy(() => tf.tanh(tf.randomNormal([M, I], 0, 1, 'float32', 3)) as tf.Tensor2D);
    const blocks = chebyshevBasisBlocks(t, K);
    expect(blocks.shape).toEqual([M, (K + 1) * I]);
    const stacked = chebyshevBasis(t, K).arraySync() as number[][][]; // [M][I][K+1]
    const flat = blocks.arraySync();
    for (let m = 0; m < M; m += 1) {
      for (let k = 0; k <= K; k += 1) {
        for (let i = 0; i < I; i += 1) expect(flat[m]?.[k * I + i]).toBe(stacked[m]?.[i]?.[k]); // same recurrence, same float32 ops
      }
    }
    // Degree 0 is the constant basis, degree 1 adds t itself.
    expect(chebyshevBasisBlocks(t, 0).arraySync()).toEqual(tf.onesLike(t).arraySync());
    expect(Array.from(chebyshevBasisBlocks(t, 1).dataSync().slice(I, 2 * I))).toEqual(Array.from(t.dataSync().slice(0, I)));
    expect(() => chebyshevBasisBlocks(t, -1)).toThrow(RangeError);
    tf.dispose([t, blocks]);
  });

  it('gives the stacked formulation\'s output and gradients (only the summation order differs)', () => {
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
    expect(maxAbsDiff(now.y, before.y)).toBeLessThan(1e-6);
    expect(maxAbsDiff(now.dx, before.dx)).toBeLessThan(1e-6);
    expect(maxAbsDiff(now.dTheta, before.dTheta)).toBeLessThan(1e-6);
    expect(Math.max(...Array.from(now.dTheta).map(Math.abs))).toBeGreaterThan(0.01); // a real gradient reached Θ
    tf.dispose([x, upstream]);
    layer.dispose();
  });

  it('trains without Pack/Unpack kernels and with flat memory', async () => {
    const layer = new ChebyshevKanLayer(64, 2, 12, new Rng('cheby-kernels'));
    const x = tf.tidy(() => tf.randomNormal([32, 64], 0, 1, 'float32', 5) as tf.Tensor2D);
    const step = (): void => {
      const { value, grads } = tf.variableGrads(() => tf.sum(layer.forward(x)), [layer.coefficients]);
      value.dispose();
      tf.dispose(grads);
    };
    step();
    const tensors = tf.memory().numTensors;
    const info = await tf.profile(step);
    const names = new Set(info.kernels.map((k) => k.name));
    expect(names.has('Pack')).toBe(false);
    expect(names.has('Unpack')).toBe(false);
    expect(names.has('Concat')).toBe(true);
    step();
    expect(tf.memory().numTensors).toBe(tensors);
    x.dispose();
    layer.dispose();
  });
});
