// Values that autodiff must treat as constants: top-k/argmax selections, comparisons and detached copies.
// tfjs has no gradient for TopK, Greater & co., and a tape that reaches one throws even when the gradient would
// be zero; computing them inside a custom-gradient op keeps them off the tape (torch `.detach()` / `no_grad`).
import * as tf from '@tensorflow/tfjs';

type GradSave = (tensors: tf.Tensor[]) => void;

/**
 * `compute(...inputs)` evaluated off the gradient tape: the result is a float32 constant to autodiff and the
 * inputs receive zero gradient through it. Use for selection matrices, masks and detached copies.
 */
export function constantOf<T extends tf.Tensor>(compute: (...inputs: tf.Tensor[]) => T, ...inputs: tf.Tensor[]): T {
  if (inputs.length === 0) return tf.tidy(() => compute());
  const op = tf.customGrad((...args: Array<tf.Tensor | GradSave>) => {
    const tensors = args.slice(0, inputs.length) as tf.Tensor[];
    const value = tf.tidy(() => {
      const out = compute(...tensors);
      return out.dtype === 'float32' ? out : tf.cast(out, 'float32');
    });
    return { value, gradFunc: () => tensors.map((t) => tf.zerosLike(t)) };
  });
  return op(...inputs) as T;
}

/** x with its gradient cut (torch `x.detach()`). */
export function detach<T extends tf.Tensor>(x: T): T {
  return constantOf((t) => tf.clone(t), x) as T;
}

/**
 * [M, N] 0/1 matrix whose row m picks instance `indices[m]`; multiplying it with [N, E] gathers rows with a
 * gradient every backend has (a matmul), where `tf.gather`'s gradient needs UnsortedSegmentSum (absent in wasm).
 */
export function selectionMatrix(indices: tf.Tensor1D, numRows: number): tf.Tensor2D {
  return tf.tidy(() => tf.cast(tf.oneHot(tf.cast(indices, 'int32'), numRows), 'float32') as tf.Tensor2D);
}

/** Rows `indices` of x [N, E] → [M, E], differentiable in x on every backend (selection-matrix matmul). */
export function selectRows(x: tf.Tensor2D, indices: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => tf.matMul(selectionMatrix(indices, x.shape[0]), x) as tf.Tensor2D);
}

/**
 * Indices of the k largest (`largest`) or smallest entries of `scores` [N], as a constant [k, N] selection
 * matrix: selection never carries gradient (torch.topk indices do not either).
 */
export function topKSelection(scores: tf.Tensor1D, k: number, side: 'largest' | 'smallest'): tf.Tensor2D {
  const n = scores.shape[0];
  return constantOf((s) => {
    const ranked = side === 'largest' ? s : tf.neg(s);
    return selectionMatrix(tf.topk(ranked as tf.Tensor1D, k).indices, n);
  }, scores) as tf.Tensor2D;
}
