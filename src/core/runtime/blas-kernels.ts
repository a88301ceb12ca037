// Kernel overrides for the tfjs wasm backend. With a native BLAS: BatchMatMul and _FusedMatMul run as cblas_sgemm
// straight on the wasm heap (no copy; transposes handled by sgemm), plus a copy-free Identity and same-dtype Cast, leading-axis Sum via
// sgemv, and Tanh as 2σ(2x) − 1 on the vectorised sigmoid (the stock wasm tanh is scalar libm, ~40 ns per element).
// Without BLAS: matmuls are reshaped for the stock kernel's fast path (explicit transposes, batches run entry by entry;
// the stock kernel is 13-40× slower on transposed operands and ~20× on batches), which also reroutes _FusedMatMul with
// bias + transpose, computed wrong by stock tfjs-backend-wasm 4.22 (docs/runtime.md#native-blas-for-the-wasm-backend-full-speed). The stock kernels are kept and
// put back by `restoreStockWasmKernels`.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { CBLAS_NO_TRANS, CBLAS_ROW_MAJOR, CBLAS_TRANS, type NativeBlas } from './native-blas.js';
import { activeHeapKernels, installHeapKernels, restoreHeapKernels } from './heap-kernels.js';
import { activeSmallNKernels, installSmallNKernels, restoreSmallNKernels } from './small-n-kernels.js';

type KernelConfig = ReturnType<typeof tf.getKernel>;
type KernelFunc = KernelConfig['kernelFunc'];
type TensorInfo = tf.TensorInfo;
type KernelArgs = Parameters<KernelFunc>[0];

const BACKEND = 'wasm';

/** What `installWasmKernels` registers: the BLAS kernels with `blas`, otherwise the stock-friendly matmuls. */
export interface WasmKernelOptions {
  readonly blas?: NativeBlas;
  /**
   * Also override Identity and same-dtype Cast (copy-free), Sum over leading axes (sgemv), Tanh (via the SIMD
   * sigmoid) and Slice (copy of the part only), and add UnsortedSegmentSum; only with `blas`.
   */
  readonly extras?: boolean;
}

const stockKernels = new Map<string, KernelConfig>();
const installed = new Map<string, KernelConfig>();

function stock(name: string): KernelConfig {
  const config = stockKernels.get(name) ?? tf.getKernel(name, BACKEND);
  if (!config) throw new Error(`tfjs wasm kernel ${name} is not registered (is @tensorflow/tfjs-backend-wasm imported?)`);
  return config;
}

function runStock(name: string, args: KernelArgs): TensorInfo {
  return stock(name).kernelFunc(args) as TensorInfo;
}

function override(name: string, kernelFunc: KernelFunc): void {
  const current = tf.getKernel(name, BACKEND);
  if (!current) throw new Error(`tfjs wasm kernel ${name} is not registered (is @tensorflow/tfjs-backend-wasm imported?)`);
  if (!stockKernels.has(name)) stockKernels.set(name, current);
  const original = stock(name);
  tf.unregisterKernel(name, BACKEND);
  // Keep the stock setup (it binds the wasm function the fallback path calls) for a backend initialised later.
  const config: KernelConfig = { kernelName: name, backendName: BACKEND, kernelFunc };
  if (original.setupFunc) config.setupFunc = original.setupFunc;
  tf.registerKernel(config);
  installed.set(name, config);
}

/** Puts every stock wasm kernel back (idempotent). */
export function restoreStockWasmKernels(): void {
  restoreSmallNKernels();
  restoreHeapKernels();
  for (const [name, config] of stockKernels) {
    if (tf.getKernel(name, BACKEND) !== stockKernels.get(name)) {
      tf.unregisterKernel(name, BACKEND);
      tf.registerKernel(config);
    }
  }
  installed.clear();
}

/** Kernel names milkit has overridden on the wasm backend right now. */
export function overriddenWasmKernels(): string[] {
  const mine = [...installed.keys()].filter((name) => tf.getKernel(name, BACKEND) === installed.get(name));
  return [...mine, ...activeSmallNKernels(), ...activeHeapKernels()].sort();
}

/** Replaces the stock wasm kernels as `options` asks, after restoring any earlier install. */
export function installWasmKernels(options: WasmKernelOptions): void {
  restoreStockWasmKernels();
  const blas = options.blas;
  if (!blas) {
    override('BatchMatMul', stockFriendlyBatchMatMul);
    override('_FusedMatMul', (args) => fusedMatMul(args, stockFriendlyBatchMatMul, true));
    return;
  }
  const batchMatMul = (args: KernelArgs): TensorInfo => blasBatchMatMul(args, blas);
  override('BatchMatMul', batchMatMul);
  override('_FusedMatMul', (args) => fusedMatMul(args, batchMatMul, false));
  if (options.extras) {
    override('Identity', identityNoCopy);
    override('Cast', castNoCopySameDtype);
    override('Sum', (args) => leadingAxesSum(args, blas));
    override('Tanh', tanhViaSigmoid);
    // Slice without the whole-input copy, and UnsortedSegmentSum (tf.gather's gradient): src/core/runtime/small-n-kernels.ts.
    installSmallNKernels();
    // Fused ReLU/tanh/sigmoid backward on the heap (src/core/runtime/heap-kernels.ts); skipped where it cannot run.
    installHeapKernels();
  }
}

function sizeOf(shape: readonly number[]): number {
  let size = 1;
  for (const d of shape) size *= d;
  return size;
}

function heapF32(backend: BackendWasm, info: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

interface MatMulAttrs {
  readonly transposeA: boolean;
  readonly transposeB: boolean;
}

/** For each output batch entry, the flat batch index into `batch` (numpy broadcasting, right-aligned). */
function broadcastBatchIndex(outBatch: readonly number[], batch: readonly number[]): Int32Array {
  const count = sizeOf(outBatch);
  const index = new Int32Array(count);
  const offset = outBatch.length - batch.length;
  // stride of each output batch axis inside `batch` (0 where `batch` is broadcast along it).
  const strides = new Array<number>(outBatch.length).fill(0);
  let stride = 1;
  for (let d = batch.length - 1; d >= 0; d -= 1) {
    const size = batch[d] ?? 1;
    if (size !== 1) strides[d + offset] = stride;
    stride *= size;
  }
  for (let flat = 0; flat < count; flat += 1) {
    let rest = flat;
    let at = 0;
    for (let d = outBatch.length - 1; d >= 0; d -= 1) {
      const size = outBatch[d] ?? 1;
      at += (rest % size) * (strides[d] ?? 0);
      rest = Math.floor(rest / size);
    }
    index[flat] = at;
  }
  return index;
}

/** BatchMatMul as one sgemm per output batch entry, written straight into the output tensor on the wasm heap. */
function blasBatchMatMul(args: KernelArgs, blas: NativeBlas): TensorInfo {
  const backend = args.backend as BackendWasm;
  const a = args.inputs['a'] as TensorInfo | undefined;
  const b = args.inputs['b'] as TensorInfo | undefined;
  const { transposeA, transposeB } = args.attrs as unknown as MatMulAttrs;
  if (!a || !b || a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) {
    return runStock('BatchMatMul', args);
  }
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = (transposeA ? a.shape[ra - 1] : a.shape[ra - 2]) ?? 0;
  const k = (transposeA ? a.shape[ra - 2] : a.shape[ra - 1]) ?? 0;
  const kb = (transposeB ? b.shape[rb - 1] : b.shape[rb - 2]) ?? 0;
  const n = (transposeB ? b.shape[rb - 2] : b.shape[rb - 1]) ?? 0;
  // Empty operands and mismatched inner dims go to the stock kernel (which also owns the error message).
  if (k !== kb || sizeOf(a.shape) === 0 || sizeOf(b.shape) === 0) return runStock('BatchMatMul', args);
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const outBatch = tf.backend_util.assertAndGetBroadcastShape(batchA, batchB);
  // Allocate first: makeOutput may grow the wasm heap, which detaches every view taken before it.
  const out = backend.makeOutput([...outBatch, m, n], 'float32') as TensorInfo;
  const A = heapF32(backend, a);
  const B = heapF32(backend, b);
  const C = heapF32(backend, out);
  const lda = transposeA ? m : k;
  const ldb = transposeB ? k : n;
  const count = sizeOf(outBatch);
  const sizeB = sizeOf(batchB);
  if (count === 1 || (sizeB === 1 && !transposeA && sizeOf(batchA) === count)) {
    // One call: no batch, or a shared B under a stack of untransposed A (rows of all batch entries are contiguous).
    gemm(blas, transposeA, transposeB, m * count, n, k, A, lda, B, ldb, C);
    return out;
  }
  const indexA = broadcastBatchIndex(outBatch, batchA);
  const indexB = broadcastBatchIndex(outBatch, batchB);
  const strideA = m * k;
  const strideB = k * n;
  const strideC = m * n;
  for (let i = 0; i < count; i += 1) {
    const offA = (indexA[i] ?? 0) * strideA;
    const offB = (indexB[i] ?? 0) * strideB;
    gemm(
      blas, transposeA, transposeB, m, n, k,
      A.subarray(offA, offA + strideA), lda,
      B.subarray(offB, offB + strideB), ldb,
      C.subarray(i * strideC, (i + 1) * strideC),
    );
  }
  return out;
}

/** Up to this many output columns (or rows), one sgemv per column (row) beats OpenBLAS 0.3.21's sgemm. */
const NARROW = 4;

let narrowPaths = true;

/**
 * Turns the sgemv/sger paths for narrow products on (default) or off (every product through sgemm), for benchmarks
 * that compare both in one process (test/bench/hotspots-gemm.ts); not part of the runtime's options.
 */
export function setNarrowBlasProducts(on: boolean): void {
  narrowPaths = on;
}

/**
 * C[m, n] = op(A) op(B) (row-major, C contiguous with row stride n). Narrow products skip sgemm, which packs its
 * operands for blocked kernels, first zeroes C, and runs single-threaded and slowly on them: with n ≤ 4 output columns
 * (or m ≤ 4 rows) each column (row) of C is one sgemv over the large operand (the attention pooling a·H and its
 * gradients, class logits [N, 2], bias and score columns), and an outer product (k = 1, the gradient of a pooled row)
 * is one rank-1 update of a zeroed C. Measured with OpenBLAS 0.3.21, CPU time on [8000, 512–1024] operands: m = 1,
 * sgemv 0.5–0.65 ms against sgemm 1.6–1.9 ms; n = 2, two sgemv 2.0 ms against sgemm 3.4–3.7 ms; n = 4, 3.6 against 5.6;
 * n = 8, 7.8 against 6.3 (hence the cut at 4); k = 1, zero + sger 0.8–0.9 ms against sgemm 2.0 ms
 * (docs/runtime.md#native-blas-for-the-wasm-backend-full-speed).
 */
function gemm(
  blas: NativeBlas, transposeA: boolean, transposeB: boolean, m: number, n: number, k: number,
  A: Float32Array, lda: number, B: Float32Array, ldb: number, C: Float32Array,
): void {
  if (!narrowPaths) {
    blas.sgemm(CBLAS_ROW_MAJOR, transposeA ? CBLAS_TRANS : CBLAS_NO_TRANS, transposeB ? CBLAS_TRANS : CBLAS_NO_TRANS, m, n, k, 1, A, lda, B, ldb, 0, C, n);
    return;
  }
  if (n <= NARROW && n <= m) {
    // Column j of C (stride n) = op(A) · column j of op(B): row j of B when transposed, else column j (stride n).
    for (let j = 0; j < n; j += 1) {
      const x = transposeB ? B.subarray(j * ldb) : B.subarray(j);
      const incx = transposeB ? 1 : ldb;
      if (transposeA) blas.sgemv(CBLAS_ROW_MAJOR, CBLAS_TRANS, k, m, 1, A, lda, x, incx, 0, C.subarray(j), n); // A is [k, m]
      else blas.sgemv(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, m, k, 1, A, lda, x, incx, 0, C.subarray(j), n);
    }
    return;
  }
  if (m <= NARROW) {
    // Row i of C = row i of op(A) · op(B): column i of A (stride m) when transposed, else row i.
    for (let i = 0; i < m; i += 1) {
      const x = transposeA ? A.subarray(i) : A.subarray(i * lda);
      const incx = transposeA ? lda : 1;
      const row = C.subarray(i * n, (i + 1) * n);
      if (transposeB) blas.sgemv(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, n, k, 1, B, ldb, x, incx, 0, row, 1); // B is [n, k]
      else blas.sgemv(CBLAS_ROW_MAJOR, CBLAS_TRANS, k, n, 1, B, ldb, x, incx, 0, row, 1);
    }
    return;
  }
  if (k === 1 && blas.sger) {
    // op(A) is a column of m values and op(B) a row of n values, both contiguous in either layout.
    C.fill(0, 0, m * n);
    blas.sger(CBLAS_ROW_MAJOR, m, n, 1, A, 1, B, 1, C, n);
    return;
  }
  const opA = transposeA ? CBLAS_TRANS : CBLAS_NO_TRANS;
  const opB = transposeB ? CBLAS_TRANS : CBLAS_NO_TRANS;
  blas.sgemm(CBLAS_ROW_MAJOR, opA, opB, m, n, k, 1, A, lda, B, ldb, 0, C, n);
}

interface FusedAttrs extends MatMulAttrs {
  readonly activation: string;
  readonly leakyreluAlpha?: number;
}

/** Applies one stock wasm kernel to an intermediate and frees the intermediate. */
function chain(backend: BackendWasm, intermediate: TensorInfo, name: string, inputs: Record<string, TensorInfo>, attrs: Record<string, unknown> = {}): TensorInfo {
  const result = runStock(name, { inputs: inputs as KernelArgs['inputs'], backend, attrs: attrs as NonNullable<KernelArgs['attrs']> });
  backend.disposeData(intermediate.dataId);
  return result;
}

/** The last two axes of `x` swapped by the stock Transpose kernel (a real copy). */
function swapLastAxes(backend: BackendWasm, x: TensorInfo): TensorInfo {
  const perm = x.shape.map((_, i) => i);
  const last = perm.length - 1;
  perm[last] = last - 1;
  perm[last - 1] = last;
  return runStock('Transpose', { inputs: { x } as KernelArgs['inputs'], backend, attrs: { perm } });
}

/**
 * BatchMatMul for wasm without BLAS, shaped so the stock kernel stays on its fast path. The stock kernel runs
 * transposed operands 13-40× slower than plain ones and batched products ([8,256,256]², ~20×) slower than the same
 * products one at a time (measured on this backend, docs/runtime.md#native-blas-for-the-wasm-backend-full-speed). So: transpose explicitly (a copy costs
 * about one read of the operand), fold a batch under a shared B into rows, and run other batches entry by entry
 * (which also broadcasts batch dims correctly, unlike the stock kernel's flat-index modulo).
 */
function stockFriendlyBatchMatMul(args: KernelArgs): TensorInfo {
  const backend = args.backend as BackendWasm;
  const a = args.inputs['a'] as TensorInfo | undefined;
  const b = args.inputs['b'] as TensorInfo | undefined;
  const { transposeA, transposeB } = args.attrs as unknown as MatMulAttrs;
  if (!a || !b || a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2 || sizeOf(a.shape) === 0 || sizeOf(b.shape) === 0) {
    return runStock('BatchMatMul', args);
  }
  const ra = a.shape.length;
  const rb = b.shape.length;
  const k = (transposeA ? a.shape[ra - 2] : a.shape[ra - 1]) ?? 0;
  const kb = (transposeB ? b.shape[rb - 1] : b.shape[rb - 2]) ?? 0;
  if (k !== kb) return runStock('BatchMatMul', args); // the stock kernel owns the error message
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const outBatch = tf.backend_util.assertAndGetBroadcastShape(batchA, batchB);
  const count = sizeOf(outBatch);
  const plainA = transposeA ? swapLastAxes(backend, a) : a; // [...batchA, m, k]
  const plainB = transposeB ? swapLastAxes(backend, b) : b; // [...batchB, k, n]
  const m = plainA.shape[ra - 2] ?? 0;
  const n = plainB.shape[rb - 1] ?? 0;
  const plain = { transposeA: false, transposeB: false };
  const matmul2d = (x: TensorInfo, y: TensorInfo): TensorInfo =>
    runStock('BatchMatMul', { inputs: { a: x, b: y } as KernelArgs['inputs'], backend, attrs: plain });
  try {
    if (count === 1 || (sizeOf(batchB) === 1 && sizeOf(batchA) === count)) {
      // Every batch entry of A against the one B: the rows of all entries are contiguous, so one [count·m, k] product.
      const out = matmul2d({ ...plainA, shape: [count * m, k] }, { ...plainB, shape: [k, n] });
      return { ...out, shape: [...outBatch, m, n] };
    }
    const out = backend.makeOutput([...outBatch, m, n], 'float32') as TensorInfo;
    const indexA = broadcastBatchIndex(outBatch, batchA);
    const indexB = broadcastBatchIndex(outBatch, batchB);
    for (let i = 0; i < count; i += 1) {
      // Fresh operand tensors per entry: the stock kernel caches XNNPACK operators (packed B) by tensor id, so
      // refilling one tensor would reuse the first entry's B. Views are taken after each allocation (heap growth).
      const entryA = backend.makeOutput([m, k], 'float32') as TensorInfo;
      const entryB = backend.makeOutput([k, n], 'float32') as TensorInfo;
      const ia = (indexA[i] ?? 0) * m * k;
      const ib = (indexB[i] ?? 0) * k * n;
      heapF32(backend, entryA).set(heapF32(backend, plainA).subarray(ia, ia + m * k));
      heapF32(backend, entryB).set(heapF32(backend, plainB).subarray(ib, ib + k * n));
      const product = matmul2d(entryA, entryB);
      heapF32(backend, out).set(heapF32(backend, product), i * m * n);
      backend.disposeData(product.dataId);
      backend.disposeData(entryA.dataId);
      backend.disposeData(entryB.dataId);
    }
    return out;
  } finally {
    if (plainA !== a) backend.disposeData(plainA.dataId);
    if (plainB !== b) backend.disposeData(plainB.dataId);
  }
}

/**
 * _FusedMatMul as matmul, then the stock Add (any broadcastable bias) and activation kernels. With `stockWhenFast`,
 * unbatched untransposed products (which the stock fused kernel gets right and fast) stay on it.
 */
function fusedMatMul(args: KernelArgs, matMul: (args: KernelArgs) => TensorInfo, stockWhenFast: boolean): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, TensorInfo | undefined>;
  const attrs = args.attrs as unknown as FusedAttrs;
  if (!a || !b || a.dtype !== 'float32' || b.dtype !== 'float32' || sizeOf(a.shape) === 0 || sizeOf(b.shape) === 0) {
    return runStock('_FusedMatMul', args);
  }
  const unbatched = sizeOf(a.shape.slice(0, -2)) <= 1 && sizeOf(b.shape.slice(0, -2)) <= 1;
  if (stockWhenFast && unbatched && !attrs.transposeA && !attrs.transposeB) return runStock('_FusedMatMul', args);
  let y = matMul({ inputs: { a, b } as KernelArgs['inputs'], backend, attrs: { transposeA: attrs.transposeA, transposeB: attrs.transposeB } });
  if (bias) y = chain(backend, y, 'Add', { a: y, b: bias });
  switch (attrs.activation) {
    case 'linear':
      return y;
    case 'relu':
      return chain(backend, y, 'Relu', { x: y });
    case 'relu6':
      return chain(backend, y, 'Relu6', { x: y });
    case 'elu':
      return chain(backend, y, 'Elu', { x: y });
    case 'sigmoid':
      return chain(backend, y, 'Sigmoid', { x: y });
    case 'leakyrelu':
      return chain(backend, y, 'LeakyRelu', { x: y }, { alpha: attrs.leakyreluAlpha ?? 0.2 });
    case 'prelu':
      if (!preluActivationWeights) throw new Error('_FusedMatMul: prelu activation without preluActivationWeights');
      return chain(backend, y, 'Prelu', { x: y, alpha: preluActivationWeights });
    default:
      throw new Error(`_FusedMatMul: activation "${attrs.activation}" is not supported on the wasm backend`);
  }
}

/** Identity shares the input's buffer (as the wasm Reshape and cpu Identity kernels do); kernels never write inputs. */
function identityNoCopy(args: KernelArgs): TensorInfo {
  const backend = args.backend as BackendWasm;
  const x = args.inputs['x'] as TensorInfo | undefined;
  if (!x || x.dtype === 'string') return runStock('Identity', args);
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/**
 * Cast to the dtype the tensor already has shares the buffer, as Identity does. tfjs casts every input of a
 * Multiply gradient and every ReLU mask to float32, and the stock wasm Cast copies even then: at N = 8,000 those
 * copies of [N, 512] activations took 5 % of an ABMIL or CLAM step (BENCHMARKS.md, hot-spots section).
 */
function castNoCopySameDtype(args: KernelArgs): TensorInfo {
  const x = args.inputs['x'] as TensorInfo | undefined;
  const { dtype } = args.attrs as unknown as { dtype: string };
  if (!x || x.dtype !== dtype || x.dtype === 'string') return runStock('Cast', args);
  (args.backend as BackendWasm).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

let ones = new Float32Array(0);

/**
 * Sum over the leading axes (bias gradients: [N, C] → [C]) as one sgemv Xᵀ·1. The stock kernel transposes the
 * input first so that the reduced axes are innermost.
 */
function leadingAxesSum(args: KernelArgs, blas: NativeBlas): TensorInfo {
  const backend = args.backend as BackendWasm;
  const x = args.inputs['x'] as TensorInfo | undefined;
  const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
  if (!x || x.dtype !== 'float32' || sizeOf(x.shape) === 0) return runStock('Sum', args);
  const axes = tf.util.parseAxisParam(axis, x.shape).sort((p, q) => p - q);
  const leading = axes.length > 0 && axes.length < x.shape.length && axes.every((ax, i) => ax === i);
  if (!leading) return runStock('Sum', args);
  const rows = sizeOf(x.shape.slice(0, axes.length));
  const cols = sizeOf(x.shape.slice(axes.length));
  const outShape = keepDims ? x.shape.map((d, i) => (i < axes.length ? 1 : d)) : x.shape.slice(axes.length);
  const out = backend.makeOutput(outShape, 'float32') as TensorInfo;
  if (ones.length < rows) ones = new Float32Array(rows).fill(1);
  blas.sgemv(CBLAS_ROW_MAJOR, CBLAS_TRANS, rows, cols, 1, heapF32(backend, x), cols, ones, 1, 0, heapF32(backend, out), 1);
  return out;
}

/**
 * tanh(x) = 2σ(2x) − 1 from the stock wasm Multiply/Sigmoid/Sub kernels (SIMD): ~10× faster than the stock scalar tanh.
 * The error against Math.tanh stays within float32 rounding of values near 1 (~1e-7 absolute), so relative accuracy is
 * lost for |x| ≲ 1e-3 (and tanh(−0) gives +0); activations only ever use it in absolute terms.
 */
function tanhViaSigmoid(args: KernelArgs): TensorInfo {
  const backend = args.backend as BackendWasm;
  const x = args.inputs['x'] as TensorInfo | undefined;
  if (!x || x.dtype !== 'float32' || sizeOf(x.shape) === 0) return runStock('Tanh', args);
  const two = backend.makeOutput([], 'float32', undefined, Float32Array.of(2)) as TensorInfo;
  const one = backend.makeOutput([], 'float32', undefined, Float32Array.of(1)) as TensorInfo;
  const doubled = runStock('Multiply', { inputs: { a: x, b: two } as KernelArgs['inputs'], backend, attrs: {} });
  let y = chain(backend, doubled, 'Sigmoid', { x: doubled }); // σ(2x)
  y = chain(backend, y, 'Multiply', { a: y, b: two }); // 2σ(2x)
  y = chain(backend, y, 'Sub', { a: y, b: one }); // 2σ(2x) − 1
  backend.disposeData(two.dataId);
  backend.disposeData(one.dataId);
  return y;
}
