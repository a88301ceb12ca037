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
});
