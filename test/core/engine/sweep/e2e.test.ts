// `milkit sweep` end to end with the real job runner (composition, training, evaluation in worker processes):
// a 2-cell × 2-fold sweep on tiny synthetic data, killed after its first result and re-run, must train only the
// missing jobs and end with the uninterrupted sweep's metrics.
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const bin = path.join(root, 'bin', 'milkit.mjs');
const TINY = [
  'data.dataset.slides=16', 'data.dataset.instances=[10,30]', 'data.dataset.thumbs=false',
  'train.epochs=2', 'split.folds=2', 'eval.metrics=[auc,accuracy]', 'model/aggregator=mean-pool,max-pool',
];

function sweepArgs(stateDir: string, runsDir: string): string[] {
  return [bin, 'sweep', 'experiments/quickstart.yaml', ...TINY, `output.dir=${runsDir}`, '--workers', '2', '--dir', stateDir];
}

async function jobDirs(stateDir: string): Promise<string[]> {
  return (await readdir(path.join(stateDir, 'jobs')).catch(() => [] as string[])).map((id) => path.join(stateDir, 'jobs', id));
}

async function countResults(stateDir: string): Promise<number> {
  let n = 0;
  for (const dir of await jobDirs(stateDir)) if ((await readdir(dir)).includes('result.json')) n += 1;
  return n;
}

/** Worker attempts so far: each attempt starts with a header line in its job's log. */
async function countAttempts(stateDir: string): Promise<number> {
  let n = 0;
  for (const dir of await jobDirs(stateDir)) {
    const log = await readFile(path.join(dir, 'worker.log'), 'utf8').catch(() => '');
    n += log.split('\n').filter((l) => l.startsWith('--- ')).length;
  }
  return n;
}

/** The table without the s/slide column (timings differ between runs; metrics must not). */
function metricColumns(markdown: string): string[] {
  return markdown.trim().split('\n').map((line) => line.split(' | ').slice(0, -1).join(' | '));
}

describe('milkit sweep with the real job runner', () => {
  it('resumes a killed sweep by training only the missing jobs, ending with the uninterrupted metrics', async () => {
    const tmp = await mkdtemp(path.join(tmpdir(), 'milkit-sweep-e2e-'));
    const full = await execa(process.execPath, sweepArgs(path.join(tmp, 'full'), path.join(tmp, 'runs-full')), { cwd: root, reject: false });
    expect(full.exitCode, full.stderr).toBe(0);
    expect(full.stdout).toContain('2 cells, 4 jobs: 0 already finished, 4 finished now, 0 failed');
    const fullTable = await readFile(path.join(tmp, 'full', 'table.md'), 'utf8');
    expect(fullTable.split('\n')[0]).toBe('| model/aggregator | folds | auc | accuracy | s/slide |');

    const killedDir = path.join(tmp, 'killed');
    const runs = path.join(tmp, 'runs-killed');
    const first = execa(process.execPath, sweepArgs(killedDir, runs), { cwd: root, detached: true, reject: false, stdio: 'ignore' });
    for (let i = 0; i < 1200 && (await countResults(killedDir)) < 1; i += 1) await new Promise((resolve) => setTimeout(resolve, 100));
    process.kill(-(first.pid as number), 'SIGKILL');
    await first;
    const finishedBefore = await countResults(killedDir);
    const attemptsBefore = await countAttempts(killedDir);
    expect(finishedBefore).toBeGreaterThanOrEqual(1);

    const resumed = await execa(process.execPath, sweepArgs(killedDir, runs), { cwd: root, reject: false });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain(`4 jobs: ${finishedBefore} already finished, ${4 - finishedBefore} finished now, 0 failed`);
    expect((await countAttempts(killedDir)) - attemptsBefore).toBe(4 - finishedBefore);
    expect(metricColumns(await readFile(path.join(killedDir, 'table.md'), 'utf8'))).toEqual(metricColumns(fullTable));
  }, 300_000);

  it('gives the same metrics when every job runs in a fresh process as when workers run several jobs each', async () => {
    const tmp = await mkdtemp(path.join(tmpdir(), 'milkit-sweep-reuse-'));
    // One worker runs all four jobs in one process; then each job gets its own process.
    const reused = await execa(process.execPath, [...sweepArgs(path.join(tmp, 'reused'), path.join(tmp, 'runs-reused')), '--workers', '1'], { cwd: root, reject: false });
    expect(reused.exitCode, reused.stderr).toBe(0);
    const fresh = await execa(process.execPath, [...sweepArgs(path.join(tmp, 'fresh'), path.join(tmp, 'runs-fresh')), '--executor-option', 'reuseWorkers=false'], { cwd: root, reject: false });
    expect(fresh.exitCode, fresh.stderr).toBe(0);
    const reusedLogs = await Promise.all((await jobDirs(path.join(tmp, 'reused'))).map((dir) => readFile(path.join(dir, 'worker.log'), 'utf8')));
    expect(reusedLogs.filter((log) => log.includes('(job 4 of this process)'))).toHaveLength(1);
    const freshLogs = await Promise.all((await jobDirs(path.join(tmp, 'fresh'))).map((dir) => readFile(path.join(dir, 'worker.log'), 'utf8')));
    expect(freshLogs.every((log) => log.includes('(job 1 of this process)'))).toBe(true);
    const table = async (dir: string): Promise<string[]> => metricColumns(await readFile(path.join(tmp, dir, 'table.md'), 'utf8'));
    expect(await table('reused')).toEqual(await table('fresh'));
    // Per fold too, not only the means: folds.csv without its timing column and job ids (output.dir differs).
    const folds = async (dir: string): Promise<string[]> => {
      const rows = (await readFile(path.join(tmp, dir, 'folds.csv'), 'utf8')).trim().split('\n').map((l) => l.split(','));
      const dropped = ['s/slide', 'job'].map((name) => rows[0]?.indexOf(name) ?? -1);
      expect(Math.min(...dropped)).toBeGreaterThan(0);
      return rows.map((cells) => cells.filter((_, i) => !dropped.includes(i)).join(','));
    };
    expect(await folds('reused')).toEqual(await folds('fresh'));
  }, 300_000);
});
