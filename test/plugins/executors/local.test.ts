import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import localExecutor from '../../../plugins/executors/local.js';
import type { ExecutorBatch, ExecutorJob, JobOutcome } from '../../../src/registry/index.js';
import { MemoryLogger } from '../../../src/core/logger.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const scriptWorker = { command: process.execPath, args: [path.join(here, 'fixtures', 'script-worker.mjs')] };

interface ScriptedJob {
  readonly action?: 'ok' | 'busy' | 'fail' | 'crash' | 'silent';
  readonly waitFor?: number;
  readonly sleepMs?: number;
}

async function scriptedBatch(jobs: readonly ScriptedJob[], signal?: AbortSignal): Promise<{ batch: ExecutorBatch; log: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'milkit-local-'));
  const executorJobs: ExecutorJob[] = jobs.map((_, index) => ({
    index, id: `job${index}`.padEnd(16, '0'), label: `job ${index}`,
    resultPath: path.join(dir, 'jobs', String(index), 'result.json'),
    errorPath: path.join(dir, 'jobs', String(index), 'error.json'),
    logPath: path.join(dir, 'jobs', String(index), 'worker.log'),
  }));
  const log = path.join(dir, 'events.log');
  const manifestPath = path.join(dir, 'manifest.json');
  await writeFile(manifestPath, JSON.stringify({
    log, markers: path.join(dir, 'markers'), jobs: jobs.map((job, i) => ({ ...job, ...executorJobs[i] })),
  }));
  return { batch: { name: 't', stateDir: dir, manifestPath, jobs: executorJobs, worker: scriptWorker, cwd: dir, ...(signal ? { signal } : {}) }, log };
}

function create(options: Record<string, unknown>, cores: number) {
  return localExecutor.create(localExecutor.options.parse(options), { logger: new MemoryLogger(), cwd: process.cwd(), cores, env: process.env });
}

/** The most workers alive at once, read from the ordered start/end events. */
function maxConcurrency(events: string[]): number {
  let alive = 0;
  let max = 0;
  for (const line of events) {
    alive += line.startsWith('start') ? 1 : line.startsWith('end') ? -1 : 0;
    max = Math.max(max, alive);
  }
  return max;
}

describe('executor/local', () => {
  it('runs jobs in parallel workers, never more than --workers at once, with cores ÷ workers BLAS threads', async () => {
    // Jobs 0 and 1 each wait until the other has started: they can only both succeed if they run side by side.
    const { batch, log } = await scriptedBatch([{ waitFor: 1 }, { waitFor: 0 }, { sleepMs: 50 }, { sleepMs: 50 }, {}]);
    const done: JobOutcome[] = [];
    const executor = create({ workers: 2 }, 5);
    expect(executor.slots).toBe(2);
    const outcomes = await executor.run(batch, { onDone: (o) => done.push(o) });
    expect(outcomes.map((o) => o.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded']);
    expect(outcomes.map((o) => o.index)).toEqual([0, 1, 2, 3, 4]);
    expect(done.map((o) => o.index).sort()).toEqual([0, 1, 2, 3, 4]);
    const events = (await readFile(log, 'utf8')).trim().split('\n');
    expect(maxConcurrency(events), events.join('; ')).toBe(2);
    // floor(5 cores / 2 workers) = 2.
    expect(events.filter((e) => e.startsWith('start')).every((e) => e.includes(' blas=2 '))).toBe(true);
    // The worker's output goes to the job's log, after the executor's header line (report lines do not).
    const workerLog = await readFile(batch.jobs[4]?.logPath as string, 'utf8');
    expect(workerLog).toMatch(/^--- .* local worker pid \d+ \(job \d of this process\) for job job4000000000000 \(job 4\)\nworker 4 says hello\n$/);
  });

  it('runs many jobs in each worker process, and a fresh process per job with reuseWorkers: false', async () => {
    const pidsOf = async (log: string): Promise<string[]> => (await readFile(log, 'utf8')).trim().split('\n').filter((e) => e.startsWith('start')).map((e) => e.split('pid=')[1] as string);
    const reused = await scriptedBatch([{}, {}, {}, {}, {}, {}]);
    expect((await create({ workers: 2 }, 2).run(reused.batch)).every((o) => o.status === 'succeeded')).toBe(true);
    expect(new Set(await pidsOf(reused.log)).size).toBe(2);
    const fresh = await scriptedBatch([{}, {}, {}, {}]);
    expect((await create({ workers: 2, reuseWorkers: false }, 2).run(fresh.batch)).every((o) => o.status === 'succeeded')).toBe(true);
    expect(new Set(await pidsOf(fresh.log)).size).toBe(4);
  });

  it('keeps a worker after a busy job but replaces it after a failed or crashed one', async () => {
    const { batch, log } = await scriptedBatch([{}, { action: 'busy' }, {}, { action: 'fail' }, {}, { action: 'crash' }, {}]);
    const outcomes = await create({ workers: 1 }, 1).run(batch);
    expect(outcomes.map((o) => o.status)).toEqual(['succeeded', 'busy', 'succeeded', 'failed', 'succeeded', 'failed', 'succeeded']);
    const pids = (await readFile(log, 'utf8')).trim().split('\n').filter((e) => e.startsWith('start')).map((e) => e.split('pid=')[1]);
    expect(new Set(pids.slice(0, 4)).size).toBe(1);
    expect(pids[4]).not.toBe(pids[3]);
    expect(pids[5]).toBe(pids[4]);
    expect(pids[6]).not.toBe(pids[5]);
    // Headers count the jobs of each process.
    expect(await readFile(batch.jobs[6]?.logPath as string, 'utf8')).toMatch(/\(job 1 of this process\)/);
    expect(await readFile(batch.jobs[2]?.logPath as string, 'utf8')).toMatch(/\(job 3 of this process\)/);
  });

  it('defaults to one worker per core and at least one BLAS thread each', async () => {
    expect(create({}, 3).slots).toBe(3);
    const { batch, log } = await scriptedBatch([{}]);
    await create({ workers: 4 }, 2).run(batch);
    expect(await readFile(log, 'utf8')).toContain('start 0 blas=1 ');
  });

  it('maps worker exits to outcomes and explains failures from error.json or the log tail', async () => {
    const { batch } = await scriptedBatch([{ action: 'ok' }, { action: 'busy' }, { action: 'fail' }, { action: 'crash' }, { action: 'silent' }]);
    const outcomes = await create({ workers: 2 }, 2).run(batch);
    expect(outcomes.map((o) => o.status)).toEqual(['succeeded', 'busy', 'failed', 'failed', 'failed']);
    expect(outcomes[2]?.error).toBe('job 2 diverged');
    expect(outcomes[3]?.error).toBe('worker exit code 3; last log lines:\nworker 3 says hello\nsegfault-ish crash in job 3');
    expect(outcomes[4]?.error).toMatch(/^worker reported "succeeded" without a result file; last log lines:\nworker 4 says hello$/);
  });

  it('stops launching on abort, ends the running worker and reports every job', async () => {
    const controller = new AbortController();
    const { batch } = await scriptedBatch([{ sleepMs: 30_000 }, {}, {}], controller.signal);
    const outcomes = await create({ workers: 1, killAfterMs: 500 }, 1).run(batch, { onStart: () => setTimeout(() => controller.abort(), 200) });
    expect(outcomes.map((o) => o.status)).toEqual(['failed', 'failed', 'failed']);
    expect(outcomes[0]?.error).toMatch(/^worker aborted/);
    expect(outcomes[1]?.error).toBe('not started: the sweep was aborted');
  });
});
