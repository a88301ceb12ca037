// The iterative Moore-Penrose pseudo-inverse of Nyström attention (moorePenrosePinv in nystrom.ts: the same
// operations in the same order, so the same values) with its intermediates kept, and the matching backward pass by
// hand. Differentiating through a recomputation (what a recomputing layer does otherwise) runs the 6 iterations'
// 24 batched [h, m, m] products again before the 48 of the backward; on wasm these m = 256 products are a third
// of a TransMIL step at N = 1,000. Keeping the iterates costs 4 × [h, m, m] floats per iteration (48 MB for
// h = 8, m = 256, 6 iterations), independent of N (docs/methods/transmil.md#nystrom-attention).
import * as tf from '@tensorflow/tfjs';

/** What the backward pass needs of one forward: the input, and per iteration Z_i, X Z_i and the two inner products. */
export interface PinvTape {
  readonly x: tf.Tensor3D;
  readonly iterates: ReadonlyArray<{ z: tf.Tensor3D; xz: tf.Tensor3D; t1: tf.Tensor3D; t2: tf.Tensor3D }>;
}

/** Z₀ = xᵀ / (max row sum · max column sum of |x|), scaled by the global maxima over every matrix of the batch. */
function initialZ(x: tf.Tensor3D): tf.Tensor3D {
  const absX = tf.abs(x); // [B, m, m]
  const scale = tf.mul(tf.max(tf.sum(absX, -1)), tf.max(tf.sum(absX, -2))); // scalar
  return tf.div(tf.transpose(x, [0, 2, 1]), scale) as tf.Tensor3D;
}

/** x⁺ [B, m, m] by `iterations` Newton-Schulz-type steps, and the tape for pinvBackward (its tensors are kept: release with disposeTape). */
export function pinvWithTape(x: tf.Tensor3D, iterations: number): { value: tf.Tensor3D; tape: PinvTape } {
  const iterates: Array<{ z: tf.Tensor3D; xz: tf.Tensor3D; t1: tf.Tensor3D; t2: tf.Tensor3D }> = [];
  const value = tf.tidy(() => {
    const eye = tf.eye(x.shape[1]).expandDims(0); // [1, m, m]
    let z = initialZ(x);
    for (let i = 0; i < iterations; i += 1) {
      const xz = tf.matMul(x, z) as tf.Tensor3D;
      const t1 = tf.matMul(xz, tf.sub(tf.mul(eye, 7), xz)) as tf.Tensor3D; // xz (7I − xz)
      const t2 = tf.matMul(xz, tf.sub(tf.mul(eye, 15), t1)) as tf.Tensor3D; // xz (15I − t1)
      iterates.push({ z: tf.keep(z), xz: tf.keep(xz), t1: tf.keep(t1), t2: tf.keep(t2) });
      z = tf.mul(tf.matMul(z, tf.sub(tf.mul(eye, 13), t2)), 0.25) as tf.Tensor3D; // ¼ Z (13I − t2)
    }
    return z;
  });
  return { value, tape: { x: tf.keep(tf.clone(x)), iterates } };
}

/** The tape's tensors in a fixed order (to hand them to a custom op's save), and back. */
export function tapeTensors(tape: PinvTape): tf.Tensor3D[] {
  return [tape.x, ...tape.iterates.flatMap(({ z, xz, t1, t2 }) => [z, xz, t1, t2])];
}
export function tapeFrom(tensors: readonly tf.Tensor[]): PinvTape {
  const [x, ...rest] = tensors as tf.Tensor3D[];
  const iterates = [];
  for (let i = 0; i + 3 < rest.length; i += 4) iterates.push({ z: rest[i]!, xz: rest[i + 1]!, t1: rest[i + 2]!, t2: rest[i + 3]! });
  return { x: x!, iterates };
}

/** Gradients of f() seeded with dy with respect to xs (a caller inside a backward pass passes one that keeps the outer tape). */
export type Vjp = (f: () => tf.Tensor, xs: readonly tf.Tensor[], dy: tf.Tensor) => tf.Tensor[];

/** dL/dx of x⁺ from dL/dx⁺ `dz` [B, m, m]: 8 batched products per iteration, in reverse. */
export function pinvBackward(tape: PinvTape, dz: tf.Tensor3D, vjp: Vjp): tf.Tensor3D {
  return tf.tidy(() => {
    const { x } = tape;
    const eye = tf.eye(x.shape[1]).expandDims(0);
    let dx: tf.Tensor = tf.zerosLike(x);
    let g: tf.Tensor = dz; // dL/dZ_{i+1}
    for (let i = tape.iterates.length - 1; i >= 0; i -= 1) {
      const { z, xz, t1, t2 } = tape.iterates[i]!;
      const dScaled = tf.mul(g, 0.25); // Z_{i+1} = ¼ (Z_i · outer)
      const dOuter = tf.matMul(z, dScaled, true, false);
      let dZ: tf.Tensor = tf.matMul(dScaled, tf.sub(tf.mul(eye, 13), t2), false, true);
      const dT2 = tf.neg(dOuter); // outer = 13I − t2, t2 = xz · middle
      const dMiddle = tf.matMul(xz, dT2, true, false);
      let dXz: tf.Tensor = tf.matMul(dT2, tf.sub(tf.mul(eye, 15), t1), false, true);
      const dT1 = tf.neg(dMiddle); // middle = 15I − t1, t1 = xz · inner
      const dInner = tf.matMul(xz, dT1, true, false);
      dXz = tf.add(dXz, tf.matMul(dT1, tf.sub(tf.mul(eye, 7), xz), false, true));
      dXz = tf.sub(dXz, dInner); // inner = 7I − xz
      dx = tf.add(dx, tf.matMul(dXz, z, false, true)); // xz = x · Z_i
      dZ = tf.add(dZ, tf.matMul(x, dXz, true, false));
      g = dZ;
    }
    // Z₀'s dependence on x (the transpose and the data-dependent scale): no products, so tfjs' own gradient.
    const [dx0] = vjp(() => initialZ(x), [x], g);
    return tf.add(dx, dx0!) as tf.Tensor3D;
  });
}
