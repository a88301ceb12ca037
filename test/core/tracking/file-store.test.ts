import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../../src/core/logger.js';
import { MlflowFileStore } from '../../../src/core/tracking/file-store.js';
import { FileStoreReader } from '../../../src/core/tracking/file-store-reader.js';
import { parseMlruns, yamlKeyOrder } from '../../helpers/mlruns-parser.js';

let dir: string;
let root: string;
let clock: number;
const newStore = (logger = new MemoryLogger()): MlflowFileStore => new MlflowFileStore({ root, logger, now: () => clock });

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'milkit-fs-'));
  root = path.join(dir, 'mlruns');
  clock = 1_700_000_000_000;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const RUN_KEYS = ['artifact_uri', 'deleted_time', 'end_time', 'entry_point_name', 'experiment_id', 'lifecycle_stage', 'run_id', 'run_name', 'run_uuid', 'source_name', 'source_type', 'source_version', 'start_time', 'status', 'tags', 'user_id'];

describe('mlflow-file store', () => {
  it('writes a nested run tree that an independent file-store-layout parser reads back exactly', async () => {
    const store = newStore();
    const parent = await store.startRun({ experimentName: 'table3', runName: 'sweep', tags: { 'milkit.level': 'sweep', 'mlflow.user': 'alice' } });
    clock += 10;
    const child = await store.startRun({ experimentName: 'table3', runName: 'cell-0', parentRunId: parent, tags: { 'milkit.level': 'cell' } });
    clock += 10;
    const fold = await store.startRun({ experimentName: 'table3', runName: 'fold-0', parentRunId: child, tags: { 'milkit.level': 'fold' } });
    await store.logParams(child, { 'model.aggregator.name': 'abmil', 'train.lr': '0.0002' });
    await store.logMetrics(fold, [
      { key: 'val/auc', value: 0.5, step: 0, timestamp: 1000 },
      { key: 'val/auc', value: 0.75, step: 1, timestamp: 1001 },
      { key: 'train/loss', value: NaN, step: 0, timestamp: 1000 },
      { key: 'train/loss', value: Infinity, step: 1, timestamp: 1001 },
      { key: 'train/loss', value: -Infinity, step: 2, timestamp: 1002 },
      { key: 'tiny', value: 1e-7, step: 3, timestamp: 1003 },
      { key: 'int', value: 3, step: 0, timestamp: 1004 },
    ]);
    await store.logMetrics(fold, [{ key: 'val/auc', value: 0.875, step: 2, timestamp: 1002 }]);
    clock += 500;
    await store.endRun(fold, 'FINISHED');
    await store.endRun(child, 'FAILED');

    expect(existsSync(path.join(root, '.trash'))).toBe(true);
    const experiments = parseMlruns(root);
    expect(experiments.map((e) => e.name).sort()).toEqual(['Default', 'table3']);
    const def = experiments.find((e) => e.name === 'Default');
    expect(def?.id).toBe('0');
    const exp = experiments.find((e) => e.name === 'table3');
    if (!exp) throw new Error('experiment missing');
    // Experiment meta: sorted keys, id as a quoted string, file: artifact location of its folder.
    expect(yamlKeyOrder(exp.metaText)).toEqual(['artifact_location', 'creation_time', 'experiment_id', 'last_update_time', 'lifecycle_stage', 'name']);
    expect(exp.metaText).toContain(`experiment_id: '${exp.id}'`);
    expect(exp.meta.artifact_location).toBe(`file://${path.join(root, exp.id)}`);
    expect(exp.id).toMatch(/^[1-9]\d{17}$/);

    expect(exp.runs).toHaveLength(3);
    const byName = Object.fromEntries(exp.runs.map((r) => [r.tags['mlflow.runName'], r]));
    const [sweep, cell, foldRun] = [byName.sweep, byName['cell-0'], byName['fold-0']];
    if (!sweep || !cell || !foldRun) throw new Error('runs missing');
    for (const run of exp.runs) {
      expect(yamlKeyOrder(run.metaText)).toEqual(RUN_KEYS);
      expect(run.meta.run_id).toBe(run.runId);
      expect(run.meta.run_uuid).toBe(run.runId);
      expect(run.runId).toMatch(/^[0-9a-f]{32}$/);
      expect(run.meta.experiment_id).toBe(exp.id);
      expect(run.meta.source_type).toBe(4);
      expect(run.meta.tags).toEqual([]);
      expect(run.meta.deleted_time).toBeNull();
      expect(run.meta.artifact_uri).toBe(`file://${path.join(root, exp.id, run.runId, 'artifacts')}`);
    }
    // Status persisted as MLflow's integer enum; end_time null while running.
    expect(sweep.meta.status).toBe(1);
    expect(sweep.meta.end_time).toBeNull();
    expect(foldRun.meta.status).toBe(3);
    expect(foldRun.status).toBe('FINISHED');
    expect(cell.meta.status).toBe(4);
    expect(foldRun.meta.end_time).toBe(1_700_000_000_520);
    expect(foldRun.meta.start_time).toBe(1_700_000_000_020);
    expect(sweep.meta.user_id).toBe('alice');
    // Nesting through mlflow.parentRunId.
    expect(sweep.tags['mlflow.parentRunId']).toBeUndefined();
    expect(cell.tags['mlflow.parentRunId']).toBe(sweep.runId);
    expect(foldRun.tags['mlflow.parentRunId']).toBe(cell.runId);
    expect(foldRun.tags['milkit.level']).toBe('fold');
    expect(cell.params).toEqual({ 'model.aggregator.name': 'abmil', 'train.lr': '0.0002' });
    // Metric files: one line per point, keys with / nested, NaN/inf as Python writes them.
    expect(foldRun.metrics['val/auc']).toEqual([
      { timestamp: 1000, value: 0.5, step: 0 },
      { timestamp: 1001, value: 0.75, step: 1 },
      { timestamp: 1002, value: 0.875, step: 2 },
    ]);
    const loss: Array<{ value: number }> = foldRun.metrics['train/loss'] ?? [];
    expect(Number.isNaN(loss[0]?.value)).toBe(true);
    expect(loss.slice(1).map((m) => m.value)).toEqual([Infinity, -Infinity]);
    const lossFile = readFileSync(path.join(root, exp.id, foldRun.runId, 'metrics', 'train', 'loss'), 'utf8');
    expect(lossFile).toBe('1000 nan 0\n1001 inf 1\n1002 -inf 2\n');
    expect(readFileSync(path.join(root, exp.id, foldRun.runId, 'metrics', 'tiny'), 'utf8')).toBe('1003 1e-07 3\n');
    expect(readFileSync(path.join(root, exp.id, foldRun.runId, 'metrics', 'int'), 'utf8')).toBe('1004 3.0 0\n');
    // Params and tags: raw value, no trailing newline.
    expect(readFileSync(path.join(root, exp.id, cell.runId, 'params', 'train.lr'), 'utf8')).toBe('0.0002');
    expect(readFileSync(path.join(root, exp.id, cell.runId, 'tags', 'mlflow.runName'), 'utf8')).toBe('cell-0');
  });

  it('copies artifact files and folder contents into the run, and reads them back through the reader', async () => {
    const store = newStore();
    const run = await store.startRun({ experimentName: 'e', runName: 'r' });
    const source = path.join(dir, 'src');
    mkdirSync(path.join(source, 'sub'), { recursive: true });
    writeFileSync(path.join(source, 'a.csv'), 'x,y\n1,2\n');
    writeFileSync(path.join(source, 'sub', 'b.txt'), 'hello');
    writeFileSync(path.join(dir, 'config.resolved.yaml'), 'seed: 1\n');
    await store.logArtifact(run, path.join(dir, 'config.resolved.yaml'));
    await store.logArtifact(run, source, 'splits');
    const parsed = parseMlruns(root).flatMap((e) => e.runs).find((r) => r.runId === run);
    expect(parsed?.artifacts).toEqual(['config.resolved.yaml', 'splits/a.csv', 'splits/sub/b.txt']);
    const reader = new FileStoreReader(root, new MemoryLogger());
    const stored = await reader.findRun(run);
    if (!stored) throw new Error('run not found');
    expect(await reader.listArtifacts(stored)).toEqual([
      { path: 'config.resolved.yaml', size: 8 },
      { path: 'splits/a.csv', size: 8 },
      { path: 'splits/sub/b.txt', size: 5 },
    ]);
    await expect(store.logArtifact(run, source, '../escape')).rejects.toMatchObject({ code: 'invalid-artifact-path' });
  });

  it('keeps params immutable: same value is a no-op, a different value is a param-conflict error', async () => {
    const store = newStore();
    const run = await store.startRun({ experimentName: 'e', runName: 'r' });
    await store.logParams(run, { lr: '0.001' });
    await store.logParams(run, { lr: '0.001' });
    await expect(store.logParams(run, { lr: '0.01' })).rejects.toMatchObject({ code: 'param-conflict' });
    expect(readFileSync(path.join((await new FileStoreReader(root, new MemoryLogger()).findRun(run))?.dir ?? '', 'params', 'lr'), 'utf8')).toBe('0.001');
  });

  it('moves a param over 6000 characters whole into an artifact and lists it in a tag, never cutting it', async () => {
    const logger = new MemoryLogger();
    const store = newStore(logger);
    const run = await store.startRun({ experimentName: 'e', runName: 'r' });
    const long = 'v'.repeat(6001);
    await store.logParams(run, { long_val: long, short: 'ok' });
    const parsed = parseMlruns(root).flatMap((e) => e.runs).find((r) => r.runId === run);
    expect(parsed?.params).toEqual({ short: 'ok' });
    expect(parsed?.tags['milkit.params.oversized']).toBe('long_val');
    expect(parsed?.artifacts).toContain('oversized/params/long_val.txt');
    const stored = readFileSync(path.join(root, parseMlruns(root).find((e) => e.name === 'e')?.id ?? '', run, 'artifacts', 'oversized', 'params', 'long_val.txt'), 'utf8');
    expect(stored).toBe(long);
    expect(logger.text()).toMatch(/"long_val" exceed MLflow's 6000-character limit/);
  });

  it('rejects names MLflow would reject, naming the key and the rule', async () => {
    const store = newStore();
    const run = await store.startRun({ experimentName: 'e', runName: 'r' });
    await expect(store.logMetrics(run, [{ key: 'bad key!', value: 1, step: 0, timestamp: 1 }])).rejects.toThrow(/metric name "bad key!" is not a valid MLflow name: it has characters other than/);
    await expect(store.logParams(run, { ['k'.repeat(251)]: 'v' })).rejects.toThrow(/251 characters long \(limit 250\)/);
    await expect(store.setTags(run, { '../x': 'v' })).rejects.toThrow(/"\." or "\.\." path segment/);
  });

  it('treats meta.yaml as the commit point: a run folder without it is invisible to both readers', async () => {
    const store = newStore();
    const run = await store.startRun({ experimentName: 'e', runName: 'r' });
    const expId = parseMlruns(root).find((e) => e.name === 'e')?.id ?? '';
    // A crash between mkdir and the meta.yaml rename leaves a folder like this one.
    mkdirSync(path.join(root, expId, 'deadbeefdeadbeefdeadbeefdeadbeef', 'tags'), { recursive: true });
    expect(parseMlruns(root).find((e) => e.id === expId)?.runs.map((r) => r.runId)).toEqual([run]);
    const runs = await new FileStoreReader(root, new MemoryLogger()).listRuns(expId);
    expect(runs.map((r) => r.info.runId)).toEqual([run]);
  });

  it('repairs a metric file whose last line a crash cut, before appending to it', async () => {
    const logger = new MemoryLogger();
    const first = newStore();
    const run = await first.startRun({ experimentName: 'e', runName: 'r' });
    await first.logMetrics(run, [{ key: 'loss', value: 0.5, step: 0, timestamp: 10 }]);
    const file = path.join(root, parseMlruns(root).find((e) => e.name === 'e')?.id ?? '', run, 'metrics', 'loss');
    appendFileSync(file, '11 0.2');
    // The reader ignores the cut line with a warning (MLflow would fail on it only if it had 1 field).
    const reader = new FileStoreReader(root, logger);
    expect((await reader.findRun(run))?.metrics.loss).toEqual([{ key: 'loss', value: 0.5, step: 0, timestamp: 10 }]);
    expect(logger.text()).toMatch(/has no newline/);
    // A new process appending to the run cuts the partial line first.
    const second = newStore(logger);
    await second.logMetrics(run, [{ key: 'loss', value: 0.25, step: 1, timestamp: 12 }]);
    expect(readFileSync(file, 'utf8')).toBe('10 0.5 0\n12 0.25 1\n');
  });

  it('follows MLflow reader tolerances: 2-field lines are step 0, missing status is RUNNING, id mismatch is skipped', async () => {
    const store = newStore();
    const run = await store.startRun({ experimentName: 'e', runName: 'r' });
    const expId = parseMlruns(root).find((e) => e.name === 'e')?.id ?? '';
    const runDir = path.join(root, expId, run);
    writeFileSync(path.join(runDir, 'metrics', 'old'), '5 0.25\n');
    const meta = readFileSync(path.join(runDir, 'meta.yaml'), 'utf8').replace(/^status: \d+\n/m, '').replace(/^lifecycle_stage: active\n/m, '');
    writeFileSync(path.join(runDir, 'meta.yaml'), meta);
    const reader = new FileStoreReader(root, new MemoryLogger());
    const stored = await reader.findRun(run);
    expect(stored?.metrics.old).toEqual([{ key: 'old', value: 0.25, step: 0, timestamp: 5 }]);
    expect(stored?.info.status).toBe('RUNNING');
    expect(stored?.info.lifecycleStage).toBe('active');
    writeFileSync(path.join(runDir, 'metrics', 'bad'), '5 0.25 1 9\n');
    await expect(reader.readRun(expId, run)).rejects.toMatchObject({ code: 'malformed-metric-line' });
    writeFileSync(path.join(runDir, 'meta.yaml'), meta.replace(`experiment_id: '${expId}'`, "experiment_id: '42'"));
    expect(await reader.listRuns(expId)).toEqual([]);
  });

  it('gives two writers of one store one experiment per name', async () => {
    const a = newStore();
    const b = newStore();
    const ids = await Promise.all([a.experimentId('shared'), b.experimentId('shared'), a.experimentId('shared'), b.experimentId('shared')]);
    expect(new Set(ids).size).toBe(1);
    expect(parseMlruns(root).filter((e) => e.name === 'shared')).toHaveLength(1);
  });

  it('refuses to reuse the name of a deleted experiment and says how to fix it', async () => {
    const store = newStore();
    const id = await store.experimentId('gone');
    const { renameSync } = await import('node:fs');
    renameSync(path.join(root, id), path.join(root, '.trash', id));
    await expect(newStore().experimentId('gone')).rejects.toMatchObject({ code: 'experiment-deleted' });
  });
});
