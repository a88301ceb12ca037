// Values that autodiff must treat as constants: top-k/argmax selections, comparisons and detached copies.
// tfjs has no gradient for TopK, Greater & co., and a tape that reaches one throws even when the gradient would
// be zero; computing them with the tape paused keeps them off it (torch `.detach()` / `no_grad`).
import * as tf from '@tensorflow/tfjs';

/** The part of tfjs's engine state that decides whether kernels are recorded for autodiff (tfjs-core 4.x). */
interface TapeState {
  readonly state: { gradientDepth: number };
}

/**
 * `compute(...inputs)` evaluated off the gradient tape (torch `no_grad`): the result is a float32 constant to
 * autodiff and no gradient flows through it to the inputs. Use for selection matrices, masks and detached copies.
 * The kernels run with tfjs's tape paused, so the result has no tape node at all: backprop neither computes the
 * gradient of the products that consume it (at N = 8,000 a CLAM step spent a [16, 512] × [512, N] product on the
 * gradient of its selection matrix) nor builds zero gradients for the inputs. An input reached only through
 * constants gets no gradient (as a variable the loss does not reach), not a zero one.
 */
export function constantOf<T extends tf.Tensor>(compute: (...inputs: tf.Tensor[]) => T, ...inputs: tf.Tensor[]): T {
  const run = (): T => tf.tidy(() => {
    const out = compute(...inputs);
    return (out.dtype === 'float32' ? out : tf.cast(out, 'float32')) as T;
  });
  const engine = tf.engine() as unknown as Partial<TapeState>;
  const depth = engine.state?.gradientDepth;
  if (!engine.state || typeof depth !== 'number' || depth === 0) return run();
  engine.state.gradientDepth = 0;
  try {
    return run();
  } finally {
    engine.state.gradientDepth = depth;
  }
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
