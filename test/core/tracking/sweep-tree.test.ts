// A sweep of 2 cells × 3 folds as the engine will log it: 1 parent (sweep), 2 children (cells, their
// resolved config as params, cross-fold mean/std), 6 grandchildren (folds, per-epoch curves), nested through
// mlflow.parentRunId — in the local store, on a server mirrored live, and on a server filled later by sync.
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../../src/core/logger.js';
import { flattenParams, systemTags } from '../../../src/core/tracking/index.js';
import { syncStore } from '../../../src/core/tracking/sync.js';
import type { Tracker } from '../../../src/registry/index.js';
import { FakeMlflowServer, type FakeRun } from '../../helpers/fake-mlflow-server.js';
import { parseMlruns } from '../../helpers/mlruns-parser.js';
import { fastSection, localPoints, logEpochs, makeTracker, serverPoints, tempWorkspace } from '../../helpers/tracking-kit.js';

let cwd: string;
let server: FakeMlflowServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
  rmSync(cwd, { recursive: true, force: true });
});

const CELLS = [
  { aggregator: 'abmil', lr: 0.0002 },
  { aggregator: 'transmil', lr: 0.0001 },
];

/**
 * Drives a tracker like the engine's sweep: `workerTracker(cell)` stands for the process that runs a cell's
 * folds (the sweep runs cells in separate workers, each with its own tracker).
 */
async function runSweep(parentTracker: Tracker, workerTracker: (cell: number) => Promise<Tracker>): Promise<{ sweep: string; cells: string[]; folds: string[][] }> {
  const sweep = await parentTracker.startRun({ experimentName: 'table3', runName: 'sweep-lr-agg', tags: { ...systemTags({ runName: 'sweep-lr-agg', cwd, note: 'model/aggregator=abmil,transmil' }), 'milkit.level': 'sweep', 'milkit.run_key': 'sweep-1' } });
  await parentTracker.logParams(sweep, { 'sweep.axes': 'model.aggregator.name,train.lr', 'sweep.cells': '2' });
  const cells: string[] = [];
  const folds: string[][] = [];
  for (const [c, cell] of CELLS.entries()) {
    const worker = await workerTracker(c);
    const config = { model: { aggregator: { name: cell.aggregator } }, train: { lr: cell.lr, epochs: 4 }, seed: 7 };
    const cellRun = await worker.startRun({ experimentName: 'table3', runName: `cell-${c}`, parentRunId: sweep, tags: { 'milkit.level': 'cell', 'milkit.run_key': `cfg-${c}` } });
    await worker.logParams(cellRun, flattenParams(config).params);
    cells.push(cellRun);
    const foldRuns: string[] = [];
    const aucs: number[] = [];
    for (let f = 0; f < 3; f += 1) {
      const foldRun = await worker.startRun({ experimentName: 'table3', runName: `fold-${f}`, parentRunId: cellRun, tags: { 'milkit.level': 'fold', 'milkit.fold': String(f), 'milkit.run_key': `cfg-${c}:${f}` } });
      await worker.logParams(foldRun, { fold: String(f) });
      await logEpochs(worker, foldRun, 0, 4);
      const auc = 0.8 + c / 10 + f / 100;
      aucs.push(auc);
      await worker.logMetrics(foldRun, [{ key: 'test/auc', value: auc, step: 3, timestamp: 1_700_000_001_000 }]);
      await worker.endRun(foldRun, 'FINISHED');
      foldRuns.push(foldRun);
    }
    const mean = aucs.reduce((a, b) => a + b, 0) / aucs.length;
    const std = Math.sqrt(aucs.reduce((s, v) => s + (v - mean) ** 2, 0) / (aucs.length - 1));
    await worker.logMetrics(cellRun, [{ key: 'test/auc_mean', value: mean, step: 0, timestamp: 1_700_000_002_000 }, { key: 'test/auc_std', value: std, step: 0, timestamp: 1_700_000_002_000 }]);
    await worker.endRun(cellRun, 'FINISHED');
    await worker.flush();
    folds.push(foldRuns);
  }
  const table = path.join(cwd, 'sweep-table.csv');
  writeFileSync(table, 'cell,test/auc\n0,0.81\n1,0.91\n');
  await parentTracker.logArtifact(sweep, table);
  await parentTracker.endRun(sweep, 'FINISHED');
  await parentTracker.flush();
  return { sweep, cells, folds };
}

function checkLocalTree(root: string, ids: { sweep: string; cells: string[]; folds: string[][] }): void {
  const exp = parseMlruns(root).find((e) => e.name === 'table3');
  if (!exp) throw new Error('experiment missing');
  expect(exp.runs).toHaveLength(9);
  const byId = new Map(exp.runs.map((r) => [r.runId, r]));
  const roots = exp.runs.filter((r) => r.tags['mlflow.parentRunId'] === undefined);
  expect(roots.map((r) => r.runId)).toEqual([ids.sweep]);
  expect(roots[0]?.tags['milkit.level']).toBe('sweep');
  expect(roots[0]?.tags['mlflow.note.content']).toBe('model/aggregator=abmil,transmil');
  expect(roots[0]?.artifacts).toEqual(['sweep-table.csv']);
  const children = exp.runs.filter((r) => r.tags['mlflow.parentRunId'] === ids.sweep);
  expect(children.map((r) => r.runId).sort()).toEqual([...ids.cells].sort());
  for (const [c, cellId] of ids.cells.entries()) {
    const cell = byId.get(cellId);
    expect(cell?.tags['milkit.level']).toBe('cell');
    expect(cell?.tags['mlflow.runName']).toBe(`cell-${c}`);
    expect(cell?.params['model.aggregator.name']).toBe(CELLS[c]?.aggregator);
    expect(cell?.params['train.lr']).toBe(String(CELLS[c]?.lr));
    expect(cell?.metrics['test/auc_mean']?.[0]?.value).toBeCloseTo(0.8 + c / 10 + 0.01, 12);
    expect(cell?.metrics['test/auc_std']?.[0]?.value).toBeCloseTo(0.01, 12);
    const grandchildren = exp.runs.filter((r) => r.tags['mlflow.parentRunId'] === cellId);
    expect(grandchildren.map((r) => r.runId).sort()).toEqual([...(ids.folds[c] ?? [])].sort());
    for (const fold of grandchildren) {
      expect(fold.tags['milkit.level']).toBe('fold');
      expect(fold.params).toEqual({ fold: fold.tags['milkit.fold'] });
      expect(fold.tags['milkit.run_key']).toBe(`cfg-${c}:${fold.tags['milkit.fold']}`);
      expect(fold.metrics['val/auc']?.map((p) => p.step)).toEqual([0, 1, 2, 3]);
      expect(fold.status).toBe('FINISHED');
    }
  }
}

/** The same tree on the server: nesting by server ids, levels and keys carried over. */
function checkServerTree(fake: FakeMlflowServer): void {
  const runs = [...fake.runs.values()];
  expect(runs).toHaveLength(9);
  const byId = new Map(runs.map((r) => [r.runId, r]));
  const level = (r: FakeRun | undefined): string | undefined => r?.tags.get('milkit.level');
  const roots = runs.filter((r) => !r.tags.has('mlflow.parentRunId'));
  expect(roots.map(level)).toEqual(['sweep']);
  const cells = runs.filter((r) => level(byId.get(r.tags.get('mlflow.parentRunId') ?? '')) === 'sweep');
  expect(cells.map(level)).toEqual(['cell', 'cell']);
  for (const cell of cells) {
    const folds = runs.filter((r) => r.tags.get('mlflow.parentRunId') === cell.runId);
    expect(folds.map(level)).toEqual(['fold', 'fold', 'fold']);
    expect(folds.map((f) => f.tags.get('milkit.run_key')).sort()).toEqual([0, 1, 2].map((f) => `${cell.tags.get('milkit.run_key')}:${f}`));
  }
}

describe('sweep run tree (2 cells × 3 folds)', () => {
  it('local store only: 1 parent, 2 children, 6 grandchildren with the right tags', async () => {
    cwd = tempWorkspace();
    const { tracker } = await makeTracker(cwd, fastSection(undefined));
    const ids = await runSweep(tracker, async () => tracker);
    checkLocalTree(path.join(cwd, 'mlruns'), ids);
  });

  it('mirrored live by separate worker trackers: the server nests by its own run ids', async () => {
    cwd = tempWorkspace();
    server = await new FakeMlflowServer().start();
    const { tracker } = await makeTracker(cwd, fastSection(server.uri));
    const ids = await runSweep(tracker, async () => (await makeTracker(cwd, fastSection(server?.uri))).tracker);
    const root = path.join(cwd, 'mlruns');
    checkLocalTree(root, ids);
    checkServerTree(server);
    expect(serverPoints(server)).toEqual(localPoints(root));
    for (const run of parseMlruns(root).flatMap((e) => e.runs)) expect(run.tags['milkit.sync.state']).toBe('synced');
  });

  it('offline, then sync: the same tree appears on the server, parents first', async () => {
    cwd = tempWorkspace();
    server = await new FakeMlflowServer().start();
    const port = server.port;
    await server.stop();
    const section = fastSection(`http://127.0.0.1:${port}`, { retries: 0 });
    const { tracker } = await makeTracker(cwd, section);
    const ids = await runSweep(tracker, async () => (await makeTracker(cwd, section)).tracker);
    const root = path.join(cwd, 'mlruns');
    checkLocalTree(root, ids);
    await server.start(port);
    const report = await syncStore({ root, env: {}, logger: new MemoryLogger() });
    expect(report.runs.map((r) => r.status)).toEqual(Array(9).fill('synced'));
    expect(report.runs[0]?.localRunId).toBe(ids.sweep);
    checkServerTree(server);
    expect(serverPoints(server)).toEqual(localPoints(root));
  });
});
