// Public API of the runtime: backend choice and tuning, native BLAS, the matMul gradient, seeded randomness.
export {
  backendPlan,
  describeRuntime,
  findBackends,
  initRuntime,
  runtimeTags,
  type BackendCandidate,
  type BackendName,
  type BlasStatus,
  type InitRuntimeOptions,
  type RuntimeInfo,
} from './backend.js';
export { installWasmKernels, overriddenWasmKernels, restoreStockWasmKernels, type WasmKernelOptions } from './blas-kernels.js';
export {
  activeMatMulGrad,
  explicitTransposeMatMulGrad,
  installExplicitTransposeMatMulGrad,
  restoreStockMatMulGrad,
} from './matmul-grad.js';
export {
  BLAS_CANDIDATES,
  BLAS_LIBRARY_ENV,
  defaultBlasThreads,
  loadNativeBlas,
  type BlasProbe,
  type LoadBlasOptions,
  type NativeBlas,
} from './native-blas.js';
export { Rng, type RngState } from './random.js';
export { RuntimeSection } from './schema.js';
