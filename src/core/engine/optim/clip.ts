// Global-norm gradient clipping as torch.nn.utils.clip_grad_norm_ (torch 1.13, norm_type 2): every gradient
// is scaled by min(1, maxNorm / (||g|| + 1e-6)), where ||g|| is the 2-norm of all gradients concatenated.
import * as tf from '@tensorflow/tfjs';

/** On-device form of clipByGlobalNorm: the pre-clip norm stays a tensor, so nothing waits on the device. */
export function clipGradientsByGlobalNorm(grads: readonly tf.Tensor[], maxNorm: number): { grads: tf.Tensor[]; norm: tf.Scalar } {
  if (!(maxNorm > 0)) throw new RangeError(`clipByGlobalNorm: maxNorm must be > 0 (got ${maxNorm})`);
  if (grads.length === 0) return { grads: [], norm: tf.scalar(0) };
  return tf.tidy(() => {
    const norms = grads.map((g) => g.square().sum().sqrt()); // ||g_i||_2
    const norm = tf.stack(norms).square().sum().sqrt() as tf.Scalar; // ||(||g_1||, ..., ||g_n||)||_2
    // The 1e-6 and the clamp at 1 are torch's: below the threshold gradients are multiplied by exactly 1.
    const coefficient = tf.minimum(tf.scalar(maxNorm).div(norm.add(1e-6)), 1);
    return { grads: grads.map((g) => g.mul(coefficient)), norm };
  });
}

/** Global-norm clipping as torch.nn.utils.clip_grad_norm_ (returns new tensors and the pre-clip norm). */
export function clipByGlobalNorm(grads: readonly tf.Tensor[], maxNorm: number): { grads: tf.Tensor[]; norm: number } {
  const clipped = clipGradientsByGlobalNorm(grads, maxNorm);
  // The one host read: a single scalar, which the trainer logs anyway.
  const norm = clipped.norm.dataSync()[0] as number;
  clipped.norm.dispose();
  return { grads: clipped.grads, norm };
}
