// End-to-end sweeps with the local executor and real worker processes running a cheap fake job runner:
// parallel completion, kill-and-resume, failure then re-run, validation before compute, duplicate rows.
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { runSweep, type SweepOptions, type SweepReport } from '../../../../src/core/engine/sweep/engine.js';
import type { SweepDefinition } from '../../../../src/core/engine/sweep/spec.js';
import { MemoryLogger } from '../../../../src/core/logger.js';
import localExecutor from '../../../../plugins/executors/local.js';
import { fakeCompose, fakeExpand, fakeMetrics } from './fixtures/fake-job.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fakeWorker = { command: process.execPath, args: ['--conditions=milkit-source', '--import', 'tsx', path.join(here, 'fixtures', 'fake-worker.ts')] };
const GRID = ['a=1,2', 'b=x,yy'];

interface FakeRun {
  readonly report: SweepReport;
  /** One line per job the workers trained: `<id> fold=<k> pid=<p> blas=<t>`. */
  readonly trained: string[];
}

async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `milkit-${prefix}-`));
}

async function trainedLines(log: string): Promise<string[]> {
  try {
    return (await readFile(log, 'utf8')).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

async function sweep(stateDir: string, definition: Partial<SweepDefinition>, env: Record<string, string> = {}, extra: Partial<SweepOptions> = {}): Promise<FakeRun> {
  const log = path.join(stateDir, `..`, `${path.basename(stateDir)}-trained-${Date.now()}.log`);
  const logger = new MemoryLogger();
  const executor = localExecutor.create(localExecutor.options.parse({ workers: 2 }), {
    logger, cwd: process.cwd(), cores: 4, env: { ...process.env, FAKE_TRAIN_LOG: log, FAKE_JOB_MS: '50', ...env },
  });
  const report = await runSweep({
    definition: { name: 'test', experimentFile: 'experiments/fake.yaml', grid: GRID, zip: [], ...definition },
    expand: fakeExpand, compose: fakeCompose, executor, worker: fakeWorker, cwd: process.cwd(), logger, stateDir, ...extra,
  });
  return { report, trained: await trainedLines(log) };
}

async function resultCount(stateDir: string): Promise<number> {
  let count = 0;
  for (const id of await readdir(path.join(stateDir, 'jobs')).catch(() => [] as string[])) {
    if ((await readdir(path.join(stateDir, 'jobs', id))).includes('result.json')) count += 1;
  }
  return count;
}

function expectedTable(): string {
  const rows = [['1', 'x'], ['1', 'yy'], ['2', 'x'], ['2', 'yy']].map(([a, b]) => {
    const folds = [0, 1, 2].map((f) => fakeMetrics([`a=${a}`, `b=${b}`], f));
    const auc = folds.reduce((s, m) => s + m.auc, 0) / 3;
    const acc = folds.reduce((s, m) => s + m.accuracy, 0) / 3;
    // Metrics step by 0.01 (auc) and 0.02 (accuracy) per fold: sample std of {0, 1, 2}·step is exactly step.
    return `| ${a} | ${b} | 3/3 | ${auc.toFixed(4)} ± 0.0100 | ${acc.toFixed(4)} ± 0.0200 | 0.2500 ± 0.0000 |`;
  });
  return ['| a | b | folds | auc | accuracy | s/slide |', '| --- | --- | --- | --- | --- | --- |', ...rows].join('\n');
}

describe('sweep engine with the local executor', () => {
  let uninterrupted: FakeRun;
  let uninterruptedDir: string;

  beforeAll(async () => {
    uninterruptedDir = path.join(await tempDir('sweep'), 'state');
    uninterrupted = await sweep(uninterruptedDir, {});
  });

  it('finishes a 2×2 grid × 3 folds with 2 workers, each given cores ÷ workers BLAS threads', async () => {
    const { report, trained } = uninterrupted;
    expect(report).toMatchObject({ cells: 4, jobs: 12, alreadyDone: 0, launched: 12, succeeded: 12, failed: [], busy: 0, missing: 0 });
    expect(trained).toHaveLength(12);
    expect(new Set(trained.map((l) => l.split(' ')[0])).size).toBe(12);
    // cores 4 / 2 workers.
    expect(trained.every((l) => l.endsWith('blas=2'))).toBe(true);
    expect(report.markdown).toBe(expectedTable());
    expect(await readFile(path.join(uninterruptedDir, 'table.md'), 'utf8')).toBe(`${expectedTable()}\n${report.comparisonMarkdown ?? ''}\n`);
    // The fake jobs write no splits.json: the table says the t-test could not run instead of pairing blindly.
    expect(report.comparison?.rows.map((r) => r.isBaseline)).toEqual([true, false, false, false]);
    expect(report.comparison?.rows[1]?.metrics.map((m) => [m.metric, m.pairedFolds, m.tTest])).toEqual([['auc', 3, null], ['accuracy', 3, null]]);
    expect(report.comparisonMarkdown).toContain('- a=1 b=yy: the split sizes of 3 fold(s) are unknown, so the corrected t-test is not run');
    const summary = (await readFile(path.join(uninterruptedDir, 'summary.csv'), 'utf8')).trim().split('\n');
    expect(summary).toHaveLength(5);
    expect(summary[1]?.startsWith('a=1 b=x,,,1,x,3,3,0.61')).toBe(true);
  });

  it('skips every finished job when the same sweep runs again', async () => {
    const again = await sweep(uninterruptedDir, {});
    expect(again.report).toMatchObject({ jobs: 12, alreadyDone: 12, launched: 0, missing: 0 });
    expect(again.trained).toEqual([]);
    expect(again.report.markdown).toBe(uninterrupted.report.markdown);
  });

  it('after being killed mid-way, a re-run trains only the missing jobs and ends with the uninterrupted table', async () => {
    const stateDir = path.join(await tempDir('sweep-kill'), 'state');
    const firstLog = `${stateDir}-first.log`;
    const driver = execa(process.execPath, ['--conditions=milkit-source', '--import', 'tsx', path.join(here, 'fixtures', 'sweep-driver.ts'), stateDir, '2', ...GRID], {
      detached: true, reject: false, env: { FAKE_TRAIN_LOG: firstLog, FAKE_JOB_MS: '400' }, stdio: 'ignore',
    });
    // Kill the driver and its workers (one process group) once some, but not all, jobs have finished.
    let finishedAtKill = 0;
    for (let i = 0; i < 600 && finishedAtKill < 3; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      finishedAtKill = await resultCount(stateDir);
    }
    process.kill(-(driver.pid as number), 'SIGKILL');
    await driver;
    const finishedBefore = await resultCount(stateDir);
    expect(finishedBefore).toBeGreaterThanOrEqual(3);
    expect(finishedBefore).toBeLessThan(12);

    const resumed = await sweep(stateDir, {});
    expect(resumed.report.alreadyDone).toBe(finishedBefore);
    expect(resumed.trained).toHaveLength(12 - finishedBefore);
    expect(resumed.report).toMatchObject({ launched: 12 - finishedBefore, succeeded: 12 - finishedBefore, failed: [], busy: 0, missing: 0 });
    // Every job id has exactly one result, and the table is the uninterrupted sweep's.
    expect(await resultCount(stateDir)).toBe(12);
    const trainedIds = new Set([...(await trainedLines(firstLog)), ...resumed.trained].map((l) => l.split(' ')[0]));
    expect(trainedIds.size).toBe(12);
    expect(resumed.report.markdown).toBe(uninterrupted.report.markdown);
  });

  it('reports failed jobs at once, keeps the other results, and re-runs only the failed ones next time', async () => {
    const stateDir = path.join(await tempDir('sweep-fail'), 'state');
    const definition = { grid: ['a=1,2', 'b=x'] };
    const failing = await sweep(stateDir, definition, { FAKE_FAIL_FOLD: '1' });
    expect(failing.report).toMatchObject({ jobs: 6, succeeded: 4, missing: 2 });
    expect(failing.report.failed).toHaveLength(2);
    expect(failing.report.failed[0]?.error).toBe('error [fake-failure]: fold 1 fails on purpose.');
    // Folds 0 and 2 of a=1: auc 0.60, 0.62 → 0.61 ± 0.0141; accuracy 0.45, 0.49 → 0.47 ± 0.0283.
    expect(failing.report.markdown.split('\n')[2]).toBe('| 1 | 2/3 | 0.6100 ± 0.0141 (n=2/3) | 0.4700 ± 0.0283 (n=2/3) | 0.2500 ± 0.0000 (n=2/3) |');
    const folds = await readFile(path.join(stateDir, 'folds.csv'), 'utf8');
    expect(folds.split('\n').filter((l) => l.includes(',failed,'))).toHaveLength(2);

    const fixed = await sweep(stateDir, definition);
    expect(fixed.trained).toHaveLength(2);
    expect(fixed.trained.every((l) => l.includes(' fold=1 '))).toBe(true);
    expect(fixed.report).toMatchObject({ alreadyDone: 4, succeeded: 2, failed: [], missing: 0 });
    expect(fixed.report.markdown.split('\n')[2]).toBe('| 1 | 3/3 | 0.6100 ± 0.0100 | 0.4700 ± 0.0200 | 0.2500 ± 0.0000 |');
  });

  it('validates every cell before starting any job', async () => {
    const stateDir = path.join(await tempDir('sweep-invalid'), 'state');
    const log = `${stateDir}.log`;
    await writeFile(log, '');
    await expect(sweep(stateDir, { grid: ['a=1,2', 'bad=0'] }, { FAKE_TRAIN_LOG: log })).rejects.toMatchObject({ code: 'sweep-invalid-cells' });
    expect(await trainedLines(log)).toEqual([]);
    expect(await readdir(stateDir).catch(() => 'no state folder')).toBe('no state folder');
  });

  it('rejects a baseline that names no row before any job starts', async () => {
    const stateDir = path.join(await tempDir('sweep-baseline'), 'state');
    const log = `${stateDir}.log`;
    await writeFile(log, '');
    const rows = [{ name: 'first', overrides: ['a=1'] }, { name: 'second', overrides: ['a=2'] }];
    await expect(sweep(stateDir, { grid: ['folds=1'], rows, baseline: 'frist' }, { FAKE_TRAIN_LOG: log })).rejects.toThrowErrorMatchingInlineSnapshot(`[ConfigError: baseline "frist" is not a row of the sweep. Did you mean "first"?]`);
    expect(await trainedLines(log)).toEqual([]);
  });

  it('trains a repeated row once and prints it on both rows, in the sweep file order', async () => {
    const stateDir = path.join(await tempDir('sweep-rows'), 'state');
    const run = await sweep(stateDir, {
      grid: ['folds=1'], rows: [{ name: 'second', overrides: ['a=2'] }, { name: 'first', overrides: ['a=1'] }, { name: 'again', overrides: ['a=2'] }],
    });
    expect(run.report).toMatchObject({ cells: 3, jobs: 2, launched: 2 });
    expect(run.trained).toHaveLength(2);
    expect(run.report.markdown.split('\n').slice(2).map((l) => l.split(' | ').slice(0, 3).join(' | '))).toEqual([
      '| second | 1/1 | 0.7000', '| first | 1/1 | 0.6000', '| again | 1/1 | 0.7000',
    ]);
  });

  it('plans and writes the state folder but runs nothing on a dry run', async () => {
    const stateDir = path.join(await tempDir('sweep-dry'), 'state');
    const run = await sweep(stateDir, {}, {}, { dryRun: true });
    expect(run.report).toMatchObject({ jobs: 12, launched: 0, missing: 12 });
    expect((await readdir(path.join(stateDir, 'jobs'))).length).toBe(12);
    const record = JSON.parse(await readFile(path.join(stateDir, 'sweep.json'), 'utf8')) as { cells: Array<{ name: string; jobIds: string[] }> };
    expect(record.cells.map((c) => c.name)).toEqual(['a=1 b=x', 'a=1 b=yy', 'a=2 b=x', 'a=2 b=yy']);
  });
});
