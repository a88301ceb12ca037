// Kernels for the wasm backend that matter at small bags (N ≈ 1,000), where a training step is a few large matmuls
// and a few hundred kernel calls around them:
// - Slice without the whole-input copy. The stock wasm Slice (tfjs-backend-wasm 4.22) starts with
//   `backend.readSync(x)`, which copies ALL of x out of the heap into a fresh JS buffer before it copies the part
//   asked for; this one copies only that part, straight between views of the heap (the row copy of
//   src/core/nn/heap-slice.ts). Every slice pattern tfjs can send is handled (any rank, any begin/size, -1 sizes);
//   string and complex tensors go to the stock kernel.
// - UnsortedSegmentSum, which the wasm backend does not have: it is the gradient of tf.gather (GatherV2), so without
//   it a row gather cannot be differentiated on wasm and models fell back to a one-hot selection matrix times the
//   rows (OneHot, two Casts and a matmul forward; a matmul per input backward). With it, taking k rows of [N, E] is
//   one GatherV2 forward and one scatter-add of k rows backward.
// Installed with the BLAS extras by src/core/runtime/blas-kernels.ts; `restoreSmallNKernels` puts the stock state back.
import * as tf from '@tensorflow/tfjs';
import { copySliceOnHeap } from '../nn/heap-slice.js';

type KernelConfig = ReturnType<typeof tf.getKernel>;
type KernelFunc = KernelConfig['kernelFunc'];
type KernelArgs = Parameters<KernelFunc>[0];

const BACKEND = 'wasm';
/** The kernels this module registers, each with what was registered before it (undefined: nothing). */
const previous = new Map<string, KernelConfig | undefined>();
const mine = new Map<string, KernelConfig>();

interface WasmHeapAccess {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

function replace(name: string, kernelFunc: KernelFunc): void {
  const current = tf.getKernel(name, BACKEND);
  if (!previous.has(name)) previous.set(name, current);
  if (current) tf.unregisterKernel(name, BACKEND);
  const config: KernelConfig = { kernelName: name, backendName: BACKEND, kernelFunc };
  const stockSetup = previous.get(name)?.setupFunc;
  if (stockSetup) config.setupFunc = stockSetup;
  tf.registerKernel(config);
  mine.set(name, config);
}

/** Registers the small-N kernels on the wasm backend (idempotent). */
export function installSmallNKernels(): void {
  const stockSlice = previous.has('Slice') ? previous.get('Slice') : tf.getKernel('Slice', BACKEND);
  if (!stockSlice) throw new Error('tfjs wasm kernel Slice is not registered (is @tensorflow/tfjs-backend-wasm imported?)');
  if (tf.getKernel('Slice', BACKEND) !== mine.get('Slice')) replace('Slice', (args) => heapCopySlice(args, stockSlice));
  // Only where the backend lacks it: a later tfjs-backend-wasm with its own kernel keeps it.
  if (!tf.getKernel('UnsortedSegmentSum', BACKEND)) replace('UnsortedSegmentSum', unsortedSegmentSum);
}

/** Puts back what was registered before `installSmallNKernels` (idempotent). */
export function restoreSmallNKernels(): void {
  for (const [name, config] of previous) {
    const active = mine.get(name);
    if (active && tf.getKernel(name, BACKEND) === active) tf.unregisterKernel(name, BACKEND);
    if (config && tf.getKernel(name, BACKEND) !== config) tf.registerKernel(config);
  }
  mine.clear();
}

/** The kernel names this module has registered on wasm right now. */
export function activeSmallNKernels(): string[] {
  return [...mine].filter(([name, config]) => tf.getKernel(name, BACKEND) === config).map(([name]) => name).sort();
}

function heapCopySlice(args: KernelArgs, stock: KernelConfig): tf.TensorInfo {
  const x = args.inputs['x']!;
  if (x.dtype === 'string' || x.dtype === 'complex64') return stock.kernelFunc(args) as tf.TensorInfo;
  const { begin, size } = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
  const [fullBegin, fullSize] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size) as [number[], number[]];
  return copySliceOnHeap(args.backend, x, fullBegin, fullSize);
}

/**
 * out[s] = Σ_{i : segmentIds[i] = s} x[i] over the leading axes of x that segmentIds covers; ids outside
 * [0, numSegments) are dropped (as tfjs' cpu kernel and TensorFlow do). Float32 and int32.
 */
function unsortedSegmentSum(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs['x']!;
  const ids = args.inputs['segmentIds']!;
  const { numSegments } = args.attrs as unknown as { numSegments: number };
  const backend = args.backend as WasmHeapAccess;
  const segments = ids.shape.reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(ids.shape.length);
  const width = inner.reduce((a, b) => a * b, 1);
  const out = backend.makeOutput([numSegments, ...inner], x.dtype);
  if (numSegments * width === 0) return out;
  // Views after makeOutput: the allocation can grow, and so detach, the heap.
  const target = backend.typedArrayFromHeap(out);
  target.fill(0);
  if (segments * width === 0) return out;
  const source = backend.typedArrayFromHeap(x);
  const segment = backend.typedArrayFromHeap(ids);
  for (let i = 0; i < segments; i += 1) {
    const s = segment[i]!;
    if (s < 0 || s >= numSegments) continue;
    const from = i * width;
    const to = s * width;
    for (let j = 0; j < width; j += 1) target[to + j]! += source[from + j]!;
  }
  return out;
}
