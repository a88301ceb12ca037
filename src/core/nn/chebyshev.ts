// Chebyshev-polynomial Kolmogorov-Arnold layer (HDMIL's CKA, docs/methods/hdmil.md#cka): tanh squash, Chebyshev
// basis T_0..T_K of the first kind, one learned coefficient per (input, output, degree), no bias.
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../runtime/random.js';
import { initWeight } from './init.js';
import { Module } from './module.js';

/** T_0..T_K of every entry of `t`, stacked on a new last axis: [..., K+1]. T_0 = 1, T_1 = t, T_k = 2t T_{k-1} - T_{k-2}. */
export function chebyshevBasis(t: tf.Tensor, degree: number): tf.Tensor {
  if (!Number.isInteger(degree) || degree < 0) throw new RangeError(`Chebyshev degree must be a non-negative integer, got ${degree}`);
  return tf.tidy(() => {
    const terms: tf.Tensor[] = [tf.onesLike(t)];
    if (degree >= 1) terms.push(t);
    for (let k = 2; k <= degree; k += 1) {
      const previous = terms[k - 1] as tf.Tensor;
      const beforePrevious = terms[k - 2] as tf.Tensor;
      terms.push(tf.sub(tf.mul(tf.mul(t, 2), previous), beforePrevious)); // T_k = 2 t T_{k-1} - T_{k-2}
    }
    return tf.stack(terms, -1); // [..., K+1]
  });
}

/** Coefficient initialisations of the reference (its `init_type` option). */
export type ChebyshevInit = 'xavier-normal' | 'normal';

/**
 * y_o = Σ_i Σ_k Θ[i, o, k] T_k(tanh(x_i)). Θ is stored [I, K+1, O] so the sum is one matmul; the torch
 * tensor `cheby_coeffs` is [I, O, K+1] (perm [0, 2, 1]).
 */
export class ChebyshevKanLayer extends Module {
  readonly coefficients: tf.Variable;

  constructor(readonly inFeatures: number, readonly outFeatures: number, readonly degree: number, rng: Rng, init: ChebyshevInit = 'xavier-normal') {
    super();
    const torchShape = [inFeatures, outFeatures, degree + 1];
    // xavier on the 3-D tensor: fan_in = O(K+1), fan_out = I(K+1) (torch's rule for >2-D tensors).
    const torchTheta = init === 'xavier-normal'
      ? initWeight('xavier-normal', torchShape, rng)
      : tf.tensor(rng.normalArray(inFeatures * outFeatures * (degree + 1), 0, 1 / (inFeatures * (degree + 1))), torchShape);
    this.coefficients = this.addParameter('cheby_coeffs', tf.tidy(() => tf.transpose(torchTheta, [0, 2, 1])), { perm: [0, 2, 1] });
    torchTheta.dispose();
  }

  /** [M, I] → [M, O]. */
  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const [rows] = x.shape;
      const t = tf.tanh(x); // [M, I]  squash into (-1, 1), the Chebyshev domain
      const basis = chebyshevBasis(t, this.degree); // [M, I, K+1]
      const flat = tf.reshape(basis, [rows, this.inFeatures * (this.degree + 1)]); // [M, I(K+1)]
      const theta = tf.reshape(this.coefficients, [this.inFeatures * (this.degree + 1), this.outFeatures]); // [I(K+1), O]
      return tf.matMul(flat, theta) as tf.Tensor2D; // [M, O]
    });
  }
}
