// Fused elementwise kernels on the wasm backend's heap (src/core/runtime/heap-kernels.wat, 128-bit SIMD): the
// backward of ReLU, tanh and sigmoid as one pass each, the whole Adam update of a parameter tensor as one pass in
// place, Exp vectorised (the stock kernel calls libm's scalar expf per element: TransMIL's softmaxes spent 12–14 %
// of its step there), and the stride-1 "same" depthwise conv with its filter gradient (the stock conv is scalar:
// TransMIL's PPEG). tfjs runs each of these as a chain of stock kernels (2–3 for an activation's backward, ~12 for Adam), each
// a full pass over the tensor plus a dispatch, which is what is left around the matrix products of a training step
// once those run on BLAS (BENCHMARKS.md, per-aggregator hot spots). Results are bit-identical to the stock chains;
// Exp is within 2 ulp of libm's expf, the depthwise pair within float32 rounding of a float64 sum
// (test/core/runtime/heap-kernels.test.ts, test/core/nn/depthwise-conv.test.ts).
//
// The module imports tfjs-backend-wasm's own memory, so its functions read and write tensors where they live. It is
// instantiated once per wasm memory (a re-initialised backend has a new one).
//
// Gradients: tfjs keeps one gradient per kernel name for all backends. The ones registered here for Relu, Tanh and
// Sigmoid run the fused kernel when the active backend is wasm and the kernel is installed, and tfjs's own gradient
// otherwise; `restoreHeapKernels` puts tfjs's gradients back. The fused kernels have no gradient of their own: a
// second derivative through these activations on wasm is not supported while they are installed.
import * as tf from '@tensorflow/tfjs';
import { HEAP_KERNELS_WASM_BASE64 } from './heap-kernels-wasm.js';

type KernelConfig = ReturnType<typeof tf.getKernel>;
type GradConfig = NonNullable<ReturnType<typeof tf.getGradient>>;
type TensorInfo = tf.TensorInfo;

const BACKEND = 'wasm';

interface HeapKernelExports {
  relu_grad(dy: number, x: number, out: number, n: number): void;
  tanh_grad(dy: number, y: number, out: number, n: number): void;
  sigmoid_grad(dy: number, y: number, out: number, n: number): void;
  exp(x: number, out: number, n: number): void;
  depthwise_same(x: number, filter: number, out: number, height: number, width: number, channels: number, kh: number, kw: number): void;
  depthwise_filter_grad(x: number, dy: number, dw: number, height: number, width: number, channels: number, kh: number, kw: number): void;
  adam(
    p: number, g: number, m: number, v: number, n: number,
    b1: number, oneMinusB1: number, b2: number, oneMinusB2: number, sqrtBc2: number, eps: number, stepSize: number,
    coupled: number, weightDecay: number, decay: number,
  ): void;
}

/** What this module needs of tfjs-backend-wasm's BackendWasm. */
interface WasmHeapBackend {
  wasm: {
    asm?: { memory?: WebAssembly.Memory };
    tfjs: { registerTensor(id: number, size: number, memoryOffset: number): void; disposeData(id: number): void };
  };
  dataIdMap: { get(dataId: tf.DataId): { id: number; memoryOffset: number } | undefined };
  refCount(dataId: tf.DataId): number;
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
}

let compiled: WebAssembly.Module | undefined;
const instances = new WeakMap<WebAssembly.Memory, HeapKernelExports>();

/** The kernels bound to `backend`'s heap, or undefined where its memory is not reachable (not the wasm backend). */
function kernelsFor(backend: unknown): HeapKernelExports | undefined {
  const memory = (backend as Partial<WasmHeapBackend>).wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return undefined;
  const known = instances.get(memory);
  if (known) return known;
  compiled ??= new WebAssembly.Module(Buffer.from(HEAP_KERNELS_WASM_BASE64, 'base64'));
  const exports = new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as HeapKernelExports;
  instances.set(memory, exports);
  return exports;
}

/** Whether the heap kernels can run on the active backend (wasm with SIMD and its memory exported). */
export function heapKernelsAvailable(): boolean {
  if (tf.getBackend() !== BACKEND) return false;
  try {
    return kernelsFor(tf.backend()) !== undefined;
  } catch {
    return false; // no SIMD in this engine: the module does not compile
  }
}

function offsetOf(backend: WasmHeapBackend, tensor: TensorInfo): number {
  const entry = backend.dataIdMap.get(tensor.dataId);
  if (!entry) throw new Error('heap kernels: a tensor has no storage on the wasm backend');
  return entry.memoryOffset;
}

type ActivationGradName = 'relu_grad' | 'tanh_grad' | 'sigmoid_grad';

/** Kernel names (inputs dy and y: the activation's saved input for ReLU, its output for tanh and sigmoid). */
const FUSED_GRADIENTS = [
  { activation: 'Relu', kernel: 'MilkitReluGrad', fn: 'relu_grad' },
  { activation: 'Tanh', kernel: 'MilkitTanhGrad', fn: 'tanh_grad' },
  { activation: 'Sigmoid', kernel: 'MilkitSigmoidGrad', fn: 'sigmoid_grad' },
] as const satisfies readonly { activation: string; kernel: string; fn: ActivationGradName }[];

function activationGradKernel(fn: ActivationGradName): KernelConfig['kernelFunc'] {
  return ({ inputs, backend }) => {
    const heap = backend as unknown as WasmHeapBackend;
    const dy = inputs['dy'] as TensorInfo;
    const y = inputs['y'] as TensorInfo;
    const out = heap.makeOutput([...dy.shape], 'float32');
    const size = tf.util.sizeFromShape(dy.shape);
    // After makeOutput: it may grow the heap, which the offsets survive (they are positions, not views).
    if (size > 0) (kernelsFor(heap) as HeapKernelExports)[fn](offsetOf(heap, dy), offsetOf(heap, y), offsetOf(heap, out), size);
    return out;
  };
}

/** e^x on the heap, four lanes at a time (heap-kernels.wat: within 2 ulp of libm's expf, which the stock kernel calls per element). */
function expKernel(stock: KernelConfig): KernelConfig['kernelFunc'] {
  return (args) => {
    const x = args.inputs['x'] as TensorInfo;
    if (x.dtype !== 'float32') return stock.kernelFunc(args);
    const heap = args.backend as unknown as WasmHeapBackend;
    const out = heap.makeOutput([...x.shape], 'float32');
    const size = tf.util.sizeFromShape(x.shape);
    if (size > 0) (kernelsFor(heap) as HeapKernelExports).exp(offsetOf(heap, x), offsetOf(heap, out), size);
    return out;
  };
}

/** Whether a DepthwiseConv2dNative call is the case the heap kernel covers; the rest goes to the stock kernel. */
function depthwiseOnHeap(x: TensorInfo, filter: TensorInfo, attrs: tf.NamedAttrMap): boolean {
  const ones = (value: unknown): boolean => (Array.isArray(value) ? value.every((v) => v === 1) : value === 1);
  const [kh, kw, channels, multiplier] = filter.shape as number[];
  return x.dtype === 'float32' && filter.dtype === 'float32' && x.shape.length === 4 && filter.shape.length === 4
    && ones(attrs['strides']) && ones(attrs['dilations'] ?? 1) && attrs['pad'] === 'same' && (attrs['dataFormat'] ?? 'NHWC') === 'NHWC'
    && multiplier === 1 && kh! % 2 === 1 && kw! % 2 === 1 && channels === x.shape[3] && channels! % 4 === 0;
}

/**
 * Depthwise conv, stride 1, zero "same" padding, as one vectorised pass per image (heap-kernels.wat: the stock wasm
 * kernel is scalar). Every other configuration runs the stock kernel.
 */
function depthwiseKernel(stock: KernelConfig): KernelConfig['kernelFunc'] {
  return (args) => {
    const x = args.inputs['x'] as TensorInfo;
    const filter = args.inputs['filter'] as TensorInfo;
    if (!depthwiseOnHeap(x, filter, args.attrs as tf.NamedAttrMap)) return stock.kernelFunc(args);
    const heap = args.backend as unknown as WasmHeapBackend;
    const [batch, height, width, channels] = x.shape as [number, number, number, number];
    const [kh, kw] = filter.shape as [number, number];
    const out = heap.makeOutput([...x.shape], 'float32');
    const image = height * width * channels * 4;
    if (image > 0) {
      const kernels = kernelsFor(heap) as HeapKernelExports;
      const [xAt, filterAt, outAt] = [offsetOf(heap, x), offsetOf(heap, filter), offsetOf(heap, out)];
      for (let b = 0; b < batch; b += 1) kernels.depthwise_same(xAt + b * image, filterAt, outAt + b * image, height, width, channels, kh, kw);
    }
    return out;
  };
}

const DEPTHWISE_FILTER_GRAD = 'MilkitDepthwiseFilterGrad';

/** dW of depthwise_same for one image (inputs x [1, H, W, C] and dy [1, H, W, C]; attrs kh, kw) → [kh, kw, C, 1]. */
const depthwiseFilterGradKernel: KernelConfig['kernelFunc'] = ({ inputs, backend, attrs }) => {
  const heap = backend as unknown as WasmHeapBackend;
  const x = inputs['x'] as TensorInfo;
  const dy = inputs['dy'] as TensorInfo;
  const [kh, kw] = [attrs!['kh'] as number, attrs!['kw'] as number];
  const [, height, width, channels] = x.shape as [number, number, number, number];
  const out = heap.makeOutput([kh, kw, channels, 1], 'float32');
  // Every tap is written, as zeros where no output pixel reaches it (an empty image included).
  if (kh * kw * channels > 0) (kernelsFor(heap) as HeapKernelExports).depthwise_filter_grad(offsetOf(heap, x), offsetOf(heap, dy), offsetOf(heap, out), height, width, channels, kh, kw);
  return out;
};

/**
 * The filter gradient of a depthwise conv (stride 1, zero "same" padding, odd kh × kw, one image) as one vectorised
 * pass on the wasm heap, or undefined where it cannot run here (another backend, not installed, batch ≠ 1, channels
 * not a multiple of 4, not float32): the caller then computes it its own way.
 */
export function depthwiseFilterGradOnHeap(x: tf.Tensor4D, dy: tf.Tensor4D, kh: number, kw: number): tf.Tensor4D | undefined {
  if (tf.getBackend() !== BACKEND || tf.getKernel(DEPTHWISE_FILTER_GRAD, BACKEND) !== registeredKernels.get(DEPTHWISE_FILTER_GRAD)) return undefined;
  const [batch, , , channels] = x.shape;
  if (batch !== 1 || channels % 4 !== 0 || x.dtype !== 'float32' || dy.dtype !== 'float32' || !tf.util.arraysEqual(x.shape, dy.shape)) return undefined;
  if (kh % 2 !== 1 || kw % 2 !== 1) return undefined;
  return tf.engine().runKernel(DEPTHWISE_FILTER_GRAD, { x, dy } as unknown as tf.NamedTensorMap, { kh, kw }) as tf.Tensor4D;
}

/** Stock kernels this module replaces on wasm, with the replacement built around each (it falls back to the stock one). */
const OVERRIDDEN_KERNELS = [
  { name: 'Exp', make: expKernel },
  { name: 'DepthwiseConv2dNative', make: depthwiseKernel },
] as const;

/** Stock kernels replaced here, to put back. */
const stockKernels = new Map<string, KernelConfig>();

const stockGradients = new Map<string, GradConfig>();
const registeredKernels = new Map<string, KernelConfig>();
const registeredGradients = new Map<string, GradConfig>();

/** The fused gradient as a lazy tensor, or undefined when the stock one must run (backend, dtype, shape). */
function fusedActivationGrad(kernel: string, dy: tf.Tensor, saved: tf.Tensor | undefined): (() => tf.Tensor) | undefined {
  if (!saved || tf.getBackend() !== BACKEND || tf.getKernel(kernel, BACKEND) !== registeredKernels.get(kernel)) return undefined;
  if (dy.dtype !== 'float32' || saved.dtype !== 'float32' || !tf.util.arraysEqual(dy.shape, saved.shape)) return undefined;
  return () => tf.engine().runKernel(kernel, { dy, y: saved } as unknown as tf.NamedTensorMap, {}) as tf.Tensor;
}

/**
 * Registers one of this module's own kernels (a name tfjs does not have) on wasm unless the registered one is already
 * ours; a stale registration under the name (another copy of this module) is replaced.
 */
function registerOwnKernel(name: string, kernelFunc: KernelConfig['kernelFunc']): void {
  if (registeredKernels.has(name) && tf.getKernel(name, BACKEND) === registeredKernels.get(name)) return;
  if (tf.getKernel(name, BACKEND)) tf.unregisterKernel(name, BACKEND);
  const config: KernelConfig = { kernelName: name, backendName: BACKEND, kernelFunc };
  tf.registerKernel(config);
  registeredKernels.set(name, config);
}

/**
 * Registers the fused kernels on wasm and the Relu/Tanh/Sigmoid gradients that use them (idempotent). Returns false,
 * registering nothing, when the heap module cannot run on the active backend.
 */
export function installHeapKernels(): boolean {
  if (!heapKernelsAvailable()) return false;
  for (const { name, make } of OVERRIDDEN_KERNELS) {
    const current = tf.getKernel(name, BACKEND);
    if (!current) throw new Error(`tfjs wasm kernel ${name} is not registered (is @tensorflow/tfjs-backend-wasm imported?)`);
    if (current === registeredKernels.get(name)) continue;
    const stock = stockKernels.get(name) ?? current;
    stockKernels.set(name, stock);
    tf.unregisterKernel(name, BACKEND);
    const config: KernelConfig = { kernelName: name, backendName: BACKEND, kernelFunc: make(stock) };
    // The stock kernel's setup (binding its wasm function) must still run: the fallback calls it.
    if (stock.setupFunc) config.setupFunc = stock.setupFunc;
    tf.registerKernel(config);
    registeredKernels.set(name, config);
  }
  registerOwnKernel(DEPTHWISE_FILTER_GRAD, depthwiseFilterGradKernel);
  for (const { activation, kernel, fn } of FUSED_GRADIENTS) {
    registerOwnKernel(kernel, activationGradKernel(fn));
    const current = tf.getGradient(activation);
    if (current && current === registeredGradients.get(activation)) continue;
    const stock = stockGradients.get(activation) ?? current;
    if (!stock) throw new Error(`tfjs has no gradient for ${activation} to fuse`);
    stockGradients.set(activation, stock);
    const fused: GradConfig = {
      ...stock,
      gradFunc: (dy, saved, attrs) => {
        const fast = fusedActivationGrad(kernel, dy as tf.Tensor, saved[0]);
        return fast ? { x: fast } : stock.gradFunc(dy, saved, attrs);
      },
    };
    tf.registerGradient(fused);
    registeredGradients.set(activation, fused);
  }
  return true;
}

/** Puts tfjs's gradients back and unregisters the fused kernels (idempotent). */
export function restoreHeapKernels(): void {
  for (const [activation, config] of registeredGradients) {
    const stock = stockGradients.get(activation);
    if (stock && tf.getGradient(activation) === config) tf.registerGradient(stock);
  }
  registeredGradients.clear();
  for (const [kernel, config] of registeredKernels) {
    if (tf.getKernel(kernel, BACKEND) === config) tf.unregisterKernel(kernel, BACKEND);
    const stock = stockKernels.get(kernel);
    if (stock && !tf.getKernel(kernel, BACKEND)) tf.registerKernel(stock);
  }
  registeredKernels.clear();
}

/** The names of the fused kernels registered right now (for the runtime's kernel list). */
export function activeHeapKernels(): string[] {
  return [...registeredKernels].filter(([name, config]) => tf.getKernel(name, BACKEND) === config).map(([name]) => name).sort();
}

/** The float32 scalars of one Adam step (each as the unfused update's scalar tensor holds it). */
export interface AdamStepScalars {
  readonly b1: number;
  readonly oneMinusB1: number;
  readonly b2: number;
  readonly oneMinusB2: number;
  readonly sqrtBc2: number;
  readonly eps: number;
  readonly stepSize: number;
  /** L2 decay added to the gradient (0: none). */
  readonly coupledWeightDecay: number;
  /** p·decay before the step (exactly 1 unless decoupled decay). */
  readonly decay: number;
}

/**
 * One Adam step of a parameter in place on the wasm heap: `param`, `expAvg` and `expAvgSq` are overwritten from
 * `grad`. Returns false, touching nothing, where that is not safe or not possible: not wasm, a buffer shared with
 * another tensor (a snapshot of the weights), other dtypes or shapes. Bit-identical to AdamOptimizer's kernels.
 */
export function adamStepOnHeap(param: tf.Variable, grad: tf.Tensor, expAvg: tf.Variable, expAvgSq: tf.Variable, s: AdamStepScalars): boolean {
  if (tf.getBackend() !== BACKEND) return false;
  const backend = tf.backend() as unknown as WasmHeapBackend;
  let kernels: HeapKernelExports | undefined;
  try {
    kernels = kernelsFor(backend);
  } catch {
    return false;
  }
  if (!kernels) return false;
  const owned = [param, expAvg, expAvgSq];
  if ([...owned, grad].some((t) => t.dtype !== 'float32' || !tf.util.arraysEqual(t.shape, param.shape))) return false;
  if (owned.some((t) => backend.refCount(t.dataId) !== 1) || new Set([...owned, grad].map((t) => t.dataId)).size !== 4) return false;
  const [p, g, m, v] = [param, grad, expAvg, expAvgSq].map((t) => backend.dataIdMap.get(t.dataId));
  if (!p || !g || !m || !v) return false;
  if (param.size > 0) {
    kernels.adam(
      p.memoryOffset, g.memoryOffset, m.memoryOffset, v.memoryOffset, param.size,
      s.b1, s.oneMinusB1, s.b2, s.oneMinusB2, s.sqrtBc2, s.eps, s.stepSize,
      s.coupledWeightDecay === 0 ? 0 : 1, s.coupledWeightDecay, s.decay,
    );
  }
  // Kernels cache work derived from a tensor's contents by its id (XNNPACK's packed matmul operand): re-registering
  // the ids drops those caches, as the new ids of an ordinary assign would.
  for (const entry of [p, m, v]) {
    backend.wasm.tfjs.disposeData(entry.id);
    backend.wasm.tfjs.registerTensor(entry.id, param.size, entry.memoryOffset);
  }
  return true;
}
