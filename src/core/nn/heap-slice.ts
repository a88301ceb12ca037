// tf.slice without the wasm backend's whole-input copy. tfjs-backend-wasm's Slice kernel (4.22) starts with
// `backend.readSync(x)`, which copies ALL of x out of the wasm heap into a fresh JS buffer before it copies the
// requested part: taking block after block of rows out of an [L, 512] tensor therefore costs O(L) per block and
// O(L²) per pass (measured: 14.5 ms of CPU to take 1,210 rows of a [1444, 512] tensor, against 3 ms for a
// multiply of the same size). This kernel copies only the requested part, straight between views of the heap.
// Other backends keep tf.slice. Used by the row-chunked TransLayer and TransMIL's PPEG, which slice large tensors
// many times per step.
import * as tf from '@tensorflow/tfjs';

export const HEAP_SLICE = 'MilkitHeapSlice';

interface HeapSliceAttrs {
  begin: number[];
  size: number[];
  /** The input's shape, so the gradient needs only attributes (not the input kept on the tape). */
  inputShape: number[];
}

/** What the kernel uses of tfjs-backend-wasm's BackendWasm. */
interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/**
 * Copies the slice [begin, begin + size) of `x` (begin and size complete, no -1) into a new wasm tensor, as
 * contiguous runs straight between views of the heap: the run is the innermost axes that are taken whole, times
 * the size along the first axis (from the inside) that is not. Numeric dtypes only (float32, int32, bool).
 */
export function copySliceOnHeap(backend: unknown, x: tf.TensorInfo, begin: readonly number[], size: readonly number[]): tf.TensorInfo {
  const wasm = backend as WasmBackend;
  const out = wasm.makeOutput([...size], x.dtype);
  const count = size.reduce((a, b) => a * b, 1);
  if (count === 0) return out;
  // Views are taken after makeOutput: an allocation can grow (and so detach) the heap.
  const source = wasm.typedArrayFromHeap(x);
  const target = wasm.typedArrayFromHeap(out);
  const shape = x.shape;
  const rank = shape.length;
  if (rank === 0) {
    target[0] = source[0]!;
    return out;
  }
  const strides = new Array<number>(rank);
  strides[rank - 1] = 1;
  for (let axis = rank - 2; axis >= 0; axis -= 1) strides[axis] = strides[axis + 1]! * shape[axis + 1]!;
  // Innermost axis that is not taken whole: everything inside it is one contiguous run per index of the outer axes.
  let split = rank - 1;
  while (split > 0 && size[split] === shape[split]) split -= 1;
  const run = size[split]! * strides[split]!;
  const outer = size.slice(0, split);
  const index = new Array<number>(split).fill(0);
  let written = 0;
  for (;;) {
    let offset = begin[split]! * strides[split]!;
    for (let axis = 0; axis < split; axis += 1) offset += (begin[axis]! + index[axis]!) * strides[axis]!;
    target.set(source.subarray(offset, offset + run), written);
    written += run;
    let axis = split - 1;
    while (axis >= 0) {
      index[axis]! += 1;
      if (index[axis]! < outer[axis]!) break;
      index[axis] = 0;
      axis -= 1;
    }
    if (axis < 0) break;
  }
  return out;
}

function heapSliceKernel({ inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { begin, size } = attrs as unknown as HeapSliceAttrs;
  return copySliceOnHeap(backend, inputs['x']!, begin, size);
}

let registered = false;
function register(): void {
  if (registered) return;
  registered = true;
  if (!tf.getKernel(HEAP_SLICE, 'wasm')) tf.registerKernel({ kernelName: HEAP_SLICE, backendName: 'wasm', kernelFunc: heapSliceKernel as unknown as tf.KernelFunc });
  if (!tf.getGradient(HEAP_SLICE)) {
    tf.registerGradient({
      kernelName: HEAP_SLICE,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], _saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
        const { begin, size, inputShape } = attrs as unknown as HeapSliceAttrs;
        const paddings = inputShape.map((extent, axis) => [begin[axis]!, extent - begin[axis]! - size[axis]!] as [number, number]);
        return { x: () => tf.pad(dy as tf.Tensor, paddings) };
      },
    });
  }
}

/** tf.slice(x, begin, size) (size -1 = to the end); on wasm without copying the whole of x first. */
export function heapSlice<T extends tf.Tensor>(x: T, begin: readonly number[], size: readonly number[]): T {
  if (tf.getBackend() !== 'wasm' || x.dtype === 'string' || x.dtype === 'complex64') return tf.slice(x, [...begin], [...size]);
  register();
  const fullBegin = x.shape.map((_, axis) => begin[axis] ?? 0);
  const fullSize = x.shape.map((extent, axis) => {
    const wanted = size[axis] ?? -1;
    return wanted === -1 ? extent - fullBegin[axis]! : wanted;
  });
  fullSize.forEach((extent, axis) => {
    if (fullBegin[axis]! < 0 || extent < 0 || fullBegin[axis]! + extent > x.shape[axis]!) {
      throw new RangeError(`heapSlice: [${fullBegin.join(', ')}] + [${fullSize.join(', ')}] is outside a tensor of shape [${x.shape.join(', ')}]`);
    }
  });
  if (fullSize.every((extent, axis) => extent === x.shape[axis])) return tf.clone(x);
  const attrs: HeapSliceAttrs = { begin: fullBegin, size: fullSize, inputShape: [...x.shape] };
  return tf.engine().runKernel(HEAP_SLICE, { x }, attrs as unknown as tf.NamedAttrMap) as T;
}

/**
 * tf.concat(parts, axis) whose gradient takes each part's rows of the upstream gradient with heapSlice: tfjs'
 * concat gradient splits it with SplitV, which on wasm is one whole-input copy per part (the [1 + N, E] token
 * sequence of TransMIL, class token and square padding joined on, once per concat). Other backends: tf.concat.
 */
export function heapConcat<T extends tf.Tensor>(parts: readonly T[], axis = 0): T {
  if (tf.getBackend() !== 'wasm' || parts.length < 2) return tf.concat([...parts], axis);
  const op = tf.customGrad((...args: unknown[]) => {
    const xs = args.slice(0, -1) as tf.Tensor[];
    return {
      value: tf.concat(xs, axis),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        const upstream = (Array.isArray(dy) ? dy[0] : dy) as tf.Tensor;
        let offset = 0;
        return xs.map((x) => {
          const begin = x.shape.map((_, a) => (a === axis ? offset : 0));
          offset += x.shape[axis]!;
          return heapSlice(upstream, begin, x.shape);
        });
      },
    };
  });
  return op(...parts) as T;
}

/**
 * Rows `rows` of x [N, E] → [M, E], differentiable in x. tf.gather where the backend can differentiate it (its
 * gradient is UnsortedSegmentSum, which milkit's runtime adds to wasm: src/core/runtime/small-n-kernels.ts): one
 * gather forward and one scatter-add of M rows backward. Elsewhere the [M, N] one-hot selection matrix times x, the
 * same values (a product with one 1 per row) and gradient, at the cost of a matmul each way.
 */
export function gatherRows(x: tf.Tensor2D, rows: ArrayLike<number>): tf.Tensor2D {
  const picked = Int32Array.from(rows);
  const numRows = x.shape[0];
  if (!tf.getKernel('UnsortedSegmentSum', tf.getBackend())) {
    return tf.tidy(() => tf.matMul(tf.cast(tf.oneHot(tf.tensor1d(picked, 'int32'), numRows), 'float32'), x) as tf.Tensor2D);
  }
  // The gradient straight as one UnsortedSegmentSum: tfjs' own GatherV2 gradient wraps it in two Reshapes and two
  // (identity) Transposes, each a kernel call, and keeps x on the tape.
  const op = tf.customGrad((...args: unknown[]) => {
    const input = args[0] as tf.Tensor2D;
    return {
      value: tf.tidy(() => tf.gather(input, tf.tensor1d(picked, 'int32'))),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => tf.tidy(() => tf.unsortedSegmentSum(Array.isArray(dy) ? dy[0]! : dy, tf.tensor1d(picked, 'int32'), numRows)),
    };
  });
  return op(x) as tf.Tensor2D;
}

/**
 * Indices of the k largest (`largest`) or smallest entries of `values`, best first; ties go to the lower index
 * (as tf.topk). Host-side, for the score vector of one bag: one pass keeping the best k in order (O(N·k) at worst,
 * O(N) when most entries lose to the k-th best at once) costs less than TopK, Neg and the casts of a selection built
 * as kernels.
 */
export function topKIndices(values: ArrayLike<number>, k: number, side: 'largest' | 'smallest'): Int32Array {
  const count = Math.max(0, Math.min(k, values.length));
  const best = new Int32Array(count);
  const score = new Float64Array(count); // sign-adjusted: larger is better
  const sign = side === 'largest' ? 1 : -1;
  let filled = 0;
  for (let i = 0; i < values.length && count > 0; i += 1) {
    const v = sign * (values[i] as number);
    // Scanning upwards, an equal score never beats an earlier index: only strictly better entries get in.
    if (filled === count && !(v > score[count - 1]!)) continue;
    let at = filled === count ? count - 1 : filled;
    while (at > 0 && v > score[at - 1]!) {
      score[at] = score[at - 1]!;
      best[at] = best[at - 1]!;
      at -= 1;
    }
    score[at] = v;
    best[at] = i;
    if (filled < count) filled += 1;
  }
  return best;
}
