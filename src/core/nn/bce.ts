// Binary cross-entropy with logits against one-hot slide labels (torch BCEWithLogitsLoss, mean over classes), shared
// by the bag-level `loss/binary-cross-entropy` and DSMIL's max-instance loss, and softmax cross-entropy against a
// (soft) target distribution, shared by `loss/cross-entropy` and DSMIL's CE variant.
//
// Slide logits are [1, C] with C a handful of classes, so these losses run on the host: one read of the logits gives
// the value and the analytic gradient in float64, and the tape holds one custom op whose backward is one multiply.
// The tensor formulation took ~12 kernels forward and ~25 backward per loss on a few floats each, every one a full
// kernel dispatch; on wasm that overhead is a measurable part of a small-bag step (BENCHMARKS.md, hot-spots section).
// The gradients are the closed forms of the same losses: σ(x) − t over C for the BCE, w·(softmax(x)·Σs − s) for the
// cross-entropy; values agree with the tensor formulation to float32 rounding (test/core/nn/bce.test.ts).
import * as tf from '@tensorflow/tfjs';

/** A scalar loss of logits [1, C] evaluated on the host: `evaluate` returns its value and its gradient per logit. */
function hostLoss(logits: tf.Tensor2D, evaluate: (z: readonly number[]) => { value: number; grad: number[] }): tf.Scalar {
  const shape = logits.shape;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const { value, grad } = evaluate(Array.from((args[0] as tf.Tensor).dataSync()));
    return { value: tf.scalar(value, 'float32'), gradFunc: (dy: tf.Tensor) => tf.mul(dy, tf.tensor2d(grad, shape, 'float32')) };
  });
  return op(logits) as tf.Scalar;
}

/** mean_c [max(x,0) - x·t + log(1 + exp(-|x|))] for logits x [1, C] and t = one-hot(label) (stable form). */
export function oneHotBceWithLogits(logits: tf.Tensor2D, label: number): tf.Scalar {
  return hostLoss(logits, (z) => {
    const classes = z.length;
    let total = 0;
    const grad = z.map((x, c) => {
      const t = c === label ? 1 : 0;
      total += Math.max(x, 0) - x * t + Math.log1p(Math.exp(-Math.abs(x)));
      const sigmoid = x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
      return (sigmoid - t) / classes;
    });
    return { value: total / classes, grad };
  });
}

/**
 * weight · −Σ_c s_c log softmax(x)_c for logits x [1, C] and a target distribution s [C] (one-hot, label-smoothed or
 * any non-negative weights); log-sum-exp with the maximum subtracted.
 */
export function softCrossEntropyWithLogits(logits: tf.Tensor2D, target: readonly number[], weight = 1): tf.Scalar {
  if (target.length !== logits.shape[1]) throw new Error(`softCrossEntropyWithLogits: ${target.length} target values for ${logits.shape[1]} logits`);
  return hostLoss(logits, (z) => {
    const top = Math.max(...z);
    const expShifted = z.map((x) => Math.exp(x - top));
    const sumExp = expShifted.reduce((a, b) => a + b, 0);
    const logSumExp = top + Math.log(sumExp);
    const mass = target.reduce((a, b) => a + b, 0);
    const value = weight * z.reduce((acc, x, c) => acc - (target[c] as number) * (x - logSumExp), 0);
    const grad = expShifted.map((e, c) => weight * ((e / sumExp) * mass - (target[c] as number)));
    return { value, grad };
  });
}

/** -log softmax(logits)_label for logits [1, C]. */
export function crossEntropyWithLogits(logits: tf.Tensor2D, label: number): tf.Scalar {
  return softCrossEntropyWithLogits(logits, Array.from({ length: logits.shape[1] }, (_, c) => (c === label ? 1 : 0)));
}
