// Values that autodiff must treat as constants: top-k/argmax selections, comparisons and detached copies.
// tfjs has no gradient for TopK, Greater & co., and a tape that reaches one throws even when the gradient would
// be zero; computing them with the tape paused keeps them off it (torch `.detach()` / `no_grad`).
import * as tf from '@tensorflow/tfjs';
import { hostFloatValues } from './host-values.js';

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

/** dx [N, E] of a row gather: dy's row m added to row rows[m] (repeated rows accumulate), zero elsewhere. */
function scatterRows(dy: tf.Tensor, rows: Int32Array, numRows: number, width: number): tf.Tensor2D {
  if (tf.getBackend() !== 'wasm') {
    return tf.tidy(() => tf.scatterND(tf.tensor2d(rows, [rows.length, 1], 'int32'), dy, [numRows, width]) as tf.Tensor2D);
  }
  // On wasm the M rows are added on the host into a zero-filled buffer on the heap (ScatterNd would be one more pass).
  const upstream = Float32Array.from(hostFloatValues(dy));
  const dx = tf.zeros([numRows, width]) as tf.Tensor2D;
  const out = hostFloatValues(dx);
  for (let m = 0; m < rows.length; m += 1) {
    const to = (rows[m] as number) * width;
    const from = m * width;
    for (let e = 0; e < width; e += 1) out[to + e] = (out[to + e] as number) + (upstream[from + e] as number);
  }
  return dx;
}

/**
 * Rows `indices` of x [N, E] → [M, E], differentiable in x on every backend: a gather forward, and a scatter of the
 * M upstream rows backward (torch's index_select), where a selection-matrix product costs an [M, N] × [N, E] product
 * forward and an [N, M] × [M, E] one backward (at N = 8,000 and M = 64, DMIN's clustering rows, ~7 ms CPU each).
 * `tf.gather`'s own gradient needs UnsortedSegmentSum, absent in wasm. The indices are read to the host.
 */
export function selectRows(x: tf.Tensor2D, indices: tf.Tensor1D): tf.Tensor2D {
  const [numRows, width] = x.shape;
  const rows = Int32Array.from(indices.dataSync());
  for (const row of rows) {
    if (!(row >= 0 && row < numRows)) throw new RangeError(`selectRows: row ${row} is outside [0, ${numRows})`);
  }
  const op = tf.customGrad((...args: Array<tf.Tensor | ((tensors: tf.Tensor[]) => void)>) => {
    const input = args[0] as tf.Tensor2D;
    return {
      value: tf.tidy(() => tf.gather(input, tf.tensor1d(rows, 'int32')) as tf.Tensor2D),
      gradFunc: (dy: tf.Tensor) => [scatterRows(dy, rows, numRows, width)],
    };
  });
  return op(x) as tf.Tensor2D;
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
