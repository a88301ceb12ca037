// The system OpenBLAS (or BLIS) loaded through the koffi FFI: sgemm/sgemv on Float32Arrays, including views of
// the wasm heap, with no copy. Any failure (no koffi, no library, a slow reference BLAS) means "not available".
import { availableParallelism } from 'node:os';
import type { Logger } from '../logger.js';
import { importKoffi, type KoffiFunction, type KoffiLibrary, type KoffiModule } from './koffi.js';

/** Library names tried in order; the first one that loads and exports cblas_sgemm wins. */
export const BLAS_CANDIDATES: readonly string[] = [
  'libopenblas.so.0',
  'libopenblas.so',
  'libopenblas64_.so.0',
  'libblis.so.4',
  'libcblas.so.3',
  'libblas.so.3',
];

/** Environment variable naming one library (name or path) to load instead of the candidates; `none` disables BLAS. */
export const BLAS_LIBRARY_ENV = 'MILKIT_BLAS_LIBRARY';

// CBLAS enum values (cblas.h).
export const CBLAS_ROW_MAJOR = 101;
export const CBLAS_NO_TRANS = 111;
export const CBLAS_TRANS = 112;

/** C = alpha op(A) op(B) + beta C, row-major; A, B, C may be subarrays (views) of any ArrayBuffer. */
export type Sgemm = (
  order: number, transA: number, transB: number, m: number, n: number, k: number,
  alpha: number, a: Float32Array, lda: number, b: Float32Array, ldb: number,
  beta: number, c: Float32Array, ldc: number,
) => void;

/** y = alpha op(A) x + beta y, row-major. */
export type Sgemv = (
  order: number, trans: number, m: number, n: number, alpha: number, a: Float32Array, lda: number,
  x: Float32Array, incx: number, beta: number, y: Float32Array, incy: number,
) => void;

/** A = alpha x yᵀ + A, row-major (rank-1 update). */
export type Sger = (
  order: number, m: number, n: number, alpha: number, x: Float32Array, incx: number,
  y: Float32Array, incy: number, a: Float32Array, lda: number,
) => void;

export interface NativeBlas {
  /** The name or path that loaded. */
  readonly library: string;
  /** `OpenBLAS 0.3.21 ... SkylakeX ...`, or the BLIS version string. */
  readonly config: string;
  readonly sgemm: Sgemm;
  readonly sgemv: Sgemv;
  /** Absent when the library does not export cblas_sger (outer products then stay on sgemm). */
  readonly sger?: Sger;
  /** Threads the library uses now (undefined when it offers no thread control). */
  threads(): number | undefined;
  /** Sets the library's thread count; false when the library offers no thread control. */
  setThreads(count: number): boolean;
}

export type BlasProbe =
  | { readonly available: true; readonly blas: NativeBlas }
  | { readonly available: false; readonly reason: string };

export interface LoadBlasOptions {
  /** Overrides the candidate list (tests force the fallback with a name that cannot exist). */
  readonly candidates?: readonly string[];
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly logger?: Logger;
}


const SGEMM_SIGNATURE =
  'void cblas_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, ' +
  'const float *B, int ldb, float beta, float *C, int ldc)';
const SGEMV_SIGNATURE =
  'void cblas_sgemv(int order, int trans, int M, int N, float alpha, const float *A, int lda, const float *X, ' +
  'int incX, float beta, float *Y, int incY)';
const SGER_SIGNATURE =
  'void cblas_sger(int order, int M, int N, float alpha, const float *X, int incX, const float *Y, int incY, ' +
  'float *A, int lda)';

let cached: Promise<BlasProbe> | undefined;
let cachedKey: string | undefined;

/**
 * Loads the first usable BLAS. The result is cached per candidate list (a shared library is loaded once per
 * process anyway). Logs one line when nothing loads; never throws.
 */
export function loadNativeBlas(options: LoadBlasOptions = {}): Promise<BlasProbe> {
  const env = options.env ?? process.env;
  const forced = env[BLAS_LIBRARY_ENV]?.trim();
  const candidates = options.candidates ?? (forced ? [forced] : BLAS_CANDIDATES);
  const key = candidates.join('\n');
  if (!cached || cachedKey !== key) {
    cachedKey = key;
    cached = options.candidates === undefined && forced?.toLowerCase() === 'none'
      ? Promise.resolve({ available: false, reason: `disabled by ${BLAS_LIBRARY_ENV}=none` })
      : probe(candidates);
  }
  return cached.then((result) => {
    if (!result.available) options.logger?.info(`BLAS: not available (${result.reason})`);
    return result;
  });
}

async function probe(candidates: readonly string[]): Promise<BlasProbe> {
  let koffi: KoffiModule;
  try {
    koffi = await importKoffi();
  } catch (error) {
    return { available: false, reason: `the koffi FFI package cannot be loaded: ${messageOf(error)}` };
  }
  const failures: string[] = [];
  for (const name of candidates) {
    const opened = open(koffi, name);
    if ('blas' in opened) return { available: true, blas: opened.blas };
    failures.push(`${name}: ${opened.failure}`);
  }
  const missing = failures.filter((f) => f.endsWith(': not found')).map((f) => f.slice(0, -': not found'.length));
  const other = failures.filter((f) => !f.endsWith(': not found'));
  const parts = [...(missing.length ? [`not found: ${missing.join(', ')}`] : []), ...other];
  return { available: false, reason: `no usable BLAS library (${parts.join('; ')})` };
}

function open(koffi: KoffiModule, name: string): { blas: NativeBlas } | { failure: string } {
  let lib: KoffiLibrary;
  try {
    lib = koffi.load(name);
  } catch (error) {
    return { failure: shortLoadError(error) };
  }
  let sgemm: KoffiFunction;
  let sgemv: KoffiFunction;
  try {
    sgemm = lib.func(SGEMM_SIGNATURE);
    sgemv = lib.func(SGEMV_SIGNATURE);
  } catch {
    return { failure: 'no cblas_sgemm/cblas_sgemv' };
  }
  const optional = (signature: string): KoffiFunction | undefined => {
    try {
      return lib.func(signature);
    } catch {
      return undefined;
    }
  };
  const openblasConfig = optional('const char *openblas_get_config(void)');
  const blisVersion = optional('const char *bli_info_get_version_str(void)');
  // A generic libblas.so.3 may be the netlib reference BLAS, several times slower than tfjs-wasm itself.
  if (!openblasConfig && !blisVersion) return { failure: 'neither OpenBLAS nor BLIS (reference BLAS is too slow to help)' };
  const config = openblasConfig ? String(openblasConfig()) : `BLIS ${String(blisVersion?.())}`;
  const getThreads = optional('int openblas_get_num_threads(void)') ?? optional('int bli_thread_get_num_threads(void)');
  const setThreadsFn = optional('void openblas_set_num_threads(int)') ?? optional('void bli_thread_set_num_threads(int)');
  const sger = optional(SGER_SIGNATURE);
  const blas: NativeBlas = {
    library: name,
    config,
    sgemm: sgemm as unknown as Sgemm,
    sgemv: sgemv as unknown as Sgemv,
    ...(sger ? { sger: sger as unknown as Sger } : {}),
    threads: () => (getThreads ? Number(getThreads()) : undefined),
    setThreads: (count) => {
      if (!setThreadsFn) return false;
      setThreadsFn(count);
      return true;
    },
  };
  return { blas };
}

/** Default BLAS threads: the machine's cores shared evenly by the worker processes, at least one. */
export function defaultBlasThreads(workers = 1): number {
  return Math.max(1, Math.floor(availableParallelism() / Math.max(1, workers)));
}

function shortLoadError(error: unknown): string {
  const message = messageOf(error);
  return /cannot open shared object file/.test(message) ? 'not found' : message;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
