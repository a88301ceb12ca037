// Run lifecycle with real processes and real signals (docs/reliability.md): a 5-fold cv on small synthetic data is
// stopped by SIGINT, SIGTERM or kill -9 while fold 1 trains, then resumed. Each must end with exactly five FINISHED
// fold runs and one FINISHED experiment run in the MLflow file store, none RUNNING, and the metrics of an
// uninterrupted run; a resume of a finished cv adds nothing. A sweep stopped by SIGINT leaves a partial table.md.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMlruns, type ParsedRun } from '../helpers/mlruns-parser.js';
import { QUICKSTART, tempDir } from '../e2e/helpers.js';
import { spawnMilkit } from '../helpers/milkit-child.js';

/** Small enough for seconds per fold, long enough (30 epochs) that a signal lands while a fold trains. */
const SMALL = [
  'runtime.backend=cpu', 'data.dataset.slides=20', 'data.dataset.instances=[10,20]', 'data.dataset.featureDim=8', 'data.dataset.signalDim=2',
  'data.dataset.thumbs=false', 'train.epochs=30', 'train.earlyStopping.patience=100', 'eval.metrics=[auc,accuracy]', 'eval.bootstrap=0',
];

const milkit = spawnMilkit;

function cvArgs(cwd: string, name: string, extra: readonly string[] = []): string[] {
  return ['cv', QUICKSTART, ...SMALL, 'split.folds=5', `output.dir=${path.join(cwd, name)}`, `tracking.uri=${path.join(cwd, name, 'mlruns')}`, ...extra];
}

function runDir(outRoot: string): string {
  const [hash] = readdirSync(outRoot).filter((n) => /^[0-9a-f]{8}$/.test(n));
  return path.join(outRoot, hash as string);
}

/** Waits until `file()` names an existing file (polling), or fails after `ms`. */
async function waitFor(file: () => string | undefined, ms = 120_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const f = file();
    if (f !== undefined && existsSync(f)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('timed out waiting for the run to reach fold 1');
}

function fold1Checkpoint(root: string): string | undefined {
  if (!existsSync(root)) return undefined;
  const [hash] = readdirSync(root).filter((n) => /^[0-9a-f]{8}$/.test(n));
  return hash ? path.join(root, hash, 'fold-1', 'stage-main', 'last.ckpt') : undefined;
}

/** Runs of the file store beside the run folder (`tracking.uri=<name>/mlruns`). */
function runs(dir: string): ParsedRun[] {
  return parseMlruns(path.join(path.dirname(dir), 'mlruns')).flatMap((e) => e.runs);
}

/** Test metrics of the summary (mean, std, n) without wall-clock ones. */
function summaryMetrics(dir: string): unknown {
  const summary = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8')) as { summary: Record<string, unknown> };
  return Object.fromEntries(Object.entries(summary.summary).filter(([key]) => !key.includes('time')));
}

function expectCleanStore(dir: string): void {
  const all = runs(dir);
  const folds = all.filter((r) => r.tags['milkit.level'] === 'fold');
  expect(folds.map((r) => r.status)).toEqual(['FINISHED', 'FINISHED', 'FINISHED', 'FINISHED', 'FINISHED']);
  expect(folds.map((r) => r.tags['milkit.fold']).sort()).toEqual(['0', '1', '2', '3', '4']);
  const parents = all.filter((r) => r.tags['milkit.level'] === 'experiment');
  expect(parents.map((r) => r.status)).toEqual(['FINISHED']);
  expect(all.filter((r) => r.status === 'RUNNING')).toEqual([]);
  for (const fold of folds) expect(fold.tags['mlflow.parentRunId']).toBe(parents[0]?.runId);
}

const dirs: string[] = [];
let cwd: string;
let reference: unknown;

beforeAll(async () => {
  cwd = await tempDir('milkit-lifecycle-');
  dirs.push(cwd);
  const run = await milkit(cvArgs(cwd, 'reference'), cwd).done;
  expect(run.code, run.out).toBe(0);
  reference = summaryMetrics(runDir(path.join(cwd, 'reference')));
}, 300_000);

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('cv stopped while fold 1 trains, then --resume', () => {
  for (const [signal, exitCode] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal}: exits ${exitCode} with a partial summary and KILLED runs; the resume completes without duplicates`, async () => {
      const name = signal.toLowerCase();
      const first = milkit(cvArgs(cwd, name), cwd);
      await waitFor(() => fold1Checkpoint(path.join(cwd, name)));
      first.signal(signal);
      const stopped = await first.done;
      expect(stopped.code, stopped.out).toBe(exitCode);
      expect(stopped.out).toMatch(new RegExp(`stopped by ${signal}: 1 of 5 folds finished`));
      expect(stopped.out).toContain('Resume with: milkit cv');
      expect(stopped.out).toContain('--resume');
      expect(stopped.out).not.toMatch(/\n\s+at /); // no stack trace

      const dir = runDir(path.join(cwd, name));
      const partial = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8')) as { partial?: boolean; missingFolds?: number[]; interrupted?: string; folds: Array<{ fold: number }> };
      expect(partial).toMatchObject({ partial: true, missingFolds: [1, 2, 3, 4], interrupted: signal });
      expect(partial.folds.map((f) => f.fold)).toEqual([0]);
      const afterStop = runs(dir);
      expect(afterStop.filter((r) => r.status === 'RUNNING')).toEqual([]);
      expect(afterStop.find((r) => r.tags['milkit.level'] === 'experiment')?.status).toBe('KILLED');
      const fold1 = afterStop.find((r) => r.tags['milkit.fold'] === '1');
      expect(fold1?.status).toBe('KILLED');
      expect(Number(fold1?.meta.end_time)).toBeGreaterThan(0);
      expect(existsSync(path.join(dir, '.milkit.lock'))).toBe(false);

      const resumed = await milkit(cvArgs(cwd, name, ['--resume']), cwd).done;
      expect(resumed.code, resumed.out).toBe(0);
      expect(resumed.out).toContain('fold 0 finished in an earlier run');
      expect(resumed.out).toMatch(/fold 1: resuming after epoch \d+/);
      expectCleanStore(dir);
      expect(summaryMetrics(dir)).toEqual(reference);
      expect(JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'))).not.toHaveProperty('partial');
    }, 300_000);
  }

  it('kill -9: the stale lock is taken over, the RUNNING runs are reused, and a second resume adds nothing', async () => {
    const first = milkit(cvArgs(cwd, 'kill9'), cwd);
    await waitFor(() => fold1Checkpoint(path.join(cwd, 'kill9')));
    first.signal('SIGKILL');
    expect((await first.done).signal).toBe('SIGKILL');
    const dir = runDir(path.join(cwd, 'kill9'));
    expect(existsSync(path.join(dir, '.milkit.lock'))).toBe(true);
    expect(runs(dir).filter((r) => r.status === 'RUNNING').length).toBeGreaterThanOrEqual(2);

    const resumed = await milkit(cvArgs(cwd, 'kill9', ['--resume']), cwd).done;
    expect(resumed.code, resumed.out).toBe(0);
    expect(resumed.out).toMatch(/lock .* was left by pid \d+, which is gone; taking it over/);
    expectCleanStore(dir);
    expect(summaryMetrics(dir)).toEqual(reference);

    // Resuming a finished cv: nothing runs, no run is added or touched, the summary stays.
    const before = runs(dir).map((r) => [r.runId, r.status, r.meta.end_time]);
    const again = await milkit(cvArgs(cwd, 'kill9', ['--resume']), cwd).done;
    expect(again.code, again.out).toBe(0);
    expect(again.out).toContain('folds 0, 1, 2, 3, 4 finished in an earlier run');
    expect(runs(dir).map((r) => [r.runId, r.status, r.meta.end_time])).toEqual(before);
    expect(summaryMetrics(dir)).toEqual(reference);
  }, 300_000);
});

describe('a second signal', () => {
  it('exits at once with 130, leaving only whole files; --resume still ends clean', async () => {
    const first = milkit(cvArgs(cwd, 'twice'), cwd);
    await waitFor(() => fold1Checkpoint(path.join(cwd, 'twice')));
    first.signal('SIGINT');
    // The second one once the first was seen (signals sent back to back may merge into one).
    for (let i = 0; i < 500 && !first.output().includes('SIGINT: stopping'); i += 1) await new Promise((r) => setTimeout(r, 5));
    first.signal('SIGINT');
    const stopped = await first.done;
    // Either it was still stopping (the second signal ended it at once) or it had just finished stopping: 130 both ways.
    expect(stopped.code, stopped.out).toBe(130);
    const dir = runDir(path.join(cwd, 'twice'));
    // Every JSON record in the folder parses (no half-written file), whatever the moment of the exit.
    const records = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.json'));
    for (const record of records) expect(() => JSON.parse(readFileSync(path.join(dir, record), 'utf8')), record).not.toThrow();

    const resumed = await milkit(cvArgs(cwd, 'twice', ['--resume']), cwd).done;
    expect(resumed.code, resumed.out).toBe(0);
    expectCleanStore(dir);
    expect(summaryMetrics(dir)).toEqual(reference);
  }, 300_000);
});

describe('sweep stopped by SIGINT', () => {
  it('signals and reaps its workers, writes table.md marked partial, ends its runs KILLED and exits 130', async () => {
    const stateDir = path.join(cwd, 'sweep');
    const args = ['sweep', QUICKSTART, ...SMALL, 'split.folds=2', 'model/aggregator=mean-pool,max-pool', `output.dir=${path.join(cwd, 'sweep-runs')}`,
      `tracking.uri=${path.join(cwd, 'sweep-mlruns')}`, '--workers', '1', '--dir', stateDir];
    const first = milkit(args, cwd);
    // Stopped while the first job trains (its fold checkpoint exists), before any job has a result.
    await waitFor(() => {
      const jobs = path.join(stateDir, 'jobs');
      if (!existsSync(jobs)) return undefined;
      return readdirSync(jobs).map((id) => path.join(jobs, id, 'fold-0', 'stage-main', 'last.ckpt')).find((f) => existsSync(f))
        ?? readdirSync(jobs).map((id) => path.join(jobs, id, 'fold-1', 'stage-main', 'last.ckpt')).find((f) => existsSync(f));
    });
    first.signal('SIGINT');
    const stopped = await first.done;
    expect(stopped.code, stopped.out).toBe(130);
    expect(stopped.out).toContain('sweep stopped by SIGINT');
    const table = readFileSync(path.join(stateDir, 'table.md'), 'utf8');
    expect(table).toMatch(/^> \*\*Partial\*\*: \d of 4 jobs have a result \(the sweep was stopped by SIGINT\)/);
    const all = parseMlruns(path.join(cwd, 'sweep-mlruns')).flatMap((e) => e.runs);
    expect(all.filter((r) => r.status === 'RUNNING')).toEqual([]);
    // The sweep run, its unfinished cells and the fold run its worker was training.
    const killed = all.filter((r) => r.status === 'KILLED').map((r) => r.tags['milkit.level'] ?? r.tags['mlflow.runName']);
    expect(new Set(killed), JSON.stringify(all.map((r) => [r.status, r.tags['milkit.level']]))).toEqual(new Set(['sweep', 'cell', 'fold']));
    // No worker process is left behind: none of this machine's processes runs a manifest of this sweep.
    const workers = readdirSync('/proc').filter((pid) => /^\d+$/.test(pid)).filter((pid) => {
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return cmdline.includes('worker') && cmdline.includes(stateDir);
      } catch {
        return false;
      }
    });
    expect(workers).toEqual([]);
    // The stopped job left no result, so the same command runs it again.
    const results = readdirSync(path.join(stateDir, 'jobs')).filter((id) => existsSync(path.join(stateDir, 'jobs', id, 'result.json')));
    expect(table).toContain(`${results.length} of 4 jobs have a result`);
  }, 300_000);
});
