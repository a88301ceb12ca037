/**
 * Slurm executor: sweep jobs as one `sbatch --array` job on the cluster's scheduler (executor/slurm)
 * Paper: none — infrastructure. Setup verified on a single-node Slurm by test/slurm/local-slurm.sh.
 * Implements: writes `<state>/slurm/<stamp>-<k>.sh` (array task t runs `milkit worker --manifest M --index I_t`),
 *   submits it with `sbatch --parsable`, polls `squeue -h -r -j ID`, and reads each job's result/error file
 * Symbols: t = SLURM_ARRAY_TASK_ID · I_t = manifest index of task t · T = cpusPerTask = BLAS threads per task
 * Choices: accounting is often off (sacct says "accounting storage is disabled"), so completion is read from
 *   squeue (a task that left the queue has ended), from the exit code each task writes next to its script, and
 *   from the job's result/error files, never from sacct. A result file is final as soon as it appears; an error
 *   file counts only once its task has left the queue (an older attempt's error may still be there meanwhile). Batches larger than maxArraySize are
 *   split into several arrays. On abort the arrays are cancelled with scancel. The compute nodes must see the
 *   submitting machine's paths (shared filesystem), as on every Slurm cluster.
 * Checked against: test/plugins/executors/slurm.test.ts (real slurmctld/slurmd on localhost; skips loudly without)
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import {
  definePlugin, PluginError, WORKER_EXIT_BUSY,
  type Executor, type ExecutorBatch, type ExecutorContext, type ExecutorEvents, type ExecutorJob, type JobOutcome,
} from '../../src/registry/index.js';

export const SlurmExecutorOptions = z.strictObject({
  partition: z.string().min(1).optional().describe('partition to submit to (default: the cluster default)'),
  time: z.string().min(1).optional().describe('wall-clock limit of each task, Slurm format, e.g. 02:00:00'),
  cpusPerTask: z.int().positive().default(1).describe('CPUs of each array task; also its BLAS threads'),
  memory: z.string().min(1).optional().describe('memory of each task (--mem), e.g. 8G'),
  account: z.string().min(1).optional().describe('account to charge (--account)'),
  qos: z.string().min(1).optional().describe('quality of service (--qos)'),
  maxParallel: z.int().positive().optional().describe('array throttle: tasks of one array running at once (--array=...%N)'),
  maxArraySize: z.int().positive().default(1000).describe('tasks per array at most (keep below the cluster MaxArraySize); larger batches are split'),
  sbatchArgs: z.array(z.string()).default([]).describe('extra sbatch options, one per #SBATCH line, e.g. ["--gres=gpu:1"]'),
  setup: z.array(z.string()).default([]).describe('shell lines run before the worker, e.g. ["module load nodejs"]'),
  pollSeconds: z.number().positive().default(10).describe('seconds between squeue polls'),
  cancelOnAbort: z.boolean().default(true).describe('scancel the submitted arrays when the sweep is interrupted'),
});
export type SlurmExecutorOptions = z.output<typeof SlurmExecutorOptions>;

/** Quotes a string for bash. */
function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** `0-3,7,9-10` from sorted task ids (sbatch's --array syntax). */
export function arrayRanges(ids: readonly number[]): string {
  const parts: string[] = [];
  let start = ids[0];
  let previous = start;
  for (const id of [...ids.slice(1), Number.NaN]) {
    if (start === undefined || previous === undefined) break;
    if (id === previous + 1) {
      previous = id;
      continue;
    }
    parts.push(start === previous ? String(start) : `${start}-${previous}`);
    start = id;
    previous = id;
  }
  return parts.join(',');
}

/** The sbatch script of one array: task t runs the worker on manifest index `jobs[t].index`, logging to the job's log. */
export function renderArrayScript(batch: ExecutorBatch, jobs: readonly ExecutorJob[], options: SlurmExecutorOptions, outputPattern: string, exitFilePrefix: string): string {
  const directives = [
    `--job-name=milkit-${batch.name}`,
    `--array=0-${jobs.length - 1}${options.maxParallel ? `%${options.maxParallel}` : ''}`,
    `--output=${outputPattern}`,
    '--ntasks=1',
    `--cpus-per-task=${options.cpusPerTask}`,
    ...(options.partition ? [`--partition=${options.partition}`] : []),
    ...(options.time ? [`--time=${options.time}`] : []),
    ...(options.memory ? [`--mem=${options.memory}`] : []),
    ...(options.account ? [`--account=${options.account}`] : []),
    ...(options.qos ? [`--qos=${options.qos}`] : []),
    ...options.sbatchArgs,
  ];
  const worker = [batch.worker.command, ...batch.worker.args].map(shellQuote).join(' ');
  return [
    '#!/bin/bash',
    `# milkit sweep "${batch.name}": ${jobs.length} job${jobs.length === 1 ? '' : 's'} of ${batch.manifestPath}`,
    ...directives.map((d) => `#SBATCH ${d}`),
    'set -u',
    `cd ${shellQuote(batch.cwd)}`,
    ...options.setup,
    `indices=(${jobs.map((j) => j.index).join(' ')})`,
    `logs=(${jobs.map((j) => shellQuote(j.logPath)).join(' ')})`,
    'task=${SLURM_ARRAY_TASK_ID:?not running as a Slurm array task}',
    'index=${indices[$task]}',
    'log=${logs[$task]}',
    'mkdir -p "$(dirname "$log")"',
    'echo "--- $(date -Is) slurm task ${SLURM_ARRAY_JOB_ID:-?}_${task} (manifest index ${index}) on $(hostname)" >> "$log"',
    `${worker} --manifest ${shellQuote(batch.manifestPath)} --index "$index" --blas-threads ${options.cpusPerTask} >> "$log" 2>&1`,
    'code=$?',
    // The exit code tells busy (75) from failed once the task has left the queue (no sacct needed).
    `echo "$code" > ${shellQuote(exitFilePrefix)}"$task.exit"`,
    'exit "$code"',
    '',
  ].join('\n');
}

interface SubmittedArray {
  readonly slurmId: string;
  readonly jobs: readonly ExecutorJob[];
  /** Task t writes its worker's exit code to `${exitFilePrefix}${t}.exit`. */
  readonly exitFilePrefix: string;
}

async function exitCodeOf(file: string): Promise<number | undefined> {
  try {
    const code = Number((await readFile(file, 'utf8')).trim());
    return Number.isInteger(code) ? code : undefined;
  } catch {
    return undefined;
  }
}

async function mtimeMs(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).mtimeMs;
  } catch {
    return undefined;
  }
}

async function errorMessage(job: ExecutorJob): Promise<string | undefined> {
  try {
    const parsed = JSON.parse(await readFile(job.errorPath, 'utf8')) as { message?: unknown };
    return typeof parsed.message === 'string' ? parsed.message : undefined;
  } catch {
    return undefined;
  }
}

async function logTail(job: ExecutorJob): Promise<string> {
  try {
    const lines = (await readFile(job.logPath, 'utf8')).trimEnd().split('\n');
    return lines.slice(-5).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Waits `ms`, or less when the signal aborts; leaves no listener behind. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

class SlurmExecutor implements Executor {
  readonly slots: number;

  constructor(private readonly options: SlurmExecutorOptions, private readonly ctx: ExecutorContext) {
    // The scheduler decides concurrency; the throttle is the only bound we know.
    this.slots = options.maxParallel ?? Number.POSITIVE_INFINITY;
  }

  private async command(file: string, args: readonly string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const result = await execa(file, args, { env: this.ctx.env, extendEnv: false, reject: false, stdin: 'ignore' });
    if (result.failed && result.exitCode === undefined) {
      throw new PluginError('slurm-command-failed', `cannot run ${file}: ${result.shortMessage}`, {
        hint: 'Run the sweep on a machine with the Slurm client commands (sbatch, squeue, scancel) on PATH, or use --executor local.',
      });
    }
    return { exitCode: result.exitCode ?? 1, stdout: String(result.stdout), stderr: String(result.stderr) };
  }

  async run(batch: ExecutorBatch, events: ExecutorEvents = {}): Promise<JobOutcome[]> {
    if (batch.jobs.length === 0) return [];
    const dir = path.join(batch.stateDir, 'slurm');
    await mkdir(dir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    // Error files older than the submission belong to earlier attempts.
    const submittedAt = Date.now() - 1000;
    const arrays: SubmittedArray[] = [];
    const outcomes = new Map<number, JobOutcome>();
    const finish = (outcome: JobOutcome): void => {
      if (outcomes.has(outcome.index)) return;
      outcomes.set(outcome.index, outcome);
      events.onDone?.(outcome);
    };
    const cancel = async (): Promise<void> => {
      if (this.options.cancelOnAbort && arrays.length > 0) await this.command('scancel', arrays.map((a) => a.slurmId));
    };
    try {
      for (let start = 0, chunk = 0; start < batch.jobs.length; start += this.options.maxArraySize, chunk += 1) {
        const jobs = batch.jobs.slice(start, start + this.options.maxArraySize);
        const script = path.join(dir, `${stamp}-${chunk}.sh`);
        const exitFilePrefix = path.join(dir, `${stamp}-${chunk}_`);
        await writeFile(script, renderArrayScript(batch, jobs, this.options, `${exitFilePrefix}%a.out`, exitFilePrefix), { mode: 0o755 });
        const submitted = await this.command('sbatch', ['--parsable', script]);
        const slurmId = submitted.stdout.trim().split(';')[0] ?? '';
        if (submitted.exitCode !== 0 || !/^\d+$/.test(slurmId)) {
          throw new PluginError('slurm-submit-failed', `sbatch rejected ${script}: ${(submitted.stderr || submitted.stdout).trim() || `exit code ${submitted.exitCode}`}`, {
            hint: 'Check the executor options (partition, time, memory, sbatchArgs) against `sinfo` and the cluster limits.',
          });
        }
        arrays.push({ slurmId, jobs, exitFilePrefix });
        this.ctx.logger.info(`submitted Slurm array job ${slurmId} (${jobs.length} task${jobs.length === 1 ? '' : 's'}): ${script}`);
      }
      const started = new Set<number>();
      let squeueFailures = 0;
      for (;;) {
        if (batch.signal?.aborted) {
          await cancel();
          for (const job of batch.jobs) if (!(await mtimeMs(job.resultPath))) finish({ index: job.index, id: job.id, status: 'failed', error: 'cancelled: the sweep was aborted' });
          break;
        }
        const queue = await this.command('squeue', ['-h', '-r', '-j', arrays.map((a) => a.slurmId).join(','), '-o', '%i %T']);
        // Once every task has left the queue, Slurm forgets the job: "Invalid job id" then means "all ended".
        const forgotten = queue.exitCode !== 0 && /invalid job id/i.test(queue.stderr);
        if (queue.exitCode !== 0 && !forgotten) {
          squeueFailures += 1;
          this.ctx.logger.warn(`squeue failed (${squeueFailures} in a row): ${queue.stderr.trim() || `exit code ${queue.exitCode}`}`);
          if (squeueFailures >= 10) {
            await cancel();
            throw new PluginError('slurm-poll-failed', `squeue failed ${squeueFailures} times in a row; the submitted arrays were cancelled.`, {
              hint: 'Check that slurmctld is reachable (sinfo), then run the sweep again: finished jobs are kept.',
            });
          }
          await pause(this.options.pollSeconds * 1000, batch.signal);
          continue;
        }
        squeueFailures = 0;
        const states = new Map<string, string>();
        for (const line of forgotten ? [] : queue.stdout.split('\n')) {
          const [id, state] = line.trim().split(/\s+/);
          if (id && state) states.set(id, state);
        }
        let running = 0;
        let pending = 0;
        for (const array of arrays) {
          for (const [task, job] of array.jobs.entries()) {
            if (outcomes.has(job.index)) continue;
            const state = states.get(`${array.slurmId}_${task}`);
            if (state === 'RUNNING' && !started.has(job.index)) {
              started.add(job.index);
              events.onStart?.(job);
            }
            if (await mtimeMs(job.resultPath)) {
              finish({ index: job.index, id: job.id, status: 'succeeded' });
              continue;
            }
            if (state !== undefined) {
              if (state === 'RUNNING') running += 1;
              else pending += 1;
              continue;
            }
            // The task has left the queue without a result: its exit code says why.
            const code = await exitCodeOf(`${array.exitFilePrefix}${task}.exit`);
            if (code === WORKER_EXIT_BUSY) {
              finish({ index: job.index, id: job.id, status: 'busy' });
              continue;
            }
            const errorAt = await mtimeMs(job.errorPath);
            const message = code !== undefined && code !== 0 && errorAt !== undefined && errorAt >= submittedAt ? await errorMessage(job) : undefined;
            const how = code === undefined ? 'was ended by Slurm (time limit, cancel or node failure)' : code === 0 ? 'exited 0 without a result file' : `exited with code ${code}`;
            finish({
              index: job.index, id: job.id, status: 'failed',
              error: message ?? `Slurm task ${array.slurmId}_${task} ${how}; last log lines (${job.logPath}):\n${await logTail(job)}`,
            });
          }
        }
        events.onStatus?.(`slurm ${arrays.map((a) => a.slurmId).join(',')}: ${running} running, ${pending} pending, ${outcomes.size}/${batch.jobs.length} ended`);
        if (outcomes.size === batch.jobs.length) break;
        await pause(this.options.pollSeconds * 1000, batch.signal);
      }
    } catch (error) {
      if (!(error instanceof PluginError)) await cancel().catch(() => undefined);
      throw error;
    }
    return batch.jobs.map((job) => outcomes.get(job.index) ?? { index: job.index, id: job.id, status: 'failed', error: 'no outcome' });
  }
}

export default definePlugin({
  kind: 'executor',
  name: 'slurm',
  summary: 'submit sweep jobs as a Slurm array (sbatch --array), track them with squeue and result files',
  options: SlurmExecutorOptions,
  capabilities: { remote: true },
  create: (options, ctx) => new SlurmExecutor(options, ctx),
});
