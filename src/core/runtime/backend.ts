// Chooses and initialises the tfjs backend for a run (tensorflow-gpu > tensorflow > wasm > cpu unless forced),
// routes wasm matmuls to a native BLAS when one loads, and says in one log line what was chosen and why.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BackendError } from '../errors.js';
import type { Logger } from '../logger.js';
import { installWasmKernels, overriddenWasmKernels } from './blas-kernels.js';
import { activeMatMulGrad, installExplicitTransposeMatMulGrad, restoreStockMatMulGrad } from './matmul-grad.js';
import { BLAS_LIBRARY_ENV, defaultBlasThreads, loadNativeBlas } from './native-blas.js';
import type { RuntimeSection } from './schema.js';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

/** One backend candidate as found on this machine, before anything is initialised. */
export interface BackendCandidate {
  readonly name: 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
  /** The npm package that provides it. */
  readonly pkg: string;
  readonly installed: boolean;
  /** Why it is or is not usable, in words. */
  readonly note: string;
}

export interface BlasStatus {
  readonly active: boolean;
  readonly library?: string;
  /** OpenBLAS's own build description (version, kernel, MAX_THREADS). */
  readonly config?: string;
  readonly threads?: number;
  /** Why it is active or not. */
  readonly reason: string;
}

export interface RuntimeInfo {
  readonly backend: BackendName;
  /** `gpu` only for the tensorflow backend from @tensorflow/tfjs-node-gpu. */
  readonly device: 'gpu' | 'cpu';
  readonly reason: string;
  /** Candidates usable here, best first (`tensorflow-gpu`, `tensorflow`, `wasm`, `cpu`). */
  readonly available: string[];
  readonly blas: BlasStatus;
  readonly matmulGrad: 'explicit-transpose' | 'stock';
  /** wasm build facts (only when the backend is wasm). */
  readonly wasm?: { readonly simd: boolean; readonly multithread: boolean; readonly threads: number };
  /** Kernels milkit replaced on the wasm backend. */
  readonly kernelOverrides: string[];
  readonly tfjsVersion: string;
}

export interface InitRuntimeOptions {
  readonly logger: Logger;
  /** Worker processes sharing this machine (the sweep executor passes it), for the default BLAS thread count. */
  readonly workers?: number;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Overrides the BLAS library candidates (tests force the fallback with a name that cannot exist). */
  readonly blasCandidates?: readonly string[];
}

const TFJS_NODE_GPU = '@tensorflow/tfjs-node-gpu';
const TFJS_NODE = '@tensorflow/tfjs-node';
const TFJS_WASM = '@tensorflow/tfjs-backend-wasm';
const requireHere = createRequire(import.meta.url);

function isInstalled(pkg: string): boolean {
  try {
    requireHere.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

/** What this machine has installed, best first. Loads nothing. */
export function findBackends(installed: (pkg: string) => boolean = isInstalled): BackendCandidate[] {
  const nodeNote = (pkg: string): string => (installed(pkg) ? 'installed' : `${pkg} not installed`);
  return [
    { name: 'tensorflow-gpu', pkg: TFJS_NODE_GPU, installed: installed(TFJS_NODE_GPU), note: nodeNote(TFJS_NODE_GPU) },
    { name: 'tensorflow', pkg: TFJS_NODE, installed: installed(TFJS_NODE), note: nodeNote(TFJS_NODE) },
    { name: 'wasm', pkg: TFJS_WASM, installed: installed(TFJS_WASM), note: installed(TFJS_WASM) ? 'installed' : `${TFJS_WASM} is not installed` },
    { name: 'cpu', pkg: '@tensorflow/tfjs', installed: true, note: 'pure JavaScript, always present' },
  ];
}

/** The candidates to try for `requested`, in order, or a BackendError when a forced backend is not installed. */
export function backendPlan(requested: RuntimeSection['backend'], candidates: readonly BackendCandidate[]): BackendCandidate[] {
  const usable = candidates.filter((c) => c.installed);
  if (requested === 'auto') return usable;
  const matching = candidates.filter((c) => (requested === 'tensorflow' ? c.name.startsWith('tensorflow') : c.name === requested));
  const installedMatching = matching.filter((c) => c.installed);
  if (installedMatching.length > 0) return installedMatching;
  throw unavailable(requested, matching.map((c) => c.note).join('; '));
}

function unavailable(requested: string, why: string): BackendError {
  const install =
    requested === 'tensorflow'
      ? `install it with \`npm install ${TFJS_NODE}\` (or ${TFJS_NODE_GPU} with CUDA; both download libtensorflow from storage.googleapis.com)`
      : `reinstall the dependencies with \`npm ci\``;
  return new BackendError('backend-unavailable', `backend "${requested}" is not available: ${why}.`, {
    where: { key: 'runtime.backend' },
    hint: `To use it, ${install}; or set runtime.backend to auto (best available), wasm or cpu.`,
  });
}

let wasmPathsSet = false;

async function activate(candidate: BackendCandidate): Promise<{ ok: true } | { ok: false; why: string }> {
  try {
    if (candidate.name === 'tensorflow-gpu' || candidate.name === 'tensorflow') {
      await import(candidate.pkg); // registers the 'tensorflow' backend with tfjs-core
      return (await tf.setBackend('tensorflow')) ? { ok: true } : { ok: false, why: `${candidate.pkg} loaded but its backend failed to initialise` };
    }
    if (candidate.name === 'wasm') {
      const wasm = await import(TFJS_WASM);
      if (!wasmPathsSet) {
        // The .wasm binaries ship beside the package's node entry; say so explicitly so bundled or relocated
        // entry points still find them. (After an earlier initialisation this has no effect, which is fine.)
        wasm.setWasmPaths(`${dirname(requireHere.resolve(TFJS_WASM))}/`);
        wasmPathsSet = true;
      }
      return (await tf.setBackend('wasm')) ? { ok: true } : { ok: false, why: 'the wasm module failed to initialise' };
    }
    if (!(await tf.setBackend('cpu'))) return { ok: false, why: 'the cpu backend failed to initialise' };
    // The cpu backend prints a banner recommending tfjs-node on its first write; the run's runtime line already
    // says which backend is used and why, so silence it.
    (tf.backend() as { firstUse?: boolean }).firstUse = false;
    return { ok: true };
  } catch (error) {
    return { ok: false, why: error instanceof Error ? error.message : String(error) };
  }
}

interface AppliedRuntime {
  readonly key: string;
  readonly info: Promise<RuntimeInfo>;
  /** The backend `info` chose, once settled (someone may have called tf.setBackend since). */
  settledBackend?: string;
}

let applied: AppliedRuntime | undefined;

/**
 * Picks, initialises and tunes the backend for `section`; logs one line with the choice and the BLAS status.
 * Calling it again with the same settings returns the same info without doing anything; new settings reapply.
 */
export function initRuntime(section: RuntimeSection, opts: InitRuntimeOptions): Promise<RuntimeInfo> {
  const env = opts.env ?? process.env;
  const key = JSON.stringify([section.backend, section.blas, section.blasThreads ?? null, opts.workers ?? 1, env[BLAS_LIBRARY_ENV] ?? null, opts.blasCandidates ?? null]);
  if (applied?.key === key && (applied.settledBackend === undefined || applied.settledBackend === tf.getBackend())) return applied.info;
  const previous = applied?.info.catch(() => undefined) ?? Promise.resolve(undefined);
  const info = previous.then(() => apply(section, opts, env));
  const entry: AppliedRuntime = { key, info };
  applied = entry;
  info.then(
    (settled) => {
      entry.settledBackend = settled.backend;
    },
    () => {
      if (applied === entry) applied = undefined;
    },
  );
  return info;
}

function blasNeedsWasm(): BackendError {
  return new BackendError('blas-needs-wasm', '"on" needs the wasm backend (the BLAS kernels replace wasm matmuls), but the backend is cpu.', {
    where: { key: 'runtime.blas' },
    hint: 'Set runtime.backend: wasm (or auto), or runtime.blas: auto|off.',
  });
}

async function apply(section: RuntimeSection, opts: InitRuntimeOptions, env: Readonly<Record<string, string | undefined>>): Promise<RuntimeInfo> {
  // Contradictory settings fail before anything global changes.
  if (section.blas === 'on' && section.backend === 'cpu') throw blasNeedsWasm();
  const candidates = findBackends();
  const plan = backendPlan(section.backend, candidates);
  const skipped: string[] = candidates.filter((c) => !c.installed && (section.backend === 'auto' || c.name.startsWith(section.backend))).map((c) => c.note);
  let chosen: BackendCandidate | undefined;
  for (const candidate of plan) {
    const result = await activate(candidate);
    if (result.ok) {
      chosen = candidate;
      break;
    }
    skipped.push(`${candidate.name} failed: ${result.why}`);
  }
  if (!chosen) throw unavailable(section.backend, skipped.join('; '));
  const backend: BackendName = chosen.name === 'tensorflow-gpu' ? 'tensorflow' : chosen.name;
  const reason = section.backend === 'auto'
    ? `auto: ${skipped.length ? `${skipped.join('; ')} → ` : ''}${chosen.name} is the best available`
    : `runtime.backend: ${section.backend}${skipped.length ? ` (${skipped.join('; ')})` : ''}`;

  const blas = await configureKernels(backend, section, opts, env);
  const wasmInfo = backend === 'wasm' ? await wasmFacts() : undefined;
  const info: RuntimeInfo = {
    backend,
    device: chosen.name === 'tensorflow-gpu' ? 'gpu' : 'cpu',
    reason,
    available: candidates.filter((c) => c.installed).map((c) => c.name),
    blas,
    matmulGrad: activeMatMulGrad(),
    ...(wasmInfo ? { wasm: wasmInfo } : {}),
    kernelOverrides: backend === 'wasm' ? overriddenWasmKernels() : [],
    tfjsVersion: tf.version.tfjs,
  };
  opts.logger.info(describeRuntime(info));
  return info;
}

async function configureKernels(
  backend: BackendName,
  section: RuntimeSection,
  opts: InitRuntimeOptions,
  env: Readonly<Record<string, string | undefined>>,
): Promise<BlasStatus> {
  if (backend !== 'wasm') {
    restoreStockMatMulGrad();
    if (section.blas === 'on' && backend === 'cpu') throw blasNeedsWasm();
    return { active: false, reason: backend === 'tensorflow' ? 'not needed: the tensorflow backend has native kernels' : 'only used with the wasm backend' };
  }
  if (section.blas === 'off') {
    installWasmKernels({});
    installExplicitTransposeMatMulGrad();
    return { active: false, reason: 'runtime.blas: off' };
  }
  const probe = await loadNativeBlas({ env, ...(opts.blasCandidates ? { candidates: opts.blasCandidates } : {}) });
  if (!probe.available) {
    if (section.blas === 'on') {
      throw new BackendError('blas-unavailable', `"on", but no native BLAS could be loaded: ${probe.reason}.`, {
        where: { key: 'runtime.blas' },
        hint: 'Install OpenBLAS (`apt-get install libopenblas0-pthread` on Debian/Ubuntu), or set runtime.blas: auto|off.',
      });
    }
    installWasmKernels({});
    installExplicitTransposeMatMulGrad();
    return { active: false, reason: probe.reason };
  }
  const threads = section.blasThreads ?? defaultBlasThreads(opts.workers);
  const controlled = probe.blas.setThreads(threads);
  installWasmKernels({ blas: probe.blas, extras: true });
  // sgemm takes transposed operands at full speed, so tfjs's own gradient is the right one again.
  restoreStockMatMulGrad();
  const actual = probe.blas.threads();
  return {
    active: true,
    library: probe.blas.library,
    config: probe.blas.config,
    ...(actual === undefined ? {} : { threads: actual }),
    reason: `${section.blas === 'on' ? 'runtime.blas: on' : 'auto'}: loaded ${probe.blas.library}` +
      (controlled ? `, ${threads} thread${threads === 1 ? '' : 's'}${section.blasThreads ? ' (runtime.blasThreads)' : ` (cores ÷ ${opts.workers ?? 1} worker${(opts.workers ?? 1) === 1 ? '' : 's'})`}` : ', thread count not controllable'),
  };
}

async function wasmFacts(): Promise<{ simd: boolean; multithread: boolean; threads: number }> {
  const wasm = (await import(TFJS_WASM)) as { getThreadsCount(): number };
  return {
    simd: Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')),
    multithread: Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')),
    threads: wasm.getThreadsCount(),
  };
}

/** The one line a run starts with. */
export function describeRuntime(info: RuntimeInfo): string {
  const device = info.backend === 'tensorflow' ? ` (${info.device})` : '';
  const wasm = info.wasm ? ` [SIMD ${info.wasm.simd ? 'on' : 'off'}, ${info.wasm.threads} thread${info.wasm.threads === 1 ? '' : 's'}]` : '';
  const name = info.blas.config?.split(' ').slice(0, 2).join(' ') ?? info.blas.library;
  const blas = info.blas.active
    ? `on: ${name} via ${info.blas.library}, ${info.blas.threads ?? '?'} thread${info.blas.threads === 1 ? '' : 's'}`
    : `off (${info.blas.reason})`;
  return `backend: ${info.backend}${device}${wasm}: ${info.reason} · BLAS ${blas} · matMul gradient: ${info.matmulGrad}`;
}

/** Run tags that make results reproducible: BLAS and thread count change the last bits of every number. */
export function runtimeTags(info: RuntimeInfo): Record<string, string> {
  const tags: Record<string, string> = {
    'milkit.backend': info.backend,
    'milkit.backend.device': info.device,
    'milkit.tfjs': info.tfjsVersion,
    'milkit.blas': info.blas.active ? 'on' : 'off',
    'milkit.matmulGrad': info.matmulGrad,
  };
  if (info.blas.library) tags['milkit.blas.library'] = info.blas.library;
  if (info.blas.config) tags['milkit.blas.config'] = info.blas.config;
  if (info.blas.threads !== undefined) tags['milkit.blas.threads'] = String(info.blas.threads);
  if (!info.blas.active) tags['milkit.blas.reason'] = info.blas.reason;
  if (info.kernelOverrides.length) tags['milkit.kernels'] = info.kernelOverrides.join(',');
  return tags;
}
