// Stand-in for the CLAM instance term in HDMIL parity tests until loss/clam-instance is available:
// Σ_i w_i · smoothSVM(logits_i, y_i) over DMIN's `instanceLogits` [M,2], `instanceTargets` [M], `instanceWeights` [M]
// (smooth top-1 SVM, α = 1, τ = 1, hard fallback when the top-2 gap ≥ ln 1000; methods.md §3.5).
import * as tf from '@tensorflow/tfjs';
import type { ModelOutput } from '../../src/registry/index.js';
import { offTape } from '../../src/core/nn/gradients.js';

export function instanceLossTerm(output: ModelOutput): tf.Scalar | undefined {
  const logits = output.extras?.instanceLogits as tf.Tensor2D | undefined;
  const targets = output.extras?.instanceTargets as tf.Tensor1D | undefined;
  const weights = output.extras?.instanceWeights as tf.Tensor1D | undefined;
  if (!logits || !targets || !weights) return undefined;
  return tf.tidy(() => {
    const [, classes] = logits.shape;
    const oneHot = tf.oneHot(targets, classes).toFloat(); // [M, 2]
    const scoreY = tf.sum(tf.mul(logits, oneHot), 1, true); // [M, 1]
    const augmented = tf.add(logits, tf.sub(1, oneHot)); // [M, 2]  s + Δ
    const smooth = tf.logSumExp(tf.sub(augmented, scoreY), 1); // [M]
    const hardLoss = tf.sub(tf.max(augmented, 1), tf.reshape(scoreY, [-1])); // [M]
    const sorted = tf.topk(offTape(logits), 2).values; // [M, 2]  the branch choice is made on detached scores
    const gap = tf.sub(tf.slice(sorted, [0, 0], [-1, 1]), tf.slice(sorted, [0, 1], [-1, 1])).reshape([-1]); // [M]
    const perInstance = tf.where(tf.greaterEqual(gap, Math.log(1000)), hardLoss, smooth); // [M]
    return tf.sum(tf.mul(perInstance, weights)) as tf.Scalar;
  });
}
