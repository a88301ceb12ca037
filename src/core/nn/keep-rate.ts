// Keep rate of per-branch binary gates (HDMIL, docs/methods/hdmil.md#keep-rate): the fraction of instances kept by ANY branch,
// with the gradient of the branch-sum (straight-through on the union), as DMIN's rate loss and LIPN need.
import * as tf from '@tensorflow/tfjs';
import { stepGate, straightThrough } from './gradients.js';

/** Which branches the union looks at: HDMIL reads classes 0 and 1 only (even with 3 classes); AHDMIL all. */
export type KeepRateBranches = 'first-two' | 'all';

/** Gate columns the union is taken over. */
export function rateColumns(mask: tf.Tensor2D, branches: KeepRateBranches): tf.Tensor2D {
  const [, k] = mask.shape;
  return branches === 'all' || k <= 2 ? mask : (tf.slice(mask, [0, 0], [-1, 2]) as tf.Tensor2D);
}

/**
 * mean_n 1[Σ_c M[n, c] > 0] over the chosen branches, with d/dM = 1/N (straight-through on the union).
 * `mask` [N, K] holds 0/1 values (usually themselves straight-through gates).
 */
export function unionKeepRate(mask: tf.Tensor2D, branches: KeepRateBranches): tf.Scalar {
  return tf.tidy(() => {
    const selected = tf.sum(rateColumns(mask, branches), 1); // [N]  Σ_c M[n, c]
    const union = stepGate(selected, 0); // [N]  u_n
    return tf.mean(straightThrough(union, selected)) as tf.Scalar; // rate
  });
}

/** Host-side: the fraction of rows of a 0/1 (or logit, > 0 = kept) [N, K] mask kept by any branch (logging, kept rates). */
export function unionFraction(mask: ArrayLike<number>, rows: number, branches: number): number {
  if (rows === 0) return 0;
  let kept = 0;
  for (let n = 0; n < rows; n += 1) {
    for (let k = 0; k < branches; k += 1) {
      if ((mask[n * branches + k] as number) > 0) {
        kept += 1;
        break;
      }
    }
  }
  return kept / rows;
}
