/**
 * Local executor: sweep jobs in parallel child processes on this machine (executor/local)
 * Paper: none — infrastructure. Implements issue 4 item 6 (`--workers N`, default = CPU cores).
 * Implements: a pool of N `milkit worker --manifest M --index I --blas-threads T` processes (execa), one job each
 * Symbols: N workers · T = max(1, floor(cores / N)) BLAS threads per process, so N×T ≤ cores
 * Choices: one process per job, so every job gets a fresh tfjs backend and a crash ends only its own job (wasm is
 *   single-threaded in Node; processes are how we use the cores). Worker output is appended to the job's log.
 *   Exit 0 with a result file = succeeded; exit 75 = another live worker holds the job (busy); anything else = failed.
 * Checked against: test/plugins/executors/local.test.ts (parallelism, failures, busy, abort)
 */
import { appendFile, mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import {
  definePlugin, WORKER_EXIT_BUSY,
  type Executor, type ExecutorBatch, type ExecutorContext, type ExecutorEvents, type ExecutorJob, type JobOutcome,
} from '../../src/registry/index.js';

export const LocalExecutorOptions = z.strictObject({
  workers: z.int().positive().optional().describe('worker processes running at once (default: CPU cores)'),
  blasThreads: z.int().positive().optional().describe('BLAS threads per worker (default: max(1, cores ÷ workers))'),
  killAfterMs: z.int().positive().default(5000).describe('on abort, milliseconds between SIGTERM and SIGKILL of running workers'),
});
export type LocalExecutorOptions = z.output<typeof LocalExecutorOptions>;

/** Starts the line the executor writes to a job's log before each attempt. */
const ATTEMPT_HEADER = '--- ';

async function fileExists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** Why a worker failed: its error.json message, else the tail of its log, else its exit status. */
async function failureText(job: ExecutorJob, exit: string): Promise<string> {
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
    if (tail) return `${exit}; last log lines:\n${tail}`;
  } catch {
    // No log either.
  }
  return exit;
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
    const report = (): void => events.onStatus?.(`${running} running, ${batch.jobs.length - next} queued`);
    const runOne = async (position: number): Promise<void> => {
      const job = batch.jobs[position] as ExecutorJob;
      await mkdir(path.dirname(job.logPath), { recursive: true });
      await appendFile(job.logPath, `${ATTEMPT_HEADER}${new Date().toISOString()} local worker for job ${job.id} (${job.label})\n`);
      events.onStart?.(job);
      const args = [...batch.worker.args, '--manifest', batch.manifestPath, '--index', String(job.index), '--blas-threads', String(this.blasThreads)];
      const child = await execa(batch.worker.command, args, {
        cwd: batch.cwd,
        env: { ...this.ctx.env, MILKIT_WORKER: '1' },
        extendEnv: false,
        stdin: 'ignore',
        stdout: { file: job.logPath, append: true },
        stderr: { file: job.logPath, append: true },
        reject: false,
        ...(batch.signal ? { cancelSignal: batch.signal } : {}),
        forceKillAfterDelay: this.options.killAfterMs,
      });
      let outcome: JobOutcome;
      if (child.exitCode === 0 && (await fileExists(job.resultPath))) outcome = { index: job.index, id: job.id, status: 'succeeded' };
      else if (child.exitCode === WORKER_EXIT_BUSY) outcome = { index: job.index, id: job.id, status: 'busy' };
      else {
        const exit = child.isCanceled ? 'aborted' : child.signal ? `killed by ${child.signal}` : child.exitCode === 0 ? 'exited 0 without a result file' : `exit code ${String(child.exitCode)}`;
        outcome = { index: job.index, id: job.id, status: 'failed', error: await failureText(job, `worker ${exit}`) };
      }
      outcomes[position] = outcome;
      events.onDone?.(outcome);
    };
    // N lanes, each pulling the next job as soon as its previous one ends.
    const lane = async (): Promise<void> => {
      while (next < batch.jobs.length && !batch.signal?.aborted) {
        const position = next;
        next += 1;
        running += 1;
        report();
        try {
          await runOne(position);
        } finally {
          running -= 1;
        }
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
  summary: 'run sweep jobs in parallel worker processes on this machine (--workers N, default = cores)',
  options: LocalExecutorOptions,
  capabilities: { remote: false },
  create: (options, ctx) => new LocalExecutor(options, ctx),
});
