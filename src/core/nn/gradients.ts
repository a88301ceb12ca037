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
