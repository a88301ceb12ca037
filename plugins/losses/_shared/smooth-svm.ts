// Smooth top-1 multi-class SVM (Berrada, Zisserman, Kumar, ICLR 2018; topk.svm.SmoothTop1SVM), the instance
// loss CLAM uses (docs/methods/clam.md#smooth-top-1-svm), shared by the instance-clustering and bag-level SVM loss plugins.
//
// The scores are a few instances × C classes (CLAM's 2k = 16 rows), so the loss runs on the host as one custom op:
// one read of the scores gives the per-sample losses and the Jacobian rows, and backward is one broadcast multiply.
// As tensor code it was ~35 kernels forward and ~50 backward on [16, 2] arrays, each a full dispatch on wasm.
import * as tf from '@tensorflow/tfjs';

/**
 * Per-sample losses [M] for scores s [M, C] and labels y [M]:
 * smooth τ·log Σ_j exp((s_j + α·[j≠y] - s_y)/τ), or the hard max_j(s_j + α·[j≠y]) - s_y for samples whose top
 * score beats the second by at least τ·ln(1000) (decided on detached scores, as the reference does).
 * Gradient per sample: softmax_j((s_j + Δ_j − s_y)/τ) − e_y (smooth), or Σ over the maximising j of (e_j − e_y) (hard,
 * every tied maximum taking the full gradient, as the tensor max does).
 */
export function smoothTop1SvmLosses(scores: tf.Tensor2D, labels: tf.Tensor1D, alpha = 1, tau = 1): tf.Tensor1D {
  const [rows, numClasses] = scores.shape;
  if (numClasses < 2) throw new RangeError(`smooth top-1 SVM needs at least 2 classes, got ${numClasses}`);
  const truth = Array.from(labels.dataSync(), (label) => Math.trunc(label));
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const s = (args[0] as tf.Tensor).dataSync();
    const losses = new Float32Array(rows);
    const jacobian = new Float32Array(rows * numClasses); // d loss_m / d s_{m,j}
    const hardGap = tau * Math.log(1000);
    for (let m = 0; m < rows; m += 1) {
      const row = Array.from(s.subarray(m * numClasses, (m + 1) * numClasses));
      const y = truth[m] as number;
      const sy = row[y] ?? Number.NaN; // an out-of-range label has no true score (tf.oneHot gave a zero row: s_y = 0)
      const shifted = row.map((v, j) => v + (j === y ? 0 : alpha) - (Number.isNaN(sy) ? 0 : sy));
      const sorted = [...row].sort((a, b) => b - a);
      const useHard = (sorted[0] as number) - (sorted[1] as number) >= hardGap;
      const top = Math.max(...shifted);
      if (useHard) {
        losses[m] = top;
        let ties = 0;
        shifted.forEach((v, j) => {
          if (v === top) {
            jacobian[m * numClasses + j] = (jacobian[m * numClasses + j] as number) + 1;
            ties += 1;
          }
        });
        if (y >= 0 && y < numClasses) jacobian[m * numClasses + y] = (jacobian[m * numClasses + y] as number) - ties;
      } else {
        const exps = shifted.map((v) => Math.exp((v - top) / tau));
        const total = exps.reduce((a, b) => a + b, 0);
        losses[m] = top + tau * Math.log(total);
        exps.forEach((e, j) => {
          jacobian[m * numClasses + j] = (jacobian[m * numClasses + j] as number) + e / total;
        });
        if (y >= 0 && y < numClasses) jacobian[m * numClasses + y] = (jacobian[m * numClasses + y] as number) - 1;
      }
    }
    return {
      value: tf.tensor1d(losses, 'float32'),
      gradFunc: (dy: tf.Tensor) => tf.mul(tf.reshape(dy, [rows, 1]), tf.tensor2d(jacobian, [rows, numClasses], 'float32')),
    };
  });
  return op(scores) as tf.Tensor1D;
}
