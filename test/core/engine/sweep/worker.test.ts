import { mkdir, mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import lockfile from 'proper-lockfile';
import { describe, expect, it } from 'vitest';
import type { JobPayload, JobResult } from '../../../../src/core/engine/job.js';
import { runWorker, jobPaths } from '../../../../src/core/engine/sweep/worker.js';
import { exists, type JobManifest } from '../../../../src/core/engine/sweep/state.js';
import { MilkitError } from '../../../../src/core/errors.js';
import { MemoryLogger } from '../../../../src/core/logger.js';

async function manifestWithOneJob(): Promise<{ file: string; manifest: JobManifest }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'milkit-worker-'));
  const manifest: JobManifest = {
    version: 1, sweep: 'w', experimentFile: '/abs/exp.yaml', cwd: '/abs', lockStaleMs: 60_000,
    jobs: [{ index: 0, id: '0123456789abcdef', fold: 2, label: 'a=1 · fold 2', overrides: ['a=1'], dir: '../jobs/0123456789abcdef' }],
  };
  const file = path.join(dir, 'manifests', 'm.json');
  await mkdir(path.dirname(file), { recursive: true });
  await mkdir(path.join(dir, 'jobs', '0123456789abcdef'), { recursive: true });
  await writeFile(file, JSON.stringify(manifest));
  return { file, manifest };
}

function countingRunner(): { runJob: (p: JobPayload) => Promise<JobResult>; payloads: JobPayload[] } {
  const payloads: JobPayload[] = [];
  return {
    payloads,
    runJob: async (payload) => {
      payloads.push(payload);
      return { id: payload.id, fold: payload.fold, metrics: { auc: 0.75 }, secondsPerSlide: 0.1, epochs: 4 };
    },
  };
}

describe('sweep worker', () => {
  it('runs the job once with the payload built from the manifest, then reports it finished', async () => {
    const { file, manifest } = await manifestWithOneJob();
    const runner = countingRunner();
    const first = await runWorker({ manifestPath: file, index: 0, blasThreads: 2 }, { runJob: runner.runJob, logger: new MemoryLogger() });
    expect(first.status).toBe('succeeded');
    const job = manifest.jobs[0] as JobManifest['jobs'][number];
    const paths = jobPaths(file, job);
    expect(runner.payloads).toEqual([{
      id: '0123456789abcdef', experimentFile: '/abs/exp.yaml', overrides: ['a=1'], fold: 2, outDir: paths.dir, cwd: '/abs', blasThreads: 2,
    }]);
    expect(JSON.parse(await readFile(paths.result, 'utf8'))).toEqual({ id: '0123456789abcdef', fold: 2, metrics: { auc: 0.75 }, secondsPerSlide: 0.1, epochs: 4 });
    expect(await readdir(paths.claims)).toEqual([]);
    expect(await exists(paths.lock)).toBe(false);
    const second = await runWorker({ manifestPath: file, index: 0 }, { runJob: runner.runJob, logger: new MemoryLogger() });
    expect(second.status).toBe('already-done');
    expect(runner.payloads).toHaveLength(1);
  });

  it('leaves error.json and no result when the job fails, and clears the error when a re-run succeeds', async () => {
    const { file, manifest } = await manifestWithOneJob();
    const paths = jobPaths(file, manifest.jobs[0] as JobManifest['jobs'][number]);
    const failing = async (): Promise<JobResult> => {
      throw new MilkitError('fake-failure', 'diverged at epoch 3.');
    };
    await expect(runWorker({ manifestPath: file, index: 0 }, { runJob: failing, logger: new MemoryLogger() })).rejects.toThrow('diverged at epoch 3.');
    expect(await exists(paths.result)).toBe(false);
    expect(JSON.parse(await readFile(paths.error, 'utf8'))).toMatchObject({ message: 'error [fake-failure]: diverged at epoch 3.', code: 'fake-failure' });
    const runner = countingRunner();
    expect((await runWorker({ manifestPath: file, index: 0 }, { runJob: runner.runJob, logger: new MemoryLogger() })).status).toBe('succeeded');
    expect(await exists(paths.error)).toBe(false);
    expect(await exists(paths.lock)).toBe(false);
  });

  it('leaves a job to the live worker holding its lock', async () => {
    const { file, manifest } = await manifestWithOneJob();
    const paths = jobPaths(file, manifest.jobs[0] as JobManifest['jobs'][number]);
    const release = await lockfile.lock(paths.dir, { realpath: false, lockfilePath: paths.lock, stale: 60_000 });
    await mkdir(paths.claims);
    await writeFile(path.join(paths.claims, 'holder.json'), JSON.stringify({ pid: process.pid, host: hostname(), startedAt: '2026-01-01T00:00:00Z' }));
    const runner = countingRunner();
    const outcome = await runWorker({ manifestPath: file, index: 0 }, { runJob: runner.runJob, logger: new MemoryLogger() });
    expect(outcome).toEqual({ status: 'busy', id: '0123456789abcdef', holder: `pid ${process.pid} on ${hostname()} since 2026-01-01T00:00:00Z` });
    expect(runner.payloads).toHaveLength(0);
    // Our own claim is withdrawn; the holder's stays.
    expect(await readdir(paths.claims)).toEqual(['holder.json']);
    await release();
  });

  it('takes over a job whose lock holder on this host has died (killed sweep)', async () => {
    const { file, manifest } = await manifestWithOneJob();
    const paths = jobPaths(file, manifest.jobs[0] as JobManifest['jobs'][number]);
    const dead = await execa(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    // What a SIGKILLed worker leaves: a fresh-looking lock folder and its claim.
    await mkdir(paths.lock);
    const now = new Date();
    await utimes(paths.lock, now, now);
    await mkdir(paths.claims);
    await writeFile(path.join(paths.claims, `${hostname()}-${dead.stdout}.json`), JSON.stringify({ pid: Number(dead.stdout), host: hostname(), startedAt: now.toISOString() }));
    const runner = countingRunner();
    const logger = new MemoryLogger();
    expect((await runWorker({ manifestPath: file, index: 0 }, { runJob: runner.runJob, logger })).status).toBe('succeeded');
    expect(runner.payloads).toHaveLength(1);
    expect(logger.text()).toContain(`belongs to pid ${dead.stdout} that is gone; taking the job over.`);
    expect(await readdir(paths.claims)).toEqual([]);
  });

  it('treats a claim from another host as live (it cannot be checked from here)', async () => {
    const { file, manifest } = await manifestWithOneJob();
    const paths = jobPaths(file, manifest.jobs[0] as JobManifest['jobs'][number]);
    await mkdir(paths.lock);
    await mkdir(paths.claims);
    await writeFile(path.join(paths.claims, 'node7-12.json'), JSON.stringify({ pid: 12, host: 'node7', startedAt: 'then' }));
    const outcome = await runWorker({ manifestPath: file, index: 0 }, { runJob: countingRunner().runJob, logger: new MemoryLogger() });
    expect(outcome).toEqual({ status: 'busy', id: '0123456789abcdef', holder: 'pid 12 on node7 since then' });
  });

  it('rejects an index outside the manifest', async () => {
    const { file } = await manifestWithOneJob();
    await expect(runWorker({ manifestPath: file, index: 3 }, { runJob: countingRunner().runJob, logger: new MemoryLogger() }))
      .rejects.toMatchObject({ code: 'worker-index-out-of-range', message: `${file} has no job 3 (it lists 1: 0..0).` });
  });

  it('rejects a file that is not a job manifest, saying which key is wrong', async () => {
    const { file } = await manifestWithOneJob();
    await writeFile(file, JSON.stringify({ version: 1, jobs: [] }));
    await expect(runWorker({ manifestPath: file, index: 0 }, { runJob: countingRunner().runJob, logger: new MemoryLogger() }))
      .rejects.toMatchObject({ code: 'job-manifest-invalid' });
  });
});
