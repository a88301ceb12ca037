// Chebyshev-polynomial Kolmogorov-Arnold layer (HDMIL's CKA, docs/methods/hdmil.md#cka): tanh squash, Chebyshev
// basis T_0..T_K of the first kind, one learned coefficient per (input, output, degree), no bias.
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../runtime/random.js';
import { hostFloatValues } from './host-values.js';
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

type GradSave = (tensors: tf.Tensor[]) => void;

/** T_0..T_K of `t` by the recurrence, each shaped like `t`. */
function chebyshevTerms(t: tf.Tensor, degree: number): tf.Tensor[] {
  const terms: tf.Tensor[] = [tf.onesLike(t)];
  if (degree >= 1) terms.push(t);
  const twoT = degree >= 2 ? tf.mul(t, 2) : undefined; // 2t, shared by every step
  for (let k = 2; k <= degree; k += 1) {
    terms.push(tf.sub(tf.mul(twoT as tf.Tensor, terms[k - 1] as tf.Tensor), terms[k - 2] as tf.Tensor)); // T_k = 2t T_{k-1} - T_{k-2}
  }
  return terms;
}

/**
 * dT_0/dt..dT_K/dt by differentiating the recurrence: T'_0 = 0, T'_1 = 1, T'_k = 2 T_{k-1} + 2t T'_{k-1} - T'_{k-2}
 * (= k U_{k-1}(t), bounded by k² on [-1, 1]).
 */
function chebyshevDerivatives(t: tf.Tensor, terms: readonly tf.Tensor[]): tf.Tensor[] {
  const derivatives: tf.Tensor[] = [tf.zerosLike(t)];
  if (terms.length >= 2) derivatives.push(tf.onesLike(t));
  const twoT = terms.length >= 3 ? tf.mul(t, 2) : undefined;
  for (let k = 2; k < terms.length; k += 1) {
    const fromValue = tf.mul(terms[k - 1] as tf.Tensor, 2);
    const fromSlope = tf.mul(twoT as tf.Tensor, derivatives[k - 1] as tf.Tensor);
    derivatives.push(tf.sub(tf.add(fromValue, fromSlope), derivatives[k - 2] as tf.Tensor));
  }
  return derivatives;
}

const degreeMajorOps = new Map<number, (t: tf.Tensor) => tf.Tensor>();

/**
 * Basis (and derivative) arrays up to this many values are computed on the host and uploaded once: for the bag
 * embedding of DMIN's CKA head ([1, 512], 6,656 values at K = 12) the recurrence as kernels is ~2K tiny dispatches
 * forward and ~3K backward per call, more than the arithmetic (forward + backward, CPU time: 1.1 ms as kernels,
 * 0.19 ms on the host). Larger inputs keep the kernels, whose SIMD loops beat the scalar host loop (the 64 kept
 * instances, [64, 512]: 6.9 ms as kernels, 23 ms on the host; break-even near 25,000 values).
 */
export const CHEBYSHEV_HOST_MAX_VALUES = 1 << 14;

const f32 = Math.fround;

/**
 * [K+1, ...] blocks of T_k(t) (or of dT_k/dt with `derivatives`) computed on the host, replaying the float32 operations
 * of chebyshevTerms / chebyshevDerivatives with Math.fround (a single float32 +, −, × computed in float64 and rounded
 * once is the float32 result the kernels give), so both paths hold the same values bit for bit.
 */
function hostChebyshevBlocks(t: tf.Tensor, degree: number, derivatives: boolean): tf.Tensor {
  const values = hostFloatValues(t);
  const size = values.length;
  const out = new Float32Array((degree + 1) * size);
  for (let i = 0; i < size; i += 1) {
    const x = values[i] as number;
    const twoX = f32(x * 2);
    let beforePrevious = 1; // T_0
    let previous = x; // T_1
    let slopeBefore = 0; // T'_0
    let slope = 1; // T'_1
    out[i] = derivatives ? 0 : 1;
    if (degree >= 1) out[size + i] = derivatives ? 1 : x;
    for (let k = 2; k <= degree; k += 1) {
      const next = f32(f32(twoX * previous) - beforePrevious); // T_k = 2t T_{k-1} - T_{k-2}
      if (derivatives) {
        const nextSlope = f32(f32(f32(previous * 2) + f32(twoX * slope)) - slopeBefore); // 2 T_{k-1} + 2t T'_{k-1} - T'_{k-2}
        slopeBefore = slope;
        slope = nextSlope;
        out[k * size + i] = nextSlope;
      } else {
        out[k * size + i] = next;
      }
      beforePrevious = previous;
      previous = next;
    }
  }
  return tf.tensor(out, [degree + 1, ...t.shape], 'float32');
}

/** The basis with a hand-written gradient, one op per degree (customGrad closes over K). */
function degreeMajorOp(degree: number): (t: tf.Tensor) => tf.Tensor {
  let op = degreeMajorOps.get(degree);
  if (op === undefined) {
    op = tf.customGrad((...args: Array<tf.Tensor | GradSave>) => {
      const t = args[0] as tf.Tensor;
      (args[1] as GradSave)([t]);
      const onHost = t.dtype === 'float32' && t.size * (degree + 1) <= CHEBYSHEV_HOST_MAX_VALUES;
      return {
        // [K+1, ...]: whole blocks, no strided copy
        value: onHost ? hostChebyshevBlocks(t, degree, false) : tf.tidy(() => tf.stack(chebyshevTerms(t, degree), 0)),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          tf.tidy(() => {
            const ts = saved[0] as tf.Tensor;
            const derivatives = onHost ? hostChebyshevBlocks(ts, degree, true) : tf.stack(chebyshevDerivatives(ts, chebyshevTerms(ts, degree)), 0); // [K+1, ...]
            return [tf.sum(tf.mul(dy, derivatives), 0)];
          }),
      };
    }) as (t: tf.Tensor) => tf.Tensor;
    degreeMajorOps.set(degree, op);
  }
  return op;
}

/**
 * T_0..T_K of a matrix `t` [M, I] as K+1 whole blocks: [K+1, M, I] with T_k(t) in block k. Stacking on the
 * leading axis copies each [M, I] block once, where stacking on the last axis (`chebyshevBasis`) makes the wasm
 * Pack kernel copy one float at a time and its gradient (Unpack) slice with stride K+1; the gradient here is
 * written by hand so backprop needs no per-degree slices either.
 */
export function chebyshevBasisDegreeMajor(t: tf.Tensor2D, degree: number): tf.Tensor3D {
  if (!Number.isInteger(degree) || degree < 0) throw new RangeError(`Chebyshev degree must be a non-negative integer, got ${degree}`);
  return degreeMajorOp(degree)(t) as tf.Tensor3D;
}

/** Coefficient initialisations of the reference (its `init_type` option). */
export type ChebyshevInit = 'xavier-normal' | 'normal';

/**
 * y_o = Σ_i Σ_k Θ[i, o, k] T_k(tanh(x_i)). Θ is stored [I, K+1, O] (so checkpoints keep their layout) and read as
 * [K+1, I, O] against the degree-major basis, so the sum is one batched matmul and a Sum over degrees; the torch
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
      const t = tf.tanh(x); // [M, I]  squash into (-1, 1), the Chebyshev domain
      const basis = chebyshevBasisDegreeMajor(t, this.degree); // [K+1, M, I]
      // Θ [I, K+1, O] read as [K+1, I, O]: transposing the small coefficient tensor (I·(K+1)·O floats) is far
      // cheaper than reordering the [K+1, M, I] basis.
      const theta = tf.transpose(this.coefficients, [1, 0, 2]); // [K+1, I, O]
      const perDegree = tf.matMul(basis, theta); // [K+1, M, O]: Σ_i T_k(t_i) Θ[i, o, k], one batched product
      return tf.sum(perDegree, 0) as tf.Tensor2D; // [M, O]: Σ_k over the leading axis
    });
  }
}
