// The host-evaluated slide losses (src/core/nn/bce.ts) against their tensor formulations (the code they replaced):
// values and gradients over logits from small to saturating, on the cpu and wasm backends; no tensor left behind.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crossEntropyWithLogits, oneHotBceWithLogits, softCrossEntropyWithLogits } from '../../../src/core/nn/bce.js';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime } from '../../../src/core/runtime/index.js';
import { RuntimeSection } from '../../../src/core/runtime/schema.js';

/** The stable tensor BCE, mean over classes. */
function tensorBce(logits: tf.Tensor2D, label: number): tf.Scalar {
  const target = tf.cast(tf.oneHot([label], logits.shape[1]), 'float32');
  return tf.mean(tf.add(tf.sub(tf.relu(logits), tf.mul(logits, target)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))))) as tf.Scalar;
}

/** weight · −Σ s log softmax(x), through tf.logSoftmax. */
function tensorSoftCe(logits: tf.Tensor2D, target: number[], weight: number): tf.Scalar {
  return tf.mul(tf.neg(tf.sum(tf.mul(tf.tensor2d([target]), tf.logSoftmax(logits)))), weight) as tf.Scalar;
}

const LOGITS: number[][] = [[0.3, -1.2], [0, 0], [12.5, -30], [-80, 95], [1e-4, 2.5, -3.25, 0.75], [40, 40.0001, -7]];

function valueAndGrad(loss: (x: tf.Tensor2D) => tf.Scalar, logits: number[]): { value: number; grad: number[] } {
  return tf.tidy(() => {
    const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => loss(x as tf.Tensor2D))(tf.tensor2d([logits]));
    return { value: value.dataSync()[0] as number, grad: Array.from(grad.dataSync()) };
  });
}

function expectSame(actual: { value: number; grad: number[] }, expected: { value: number; grad: number[] }): void {
  // a few float32 rounding steps (2^-23 ≈ 1.2e-7 relative) of values up to ~100 and gradients up to the class weight
  expect(Math.abs(actual.value - expected.value)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(expected.value)));
  actual.grad.forEach((g, i) => expect(Math.abs(g - (expected.grad[i] as number))).toBeLessThanOrEqual(2.5e-7 * Math.max(1, Math.abs(expected.grad[i] as number))));
}

describe.each(['cpu', 'wasm'] as const)('host slide losses on %s', (backend) => {
  beforeAll(async () => {
    await initRuntime(RuntimeSection.parse({ backend }), { logger: silentLogger });
  });
  afterAll(() => {
    tf.disposeVariables();
  });

  it('BCE with logits: value and gradient of the tensor formulation for every label', () => {
    for (const logits of LOGITS) {
      for (let label = 0; label < logits.length; label += 1) {
        expectSame(valueAndGrad((x) => oneHotBceWithLogits(x, label), logits), valueAndGrad((x) => tensorBce(x, label), logits));
      }
    }
  });

  it('cross-entropy: one-hot, label-smoothed and class-weighted targets', () => {
    for (const logits of LOGITS) {
      const classes = logits.length;
      for (let label = 0; label < classes; label += 1) {
        const oneHot = logits.map((_, c) => (c === label ? 1 : 0));
        const smoothed = oneHot.map((t) => t * 0.9 + 0.1 / classes);
        expectSame(valueAndGrad((x) => crossEntropyWithLogits(x, label), logits), valueAndGrad((x) => tensorSoftCe(x, oneHot, 1), logits));
        expectSame(valueAndGrad((x) => softCrossEntropyWithLogits(x, smoothed, 2.5), logits), valueAndGrad((x) => tensorSoftCe(x, smoothed, 2.5), logits));
      }
    }
  });

  it('the gradient scales with the upstream gradient and nothing leaks', () => {
    const x = tf.tensor2d([[0.5, -2, 1]]);
    const before = tf.memory().numTensors;
    const grad = tf.grad((z: tf.Tensor) => tf.mul(softCrossEntropyWithLogits(z as tf.Tensor2D, [0, 1, 0]), 3))(x);
    const single = tf.grad((z: tf.Tensor) => softCrossEntropyWithLogits(z as tf.Tensor2D, [0, 1, 0]))(x);
    expect(Array.from(grad.dataSync())).toEqual(Array.from(single.dataSync()).map((g) => Math.fround(g * 3)));
    // softmax − one-hot sums to zero
    expect(Math.abs(Array.from(single.dataSync()).reduce((a, b) => a + b, 0))).toBeLessThan(1e-6);
    tf.dispose([grad, single]);
    tf.dispose(oneHotBceWithLogits(x, 1));
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it('rejects a target of the wrong length', () => {
    expect(() => softCrossEntropyWithLogits(tf.tensor2d([[1, 2]]), [1, 0, 0])).toThrow(/3 target values for 2 logits/);
  });
});
