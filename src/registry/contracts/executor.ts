// Executor plugins: run a batch of sweep/CV jobs somewhere (local child processes, Slurm array jobs).
// An executor only launches `milkit worker --manifest M --index I` for each job and reports what happened;
// the worker does the work and leaves a result file, so every executor shares resume and dedup semantics.
import type { Logger } from '../../core/logger.js';

/** One job of a batch, as an executor sees it. */
export interface ExecutorJob {
  /** Position in the job manifest: the worker's `--index` and the Slurm array task id. */
  readonly index: number;
  /** Stable id = hash(resolved config, fold). */
  readonly id: string;
  /** Human label for logs and progress, e.g. `lr=1e-4 fold=2`. */
  readonly label: string;
  /** Written atomically by the worker when the job succeeded; its existence means "done". */
  readonly resultPath: string;
  /** Written by the worker when the job failed (JSON `{ message, code? }`). */
  readonly errorPath: string;
  /** Where the executor sends the worker's stdout and stderr. */
  readonly logPath: string;
}

/** Exit code of a worker that found its job locked by another live worker (EX_TEMPFAIL): outcome `busy`. */
export const WORKER_EXIT_BUSY = 75;

/**
 * `milkit worker --serve`: a long-lived worker that runs many jobs of one manifest, so a sweep of short jobs does
 * not pay process start-up (tsx, tfjs, wasm) per job. Requests are job indices, one per line on stdin; after each
 * job the worker writes one report line to stderr (`WORKER_REPORT_PREFIX` + JSON `WorkerReport`), in order with
 * its log lines. Closing stdin ends the worker after the running job; after a failed job it exits by itself, so
 * the next job starts in a clean process.
 */
export const WORKER_REPORT_PREFIX = '\u001emilkit-worker-report ';

export interface WorkerReport {
  readonly index: number;
  readonly status: 'succeeded' | 'already-done' | 'busy' | 'failed';
  readonly error?: string;
}

/** Parses a report line; undefined for ordinary log lines. */
export function parseWorkerReport(line: string): WorkerReport | undefined {
  if (!line.startsWith(WORKER_REPORT_PREFIX)) return undefined;
  try {
    const raw = JSON.parse(line.slice(WORKER_REPORT_PREFIX.length)) as Partial<WorkerReport>;
    const statuses = ['succeeded', 'already-done', 'busy', 'failed'];
    if (typeof raw.index !== 'number' || typeof raw.status !== 'string' || !statuses.includes(raw.status)) return undefined;
    return { index: raw.index, status: raw.status, ...(typeof raw.error === 'string' ? { error: raw.error } : {}) };
  } catch {
    return undefined;
  }
}

/** The report line for `report` (newline included). */
export function formatWorkerReport(report: WorkerReport): string {
  return `${WORKER_REPORT_PREFIX}${JSON.stringify(report)}\n`;
}

/**
 * The argv prefix that runs `milkit worker`; executors append `--manifest M --index I --blas-threads T` (one job
 * per process, Slurm) or `--manifest M --serve --blas-threads T` (many jobs per process, local).
 */
export interface WorkerCommand {
  readonly command: string;
  readonly args: readonly string[];
}

export interface ExecutorBatch {
  /** Sweep name (Slurm job name, log prefixes). */
  readonly name: string;
  /** Sweep state directory (scripts and logs of the executor go below it). */
  readonly stateDir: string;
  /** Job manifest the workers read. */
  readonly manifestPath: string;
  /** The jobs to run now (already-finished jobs are not in the batch). */
  readonly jobs: readonly ExecutorJob[];
  readonly worker: WorkerCommand;
  /** Working directory of every worker. */
  readonly cwd: string;
  /** Aborting stops launching new jobs and ends the running ones. */
  readonly signal?: AbortSignal;
}

/**
 * `succeeded`: the result file exists. `failed`: the worker failed (error says why).
 * `busy`: another worker holds the job's lock (a concurrent sweep is running it); nothing was done.
 */
export type JobStatus = 'succeeded' | 'failed' | 'busy';

export interface JobOutcome {
  readonly index: number;
  readonly id: string;
  readonly status: JobStatus;
  readonly error?: string;
}

export interface ExecutorEvents {
  /** A job was handed to a worker (local) or started running (Slurm). */
  onStart?(job: ExecutorJob): void;
  /** A job ended; called once per job of the batch, as soon as the executor knows. */
  onDone?(outcome: JobOutcome): void;
  /** Free-form status for progress displays, e.g. `2 running, 5 pending`. */
  onStatus?(text: string): void;
}

export interface Executor {
  /** Jobs that run at the same time (for BLAS threads per process and progress ETA). */
  readonly slots: number;
  /** Runs the batch to completion (or abort) and returns one outcome per job, in batch order. */
  run(batch: ExecutorBatch, events?: ExecutorEvents): Promise<JobOutcome[]>;
}

export interface ExecutorContext {
  readonly logger: Logger;
  readonly cwd: string;
  /** CPU cores of this machine (default worker count of the local executor). */
  readonly cores: number;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export type ExecutorCapabilities = Readonly<{
  /** Jobs run on other machines, which must see the same filesystem paths (Slurm). */
  readonly remote?: boolean;
}>;
