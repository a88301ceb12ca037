// Gradient surgery shared by gated/straight-through models (HDMIL's DMIN and LIPN): stop-gradient,
// straight-through estimators and an |x| whose gradient at 0 is 0 as in PyTorch (tfjs uses -1 there).
import * as tf from '@tensorflow/tfjs';

type GradSave = (tensors: tf.Tensor[]) => void;

const stopGradientOp = tf.customGrad((...inputs: Array<tf.Tensor | GradSave>) => {
  const x = inputs[0] as tf.Tensor;
  return { value: tf.clone(x), gradFunc: (dy: tf.Tensor) => [tf.zerosLike(dy)] };
});

/** Identity in value, zero gradient (torch `.detach()`). */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return stopGradientOp(x) as T;
}

/**
 * Straight-through estimator: the value of `hard`, the gradient of `soft`. Evaluated as
 * (hard - detach(soft)) + soft, the same float operations as the PyTorch idiom, so values match bit for bit.
 */
export function straightThrough<T extends tf.Tensor>(hard: T, soft: T): T {
  return tf.add(tf.sub(hard, stopGradient(soft)), soft) as T;
}

const torchAbsOp = tf.customGrad((...inputs: Array<tf.Tensor | GradSave>) => {
  const x = inputs[0] as tf.Tensor;
  (inputs[1] as GradSave)([x]);
  return {
    value: tf.abs(x),
    // d|x|/dx = sign(x), 0 at x = 0 (tfjs' built-in Abs gradient gives -1 at 0).
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(dy, tf.sign(saved[0] as tf.Tensor))],
  };
});

/** |x| with PyTorch's subgradient sign(x) (0 at 0); matters for L1 losses between binary masks. */
export function torchAbs<T extends tf.Tensor>(x: T): T {
  return torchAbsOp(x) as T;
}

const stepGateOps = new Map<number, (x: tf.Tensor) => tf.Tensor>();

/**
 * 1[x > threshold] as float32, with zero gradient. Comparison ops have no gradient in tfjs, so a hard gate on a
 * differentiable input must be built inside a custom op or the backward pass fails.
 */
export function stepGate<T extends tf.Tensor>(x: T, threshold: number): T {
  let op = stepGateOps.get(threshold);
  if (!op) {
    op = tf.customGrad((...inputs: Array<tf.Tensor | GradSave>) => {
      const input = inputs[0] as tf.Tensor;
      return { value: tf.cast(tf.greater(input, threshold), 'float32'), gradFunc: (dy: tf.Tensor) => [tf.zerosLike(dy)] };
    });
    stepGateOps.set(threshold, op);
  }
  return op(x) as T;
}

/** Binary gate 1[soft > threshold] whose gradient is that of `soft` (straight-through). */
export function straightThroughGate<T extends tf.Tensor>(soft: T, threshold: number): T {
  return straightThrough(stepGate(soft, threshold), soft);
}

const maskedColumnMaxOp = tf.customGrad((...inputs: Array<tf.Tensor | GradSave>) => {
  const [x, mask] = inputs as [tf.Tensor2D, tf.Tensor2D];
  const value = tf.tidy(() => {
    const kept = tf.greater(mask, 0);
    const columnMax = tf.max(tf.where(kept, x, tf.fill(x.shape, Number.NEGATIVE_INFINITY)), 0, true); // [1, K]
    return tf.where(tf.isFinite(columnMax), columnMax, tf.zerosLike(columnMax));
  });
  return { value, gradFunc: () => [tf.zerosLike(x), tf.zerosLike(mask)] };
});

/** [N, K] values and 0/1 mask → [1, K] max over the kept rows of each column (0 for an empty column), no gradient. */
export function maskedColumnMax(x: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor2D {
  return maskedColumnMaxOp(x, mask) as tf.Tensor2D;
}

const nonZeroOp = tf.customGrad((...inputs: Array<tf.Tensor | GradSave>) => {
  const x = inputs[0] as tf.Tensor;
  (inputs[1] as GradSave)([x]);
  return {
    value: tf.where(tf.equal(x, 0), tf.onesLike(x), x),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(dy, tf.cast(tf.notEqual(saved[0] as tf.Tensor, 0), 'float32'))],
  };
});

/** x with exact zeros replaced by 1 (a safe divisor for an empty normalisation set); gradient 0 there. */
export function nonZeroDivisor<T extends tf.Tensor>(x: T): T {
  return nonZeroOp(x) as T;
}
