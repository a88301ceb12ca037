/**
 * Local executor: sweep jobs in parallel worker processes on this machine (executor/local)
 * Paper: none — infrastructure. Implements `--workers N` (default = CPU cores): jobs spread over long-lived local workers.
 * Implements: N lanes, each feeding job indices to a long-lived `milkit worker --manifest M --serve --blas-threads T`
 *   process (execa) and reading its per-job report lines; a lane starts a fresh process after a failed job, after a
 *   crash, and (with `reuseWorkers: false`) before every job.
 * Symbols: N workers · T = max(1, floor(cores / N)) BLAS threads per process, so N×T ≤ cores
 * Choices: processes, because wasm is single-threaded in Node. Reused processes, because a short job's wall time is
 *   mostly process start-up (tsx, module graph, tfjs/wasm init: ~1.5–2 s of a 3 s quickstart fold), which a sweep of
 *   many short jobs would otherwise pay serially in every lane (BENCHMARKS.md, sweep). Isolation is kept where it
 *   matters: a failed job ends its process (the worker exits after reporting it), and a crash ends only its job.
 *   The worker's output (stdout and stderr, interleaved) goes to the log of the job it is running.
 * Checked against: test/plugins/executors/local.test.ts (parallelism, reuse, failures, busy, crash, abort)
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import { execa } from 'execa';
import { z } from 'zod';
import {
  definePlugin, MilkitError, parseWorkerReport, storageError,
  type Executor, type ExecutorBatch, type ExecutorContext, type ExecutorEvents, type ExecutorJob, type JobOutcome, type WorkerReport,
} from 'milkit';

export const LocalExecutorOptions = z.strictObject({
  workers: z.int().positive().optional().describe('worker processes running at once (default: CPU cores)'),
  blasThreads: z.int().positive().optional().describe('BLAS threads per worker (default: max(1, cores ÷ workers))'),
  reuseWorkers: z.boolean().default(true).describe('run many jobs in each worker process (false: a fresh process per job, paying start-up every time)'),
  killAfterMs: z.int().positive().default(5000).describe('on abort, milliseconds between SIGTERM and SIGKILL of running workers'),
});
export type LocalExecutorOptions = z.output<typeof LocalExecutorOptions>;

/** Starts the line the executor writes to a job's log before each attempt. */
const ATTEMPT_HEADER = '--- ';

/** One line for an error: a milkit error's own rendering, else its message. */
function describe(error: unknown): string {
  if (error instanceof MilkitError) return error.render();
  return error instanceof Error ? error.message : String(error);
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** Why a job failed: its error.json message, else the tail of this attempt's log, else `fallback`. */
async function failureText(job: ExecutorJob, fallback: string): Promise<string> {
  try {
    const parsed = JSON.parse(await readFile(job.errorPath, 'utf8')) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // No error file: the worker died before it could write one (crash, kill, bad command).
  }
  try {
    // Only this attempt's output: the log also holds earlier attempts, each after its own header line.
    const lines = (await readFile(job.logPath, 'utf8')).trimEnd().split('\n');
    let header = -1;
    lines.forEach((line, i) => {
      if (line.startsWith(ATTEMPT_HEADER)) header = i;
    });
    const tail = lines.slice(header + 1).slice(-5).join('\n');
    if (tail) return `${fallback}; last log lines:\n${tail}`;
  } catch {
    // No log either.
  }
  return fallback;
}

interface SpawnSettings {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly signal?: AbortSignal;
  readonly killAfterMs: number;
  /** A job log that cannot be written (full or read-only disk): reported, never an unhandled 'error' event. */
  readonly onLogError: (error: unknown) => void;
}

function spawnWorker(settings: SpawnSettings) {
  return execa(settings.command, [...settings.args], {
    cwd: settings.cwd,
    env: { ...settings.env, MILKIT_WORKER: '1' },
    extendEnv: false,
    stdin: 'pipe',
    all: true,
    buffer: false,
    reject: false,
    ...(settings.signal ? { cancelSignal: settings.signal } : {}),
    forceKillAfterDelay: settings.killAfterMs,
  });
}

/** How a job given to a worker process ended: its report, or the process's end without one. */
type Attempt = { readonly report: WorkerReport } | { readonly ended: string };

/**
 * One `milkit worker --serve` process. Output lines go to the log of the job it is running (lines between jobs
 * to the previous job's log); report lines resolve that job. Every log line is written before its job resolves.
 */
class WorkerProcess {
  readonly pid: number | undefined;
  jobsStarted = 0;
  private readonly child: ReturnType<typeof spawnWorker>;
  private current: { readonly job: ExecutorJob; readonly settle: (attempt: Attempt) => void } | undefined;
  private log: WriteStream | undefined;
  private logPath: string | undefined;
  private endedAs: string | undefined;
  private readonly ended: Promise<string>;

  constructor(private readonly settings: SpawnSettings) {
    this.child = spawnWorker(settings);
    this.pid = this.child.pid;
    // A worker that is gone makes writes to its stdin fail; its end is reported through `ended` instead.
    this.child.stdin?.on('error', () => undefined);
    const lines = this.child.all ? createInterface({ input: this.child.all, crlfDelay: Infinity }) : undefined;
    lines?.on('line', (line) => this.onLine(line));
    const drained = lines ? new Promise<void>((resolve) => lines.once('close', resolve)) : Promise.resolve();
    this.ended = Promise.all([this.child, drained]).then(([result]) => {
      const how = result.isCanceled ? 'worker aborted'
        : result.signal ? `worker killed by ${result.signal}`
        : result.exitCode === 0 ? 'worker exited 0 without reporting the job' : `worker exit code ${String(result.exitCode)}`;
      this.endedAs = how;
      const running = this.current;
      this.current = undefined;
      void this.flush().then(() => running?.settle({ ended: how }));
      return how;
    });
  }

  get alive(): boolean {
    return this.endedAs === undefined;
  }

  /** Hands `job` to the worker; resolves when it reports the job or ends. */
  run(job: ExecutorJob, header: string): Promise<Attempt> {
    if (!this.alive) return Promise.resolve({ ended: this.endedAs ?? 'worker ended' });
    this.jobsStarted += 1;
    return new Promise<Attempt>((resolve) => {
      void this.switchLog(job.logPath, header).catch((error: unknown) => {
        // The log folder cannot be made (full or read-only disk): the job is not started and says why.
        resolve({ ended: `could not open the job log: ${describe(storageError(error, job.logPath, 'create the job log folder'))}` });
        return 'failed' as const;
      }).then((opened) => {
        if (opened === 'failed') return;
        // Ended while the log was being opened: nothing will report this job.
        if (!this.alive) {
          void this.flush().then(() => resolve({ ended: this.endedAs ?? 'worker ended' }));
          return;
        }
        this.current = { job, settle: resolve };
        this.child.stdin?.write(`${job.index}\n`);
      });
    });
  }

  /** Closes stdin (the worker exits after its running job) and waits for the process to end. */
  async close(): Promise<void> {
    this.child.stdin?.end();
    await this.ended;
    await this.flush();
  }

  private onLine(line: string): void {
    const report = parseWorkerReport(line);
    const running = this.current;
    if (report && running && report.index === running.job.index) {
      this.current = undefined;
      void this.flush().then(() => running.settle({ report }));
      return;
    }
    this.write(`${line}\n`);
  }

  /** Appends to the current job's log (between jobs: the previous job's, reopened). */
  private write(text: string): void {
    if (!this.log && this.logPath) {
      const file = this.logPath;
      this.log = createWriteStream(file, { flags: 'a' });
      // Without a listener a full disk would crash the sweep with an unhandled 'error' event.
      this.log.on('error', (error) => this.settings.onLogError(storageError(error, file, 'write the job log')));
    }
    this.log?.write(text);
  }

  private async switchLog(file: string, header: string): Promise<void> {
    await this.flush();
    await mkdir(path.dirname(file), { recursive: true });
    this.logPath = file;
    this.write(header);
  }

  /** Ends the open log stream once everything written to it is on disk. */
  private flush(): Promise<void> {
    const log = this.log;
    this.log = undefined;
    if (!log) return Promise.resolve();
    // finished() settles for a clean end and for a stream a write error already destroyed (full disk), so this never hangs.
    log.end();
    return finished(log).then(() => undefined, () => undefined);
  }
}

class LocalExecutor implements Executor {
  readonly slots: number;
  private readonly blasThreads: number;

  constructor(private readonly options: LocalExecutorOptions, private readonly ctx: ExecutorContext) {
    this.slots = options.workers ?? Math.max(1, ctx.cores);
    this.blasThreads = options.blasThreads ?? Math.max(1, Math.floor(ctx.cores / this.slots));
  }

  async run(batch: ExecutorBatch, events: ExecutorEvents = {}): Promise<JobOutcome[]> {
    const outcomes: Array<JobOutcome | undefined> = new Array(batch.jobs.length);
    let next = 0;
    let running = 0;
    let logErrorReported = false;
    const report = (): void => events.onStatus?.(`${running} running, ${batch.jobs.length - next} queued`);
    const spawn = (): WorkerProcess => new WorkerProcess({
      command: batch.worker.command,
      args: [...batch.worker.args, '--manifest', batch.manifestPath, '--serve', '--blas-threads', String(this.blasThreads)],
      cwd: batch.cwd,
      env: this.ctx.env,
      ...(batch.signal ? { signal: batch.signal } : {}),
      killAfterMs: this.options.killAfterMs,
      onLogError: (error) => {
        if (logErrorReported) return;
        logErrorReported = true;
        this.ctx.logger.warn(`job logs are incomplete: ${describe(error)}`);
      },
    });
    const runOne = async (worker: WorkerProcess, position: number): Promise<JobOutcome> => {
      const job = batch.jobs[position] as ExecutorJob;
      const header = `${ATTEMPT_HEADER}${new Date().toISOString()} local worker pid ${String(worker.pid)} (job ${worker.jobsStarted + 1} of this process) for job ${job.id} (${job.label})\n`;
      events.onStart?.(job);
      const attempt = await worker.run(job, header);
      const base = { index: job.index, id: job.id };
      if ('ended' in attempt) return { ...base, status: 'failed', error: await failureText(job, attempt.ended) };
      const { status, error } = attempt.report;
      if (status === 'busy') return { ...base, status: 'busy' };
      if (status === 'failed') return { ...base, status: 'failed', error: await failureText(job, error ?? 'worker reported a failure') };
      if (await fileExists(job.resultPath)) return { ...base, status: 'succeeded' };
      return { ...base, status: 'failed', error: await failureText(job, `worker reported "${status}" without a result file`) };
    };
    // N lanes, each pulling the next job as soon as its previous one ends, on a worker process it keeps alive.
    const lane = async (): Promise<void> => {
      let worker: WorkerProcess | undefined;
      try {
        while (next < batch.jobs.length && !batch.signal?.aborted) {
          const position = next;
          next += 1;
          running += 1;
          report();
          try {
            if (!worker?.alive) worker = spawn();
            const outcome = await runOne(worker, position);
            outcomes[position] = outcome;
            events.onDone?.(outcome);
            // After a failure the worker exits by itself (or has already ended): never hand it another job.
            if (!this.options.reuseWorkers || outcome.status === 'failed') {
              await worker.close();
              worker = undefined;
            }
          } finally {
            running -= 1;
          }
        }
      } finally {
        await worker?.close();
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.slots, batch.jobs.length) }, lane));
    // Jobs never launched because of an abort still get an outcome, so callers see the whole batch.
    return batch.jobs.map((job, i) => outcomes[i] ?? { index: job.index, id: job.id, status: 'failed', error: 'not started: the sweep was aborted' });
  }
}

export default definePlugin({
  kind: 'executor',
  name: 'local',
  summary: 'run sweep jobs in parallel long-lived worker processes on this machine (--workers N, default = cores)',
  options: LocalExecutorOptions,
  capabilities: { remote: false },
  create: (options, ctx) => new LocalExecutor(options, ctx),
});
