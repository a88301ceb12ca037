// `milkit worker --manifest M --index I`: runs one job of a job manifest in this process. The job folder is
// locked while it runs (concurrent sweeps, re-submitted Slurm tasks), a finished job is never run again, and
// a failure leaves error.json (never a result), so the next sweep re-runs exactly the failed and missing jobs.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { readdir, readFile, rm, utimes } from 'node:fs/promises';
import lockfile from 'proper-lockfile';
import { ConfigError, MilkitError, renderError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { JobPayload, JobResult } from '../job.js';
import type { WorkerReport } from '../../../registry/contracts/executor.js';
import { exists, readJobManifest, readJobResult, writeAtomic, type ManifestJob } from './state.js';

export type RunJob = (payload: JobPayload) => Promise<JobResult>;

export interface WorkerOptions {
  readonly manifestPath: string;
  readonly index: number;
  /** BLAS threads for this process (cores ÷ concurrent workers), passed on in the payload. */
  readonly blasThreads?: number;
}

export interface WorkerDeps {
  readonly runJob: RunJob;
  readonly logger: Logger;
}

export type WorkerOutcome =
  | { readonly status: 'succeeded'; readonly id: string; readonly result: JobResult }
  | { readonly status: 'already-done'; readonly id: string }
  | { readonly status: 'busy'; readonly id: string; readonly holder: string };

interface Claim {
  readonly pid: number;
  readonly host: string;
  readonly startedAt: string;
}

/** Job folder and files of a manifest entry (the entry's dir is relative to the manifest's folder). */
export function jobPaths(manifestPath: string, job: ManifestJob): { dir: string; result: string; error: string; claims: string; lock: string } {
  const dir = path.resolve(path.dirname(manifestPath), job.dir);
  return { dir, result: path.join(dir, 'result.json'), error: path.join(dir, 'error.json'), claims: path.join(dir, 'claims'), lock: path.join(dir, '.lock') };
}

/** Runs job `index` of the manifest unless it is finished or running elsewhere; throws when the job fails. */
export async function runWorker(options: WorkerOptions, deps: WorkerDeps): Promise<WorkerOutcome> {
  const manifest = await readJobManifest(options.manifestPath);
  const job = manifest.jobs[options.index];
  if (!job || job.index !== options.index) {
    throw new ConfigError('worker-index-out-of-range', `${options.manifestPath} has no job ${options.index} (it lists ${manifest.jobs.length}: 0..${manifest.jobs.length - 1}).`, {
      hint: 'Pass --index (or SLURM_ARRAY_TASK_ID) within the manifest\'s range.',
    });
  }
  const paths = jobPaths(options.manifestPath, job);
  if (await exists(paths.result)) {
    deps.logger.info(`job ${job.id} (${job.label}) is already finished; nothing to do.`);
    return { status: 'already-done', id: job.id };
  }
  // The claim exists before the lock is taken and until after it is released, so a lock without any live
  // claim on this host can only belong to a killed worker.
  const claim: Claim = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  const claimFile = path.join(paths.claims, `${claim.host}-${claim.pid}.json`);
  await writeAtomic(claimFile, JSON.stringify(claim));
  let release: (() => Promise<void>) | string;
  try {
    release = await acquire(paths, claimFile, manifest.lockStaleMs, deps.logger);
  } catch (error) {
    await rm(claimFile, { force: true });
    throw error;
  }
  if (typeof release === 'string') {
    await rm(claimFile, { force: true });
    deps.logger.info(`job ${job.id} (${job.label}) is running in ${release}; leaving it to that worker.`);
    return { status: 'busy', id: job.id, holder: release };
  }
  const unlock = release;
  try {
    // Another worker may have finished it between our first check and taking the lock.
    if (await exists(paths.result)) return { status: 'already-done', id: job.id };
    await rm(paths.error, { force: true });
    const payload: JobPayload = {
      id: job.id,
      experimentFile: manifest.experimentFile,
      overrides: job.overrides,
      fold: job.fold,
      outDir: paths.dir,
      cwd: manifest.cwd,
      ...(manifest.jobKind !== undefined ? { jobKind: manifest.jobKind } : {}),
      ...((job.parentRunId ?? manifest.parentRunId) !== undefined ? { parentRunId: (job.parentRunId ?? manifest.parentRunId) as string } : {}),
      ...(options.blasThreads !== undefined ? { blasThreads: options.blasThreads } : {}),
    };
    deps.logger.info(`job ${job.id} (${job.label}): started in pid ${claim.pid} on ${claim.host}.`);
    let result: JobResult;
    try {
      result = await deps.runJob(payload);
    } catch (error) {
      const failure = {
        message: renderError(error),
        ...(error instanceof MilkitError ? { code: error.code } : {}),
        at: new Date().toISOString(),
      };
      await writeAtomic(paths.error, `${JSON.stringify(failure, null, 2)}\n`);
      throw error;
    }
    // runJob writes result.json itself; a runner that only returns its result still leaves the file.
    if (!(await readJobResult(paths.result))) await writeAtomic(paths.result, `${JSON.stringify(result, null, 2)}\n`);
    deps.logger.info(`job ${job.id} (${job.label}): finished.`);
    return { status: 'succeeded', id: job.id, result };
  } finally {
    await unlock();
    await rm(claimFile, { force: true });
  }
}

export interface ServeIO {
  /** Request lines: one job index each (blank lines are ignored). */
  readonly requests: AsyncIterable<string>;
  /** Called once per request, after its job ended (the CLI writes it as a report line). */
  report(report: WorkerReport): void;
}

/**
 * `milkit worker --serve`: runs the requested jobs of one manifest one after another in this process. Returns
 * `drained` when the requests end, `failed` right after the first job that fails: whatever a failure leaves
 * behind (leaked tensors, a grown wasm heap, a half-set backend) must not reach the next job, so the executor
 * starts a fresh process for it.
 */
export async function serveWorker(options: Omit<WorkerOptions, 'index'>, deps: WorkerDeps, io: ServeIO): Promise<'drained' | 'failed'> {
  for await (const line of io.requests) {
    const text = line.trim();
    if (!text) continue;
    const index = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(index)) {
      io.report({ index: -1, status: 'failed', error: `worker request "${text}" is not a job index.` });
      return 'failed';
    }
    try {
      const outcome = await runWorker({ ...options, index }, deps);
      io.report({ index, status: outcome.status });
    } catch (error) {
      io.report({ index, status: 'failed', error: renderError(error) });
      return 'failed';
    }
  }
  return 'drained';
}

/**
 * Takes the job's lock, or returns a description of a live holder. When every claim on the job belongs to a
 * process of this host that is gone (a killed sweep), the lock is taken over at once; holders on other hosts
 * count as live until the lock goes stale (no refresh for `staleMs`).
 */
async function acquire(paths: ReturnType<typeof jobPaths>, ownClaim: string, staleMs: number, logger: Logger): Promise<(() => Promise<void>) | string> {
  const options = {
    stale: staleMs,
    realpath: false,
    lockfilePath: paths.lock,
    retries: 0,
    // A long synchronous stretch can delay the refresh; the lock is advisory, so warn instead of crashing.
    onCompromised: (error: Error) => logger.warn(`job lock ${paths.lock} was compromised (${error.message}); another worker may take this job over.`),
  };
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      return await lockfile.lock(paths.dir, options);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error;
      const others = (await readClaims(paths.claims)).filter((c) => c.file !== ownClaim);
      const live = others.find((c) => c.host !== hostname() || isAlive(c.pid));
      if (live) return `pid ${live.pid} on ${live.host} since ${live.startedAt}`;
      if (attempt > 0) break;
      logger.warn(`job lock ${paths.lock} belongs to ${others.length ? others.map((c) => `pid ${c.pid}`).join(', ') : 'a worker'} that is gone; taking the job over.`);
      await Promise.all(others.map((c) => rm(c.file, { force: true })));
      // Backdating the lock makes proper-lockfile see it as stale and replace it.
      await utimes(paths.lock, new Date(0), new Date(0)).catch(() => undefined);
    }
  }
  return 'another worker';
}

async function readClaims(dir: string): Promise<Array<Claim & { file: string }>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const claims: Array<Claim & { file: string }> = [];
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    const file = path.join(dir, name);
    try {
      const raw = JSON.parse(await readFile(file, 'utf8')) as Partial<Claim>;
      if (typeof raw.pid === 'number' && typeof raw.host === 'string' && typeof raw.startedAt === 'string') claims.push({ pid: raw.pid, host: raw.host, startedAt: raw.startedAt, file });
    } catch {
      // Removed while we listed it: its owner has just finished.
    }
  }
  return claims;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/**
 * A killed worker whose parent died too stays a zombie until the init process reaps it, and signal 0 still
 * reaches zombies; some container inits reap late, so on Linux the process state decides (field 3 of
 * /proc/<pid>/stat: Z = zombie, X = dead).
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return false;
  }
}
