// Signals at seeded random points, and exactly inside a checkpoint write and inside the MLflow flush
// (docs/reliability.md#signals). Real child processes, real SIGINT/SIGTERM, real files; the two exact points are
// reached through the test-only hold (MILKIT_TEST_HOLD, src/core/io/test-hold.ts). After every interruption:
// exit 130/143, no 0-byte or temporary file, no RUNNING run; after the resume: one FINISHED run per fold and one
// parent in the MLflow store, and the metrics of an uninterrupted run.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeMlflowServer } from '../helpers/fake-mlflow-server.js';
import { parseMlruns, type ParsedRun } from '../helpers/mlruns-parser.js';
import { QUICKSTART, tempDir } from '../e2e/helpers.js';
import { Rng } from '../../src/core/runtime/random.js';
import { spawnMilkit, type Ended, type MilkitChild } from '../helpers/milkit-child.js';

const FOLDS = 3;
/** A few seconds per run on 2 busy cores: 3 folds of 10 epochs on 20 tiny synthetic slides. */
const SMALL = [
  'runtime.backend=cpu', 'data.dataset.slides=20', 'data.dataset.instances=[10,20]', 'data.dataset.featureDim=8', 'data.dataset.signalDim=2',
  'data.dataset.thumbs=false', 'train.epochs=10', 'train.earlyStopping.patience=100', 'eval.metrics=[auc,accuracy]', 'eval.bootstrap=0',
  `split.folds=${FOLDS}`,
];
/** The seed of the signal times; set MILKIT_SIGNAL_SEED to replay another draw. */
const SEED = Number(process.env.MILKIT_SIGNAL_SEED ?? 14);
const EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;
/** The first line a cv prints once its signal handlers are installed (the backend is set up inside the run). */
const STARTED = 'backend: ';

const milkit = spawnMilkit;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForOutput(child: MilkitChild, text: string, ms = 120_000): Promise<void> {
  const until = Date.now() + ms;
  while (!child.output().includes(text)) {
    if (Date.now() > until) throw new Error(`timed out waiting for "${text}" in:\n${child.output()}`);
    await sleep(10);
  }
}

function cvArgs(cwd: string, tracking: string, extra: readonly string[] = []): string[] {
  return ['cv', QUICKSTART, ...SMALL, `output.dir=${path.join(cwd, 'out')}`, `tracking.uri=${tracking}`, ...extra];
}

function runDir(cwd: string): string {
  const root = path.join(cwd, 'out');
  const [hash] = readdirSync(root).filter((n) => /^[0-9a-f]{8}$/.test(n));
  return path.join(root, hash as string);
}

/** Files under `dir` that are empty or are a write's temporary file (`<name>.<10 digits>`). */
function brokenFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((rel) => {
    const file = path.join(dir, rel);
    if (!statSync(file).isFile()) return false;
    // MLflow's own empty markers are legitimately empty; milkit's records, checkpoints and metric files are not.
    return /\.\d{10}$/.test(rel) || (statSync(file).size === 0 && !rel.includes(`${path.sep}tags${path.sep}`) && !rel.includes(`${path.sep}params${path.sep}`));
  });
}

function storeRuns(mlruns: string): ParsedRun[] {
  return parseMlruns(mlruns).flatMap((e) => e.runs);
}

/** Exactly one FINISHED run per fold (by its fold tag) and one FINISHED parent; nothing RUNNING. */
function expectOneRunPerFold(all: readonly ParsedRun[]): void {
  const folds = all.filter((r) => r.tags['milkit.level'] === 'fold' && r.tags['milkit.superseded_by'] === undefined);
  expect(folds.map((r) => r.tags['milkit.fold']).sort()).toEqual(Array.from({ length: FOLDS }, (_, k) => String(k)));
  expect(folds.map((r) => r.status)).toEqual(Array.from({ length: FOLDS }, () => 'FINISHED'));
  const parents = all.filter((r) => r.tags['milkit.level'] === 'experiment');
  expect(parents.map((r) => r.status)).toEqual(['FINISHED']);
  expect(all.filter((r) => r.status === 'RUNNING')).toEqual([]);
  for (const fold of folds) expect(fold.tags['mlflow.parentRunId']).toBe(parents[0]?.runId);
}

/** The byte size a safetensors file must have by its header: 8 + header length + the end of the last tensor. */
function safetensorsSize(file: string): number {
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { data_offsets?: [number, number] }>;
  const end = Math.max(0, ...Object.values(header).map((t) => t.data_offsets?.[1] ?? 0));
  return 8 + headerLength + end;
}

/** Test metrics of summary.json (mean, std, n), without wall-clock ones. */
function summaryMetrics(dir: string): unknown {
  const summary = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8')) as { summary: Record<string, unknown> };
  return Object.fromEntries(Object.entries(summary.summary).filter(([key]) => !key.includes('time')));
}

/** What must hold right after any interruption. */
function expectStoppedCleanly(stopped: Ended, signal: keyof typeof EXIT_CODES, cwd: string, mlruns: string): void {
  expect(stopped.code, stopped.out).toBe(EXIT_CODES[signal]);
  expect(stopped.out).not.toMatch(/\n\s+at /); // no stack trace
  expect(brokenFiles(path.join(cwd, 'out'))).toEqual([]);
  expect(brokenFiles(mlruns)).toEqual([]);
  expect(storeRuns(mlruns).filter((r) => r.status === 'RUNNING')).toEqual([]);
  expect(existsSync(path.join(runDir(cwd), '.milkit.lock'))).toBe(false);
}

const dirs: string[] = [];
let reference: unknown;
/** Milliseconds from STARTED to the end of an uninterrupted cv: the window signal times are drawn from. */
let window: number;

async function workspace(name: string): Promise<string> {
  const cwd = await tempDir(`milkit-signals-${name}-`);
  dirs.push(cwd);
  return cwd;
}

beforeAll(async () => {
  const cwd = await workspace('reference');
  const run = milkit(cvArgs(cwd, path.join(cwd, 'mlruns')), cwd);
  await waitForOutput(run, STARTED);
  const started = Date.now();
  const ended = await run.done;
  window = Date.now() - started;
  expect(ended.code, ended.out).toBe(0);
  reference = summaryMetrics(runDir(cwd));
}, 300_000);

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe(`signals at seeded random points (seed ${SEED}; MILKIT_SIGNAL_SEED replays another)`, () => {
  const rng = new Rng(SEED);
  const random = (): number => rng.next();
  // Drawn up front, so the points (and the test names) depend on the seed only.
  const draws = [0, 1].map(() => ({ fraction: 0.05 + 0.75 * random(), signal: random() < 0.5 ? 'SIGINT' as const : 'SIGTERM' as const }));
  for (const [i, draw] of draws.entries()) {
    it(`point ${i + 1}: ${draw.signal} at ${(draw.fraction * 100).toFixed(0)}% of the cv, then --resume`, async () => {
      const cwd = await workspace(`seeded${i}`);
      const mlruns = path.join(cwd, 'mlruns');
      const first = milkit(cvArgs(cwd, mlruns), cwd);
      await waitForOutput(first, STARTED);
      await sleep(Math.round(draw.fraction * window));
      first.signal(draw.signal);
      const stopped = await first.done;
      expectStoppedCleanly(stopped, draw.signal, cwd, mlruns);

      const resumed = await milkit(cvArgs(cwd, mlruns, ['--resume']), cwd).done;
      expect(resumed.code, resumed.out).toBe(0);
      expectOneRunPerFold(storeRuns(mlruns));
      expect(summaryMetrics(runDir(cwd))).toEqual(reference);
      expect(brokenFiles(path.join(cwd, 'out'))).toEqual([]);
    }, 300_000);
  }
});

describe('a signal while a checkpoint is half written', () => {
  const checkpoint = `fold-1${path.sep}stage-main${path.sep}last.ckpt`;
  const hold = { MILKIT_TEST_HOLD: `write:${checkpoint}`, MILKIT_TEST_HOLD_MS: '1500' };

  it('SIGTERM: the write completes whole, the fold stops at the next step (143), and --resume continues it', async () => {
    const cwd = await workspace('ckpt');
    const mlruns = path.join(cwd, 'mlruns');
    const first = milkit(cvArgs(cwd, mlruns), cwd, hold);
    await waitForOutput(first, 'milkit-test-hold: write');
    // Held with half its bytes in the temporary file: the checkpoint itself does not exist yet.
    const foldDir = path.join(runDir(cwd), 'fold-1', 'stage-main');
    expect(existsSync(path.join(foldDir, 'last.ckpt'))).toBe(false);
    const temps = readdirSync(foldDir).filter((n) => /^last\.ckpt\.\d{10}$/.test(n));
    expect(temps).toHaveLength(1);
    expect(statSync(path.join(foldDir, temps[0] as string)).size).toBeGreaterThan(0);
    first.signal('SIGTERM');
    const stopped = await first.done;
    expectStoppedCleanly(stopped, 'SIGTERM', cwd, mlruns);
    expect(stopped.out).toMatch(/stopped by SIGTERM: 1 of 3 folds finished/);
    // The checkpoint landed whole: its size is what its own safetensors header says it must be.
    expect(statSync(path.join(foldDir, 'last.ckpt')).size).toBe(safetensorsSize(path.join(foldDir, 'last.ckpt')));

    const resumed = await milkit(cvArgs(cwd, mlruns, ['--resume']), cwd).done;
    expect(resumed.code, resumed.out).toBe(0);
    expect(resumed.out).toMatch(/fold 1: resuming after epoch \d+/);
    expectOneRunPerFold(storeRuns(mlruns));
    expect(summaryMetrics(runDir(cwd))).toEqual(reference);
  }, 300_000);

  it('two SIGINTs: the process leaves at once (130) mid-write, removing its temporary file; --resume ends clean', async () => {
    const cwd = await workspace('ckpt2');
    const mlruns = path.join(cwd, 'mlruns');
    const first = milkit(cvArgs(cwd, mlruns), cwd, { ...hold, MILKIT_TEST_HOLD_MS: '20000' });
    await waitForOutput(first, 'milkit-test-hold: write');
    first.signal('SIGINT');
    await waitForOutput(first, 'SIGINT: stopping');
    first.signal('SIGINT');
    const stopped = await first.done;
    expect(stopped.code, stopped.out).toBe(130);
    expect(stopped.out).toContain('SIGINT again: exiting now');
    // Never renamed into place, and its half-written temporary file is gone.
    expect(existsSync(path.join(runDir(cwd), 'fold-1', 'stage-main', 'last.ckpt'))).toBe(false);
    expect(brokenFiles(path.join(cwd, 'out'))).toEqual([]);
    expect(brokenFiles(mlruns)).toEqual([]);

    const resumed = await milkit(cvArgs(cwd, mlruns, ['--resume']), cwd).done;
    expect(resumed.code, resumed.out).toBe(0);
    expectOneRunPerFold(storeRuns(mlruns));
    expect(summaryMetrics(runDir(cwd))).toEqual(reference);
  }, 300_000);
});

describe('a signal while the tracker flushes to a slow MLflow server', () => {
  let server: FakeMlflowServer | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  it('SIGINT: the flush stops waiting at once (130), the local store is complete, and a sync leaves one run per fold on the server', async () => {
    server = await new FakeMlflowServer().start();
    // Every answer takes 150 ms: the queue of metric batches is still draining when the last fold ends.
    server.setDelay(150);
    const cwd = await workspace('flush');
    const mlruns = path.join(cwd, 'mlruns');
    const first = milkit(cvArgs(cwd, server.uri), cwd, { MILKIT_TEST_HOLD: 'flush', MILKIT_TEST_HOLD_MS: '20000' });
    await waitForOutput(first, 'milkit-test-hold: flush');
    const signalled = Date.now();
    first.signal('SIGINT');
    const stopped = await first.done;
    // It did not wait out the hold nor the flush budget (120 s by default).
    expect(Date.now() - signalled).toBeLessThan(10_000);
    expectStoppedCleanly(stopped, 'SIGINT', cwd, mlruns);
    expect(stopped.out).toMatch(/not sent: SIGINT arrived while they were being sent; they stay unsynced in .*mlruns\. Run `milkit mlflow sync`/);
    expect(stopped.out).toContain('stopped by SIGINT after the last fold');
    // Every fold finished before the signal: the local record is complete, and some of it is unsynced.
    expectOneRunPerFold(storeRuns(mlruns));
    expect(storeRuns(mlruns).some((r) => r.tags['milkit.sync.state'] === 'unsynced')).toBe(true);
    expect(summaryMetrics(runDir(cwd))).toEqual(reference);

    // A resume has nothing to run and touches no run.
    server.setDelay(0);
    const before = storeRuns(mlruns).map((r) => [r.runId, r.status, r.meta.end_time]);
    const resumed = await milkit(cvArgs(cwd, server.uri, ['--resume']), cwd).done;
    expect(resumed.code, resumed.out).toBe(0);
    expect(resumed.out).toContain('folds 0, 1, 2 finished in an earlier run');
    expect(storeRuns(mlruns).map((r) => [r.runId, r.status, r.meta.end_time])).toEqual(before);

    // The sync sends what the signal cut short, reusing the runs already on the server.
    const synced = await milkit(['mlflow', 'sync', '--mlruns', mlruns, '--to', server.uri], cwd).done;
    expect(synced.code, synced.out).toBe(0);
    const onServer = [...server.runs.values()];
    const folds = onServer.filter((r) => r.tags.get('milkit.level') === 'fold');
    expect(folds.map((r) => r.tags.get('milkit.fold')).sort()).toEqual(['0', '1', '2']);
    expect(folds.map((r) => r.status)).toEqual(['FINISHED', 'FINISHED', 'FINISHED']);
    expect(onServer.filter((r) => r.tags.get('milkit.level') === 'experiment').map((r) => r.status)).toEqual(['FINISHED']);
  }, 300_000);

  it('SIGTERM while fold 1 trains, then --resume: the server reopens the KILLED runs and ends with one FINISHED run per fold', async () => {
    const own = await new FakeMlflowServer().start();
    const cwd = await workspace('server');
    const mlruns = path.join(cwd, 'mlruns');
    try {
      const first = milkit(cvArgs(cwd, own.uri), cwd);
      // The first write of fold 1's checkpoint: fold 0 is finished and fold 1 trains.
      await waitForOutput(first, '[fold 1] 1/');
      first.signal('SIGTERM');
      const stopped = await first.done;
      expectStoppedCleanly(stopped, 'SIGTERM', cwd, mlruns);
      const killed = [...own.runs.values()].filter((r) => r.status === 'KILLED').map((r) => r.tags.get('milkit.level')).sort();
      expect(killed).toEqual(['experiment', 'fold']);

      const resumed = await milkit(cvArgs(cwd, own.uri, ['--resume']), cwd).done;
      expect(resumed.code, resumed.out).toBe(0);
      expectOneRunPerFold(storeRuns(mlruns));
      expect(summaryMetrics(runDir(cwd))).toEqual(reference);
      // The server: the same runs, reopened and finished, none created twice; every local run synced.
      const onServer = [...own.runs.values()];
      const folds = onServer.filter((r) => r.tags.get('milkit.level') === 'fold');
      expect(folds.map((r) => r.tags.get('milkit.fold')).sort()).toEqual(['0', '1', '2']);
      expect(folds.map((r) => r.status)).toEqual(['FINISHED', 'FINISHED', 'FINISHED']);
      const parents = onServer.filter((r) => r.tags.get('milkit.level') === 'experiment');
      expect(parents.map((r) => r.status)).toEqual(['FINISHED']);
      for (const fold of folds) expect(fold.tags.get('mlflow.parentRunId')).toBe(parents[0]?.runId);
      expect(storeRuns(mlruns).map((r) => r.tags['milkit.sync.state'])).toEqual(storeRuns(mlruns).map(() => 'synced'));
    } finally {
      await own.stop();
    }
  }, 300_000);
});
