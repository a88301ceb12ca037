// Smooth top-1 multi-class SVM (Berrada, Zisserman, Kumar, ICLR 2018; topk.svm.SmoothTop1SVM), the instance
// loss CLAM uses (docs/methods/clam.md#smooth-top-1-svm), shared by the instance-clustering and bag-level SVM loss plugins.
import * as tf from '@tensorflow/tfjs';
import { constantOf } from './no-grad.js';

/**
 * Per-sample losses [M] for scores s [M, C] and labels y [M]:
 * smooth τ·log Σ_j exp((s_j + α·[j≠y] - s_y)/τ), or the hard max_j(s_j + α·[j≠y]) - s_y for samples whose top
 * score beats the second by at least τ·ln(1000) (decided on detached scores, as the reference does).
 */
export function smoothTop1SvmLosses(scores: tf.Tensor2D, labels: tf.Tensor1D, alpha = 1, tau = 1): tf.Tensor1D {
  return tf.tidy(() => {
    const numClasses = scores.shape[1];
    if (numClasses < 2) throw new RangeError(`smooth top-1 SVM needs at least 2 classes, got ${numClasses}`);
    const truth = tf.cast(tf.oneHot(tf.cast(labels, 'int32'), numClasses), 'float32'); // [M, C]
    const margin = tf.mul(tf.sub(1, truth), alpha); // [M, C]  Δ_j = α [j ≠ y]
    const trueScore = tf.sum(tf.mul(scores, truth), 1, true); // [M, 1]  s_y
    const shifted = tf.sub(tf.add(scores, margin), trueScore); // [M, C]  s_j + Δ_j - s_y
    const smooth = tf.mul(tf.logSumExp(tf.div(shifted, tau), 1), tau); // [M]
    const hard = tf.max(shifted, 1); // [M]
    const useHard = constantOf((s) => {
      const top2 = tf.topk(s as tf.Tensor2D, 2).values; // [M, 2]
      const gap = tf.sub(tf.slice(top2, [0, 0], [-1, 1]), tf.slice(top2, [0, 1], [-1, 1])); // [M, 1]
      return tf.reshape(tf.greaterEqual(gap, tau * Math.log(1000)), [-1]);
    }, scores); // [M] 0/1, no gradient
    return tf.add(tf.mul(useHard, hard), tf.mul(tf.sub(1, useHard), smooth)) as tf.Tensor1D; // [M]
  });
}
