// `milkit runs` building blocks and commands: loading runs, filters, sorting, the paper-style comparison,
// and the CLI (`runs list|compare|show`, `mlflow sync`) end to end through main().
import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { main } from '../../../src/core/cli/main.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { MlflowFileStore } from '../../../src/core/tracking/file-store.js';
import { applyFilters, compareTable, loadLocalRuns, parseFilter, renderTable, sortRows, type RunRow } from '../../../src/core/tracking/runs-query.js';
import { FakeMlflowServer } from '../../helpers/fake-mlflow-server.js';
import { tempWorkspace } from '../../helpers/tracking-kit.js';

let cwd: string;
let root: string;
let ids: Record<string, string>;

/** Three cells as a sweep leaves them: resolved params, cross-fold mean/std, a loss curve. */
async function seed(): Promise<void> {
  let clock = 1_700_000_000_000;
  const store = new MlflowFileStore({ root, logger: new MemoryLogger(), now: () => (clock += 1000) });
  ids = {};
  const sweep = await store.startRun({ experimentName: 'table3', runName: 'sweep', tags: { 'milkit.level': 'sweep' } });
  ids.sweep = sweep;
  const cells = [
    { name: 'abmil', lr: '0.0002', auc: [0.912, 0.012], acc: [0.85, 0.02], loss: 0.31 },
    { name: 'transmil', lr: '0.0002', auc: [0.934, 0.008], acc: [0.83, 0.03], loss: 0.28 },
    { name: 'mean-pool', lr: '0.001', auc: [0.801, 0.021], acc: [0.88, 0.01], loss: 0.45 },
  ];
  for (const cell of cells) {
    const id = await store.startRun({ experimentName: 'table3', runName: cell.name, parentRunId: sweep, tags: { 'milkit.level': 'cell' } });
    ids[cell.name] = id;
    await store.logParams(id, { 'model.aggregator.name': cell.name, 'train.lr': cell.lr, seed: '0' });
    await store.logMetrics(id, [
      { key: 'test/auc_mean', value: cell.auc[0] ?? 0, step: 0, timestamp: 1 },
      { key: 'test/auc_std', value: cell.auc[1] ?? 0, step: 0, timestamp: 1 },
      { key: 'test/acc_mean', value: cell.acc[0] ?? 0, step: 0, timestamp: 1 },
      { key: 'test/acc_std', value: cell.acc[1] ?? 0, step: 0, timestamp: 1 },
      { key: 'train/loss', value: 1, step: 0, timestamp: 1 },
      { key: 'train/loss', value: cell.loss, step: 1, timestamp: 2 },
    ]);
    await store.endRun(id, cell.name === 'mean-pool' ? 'FAILED' : 'FINISHED');
  }
  await store.endRun(sweep, 'FINISHED');
}

beforeEach(async () => {
  cwd = tempWorkspace('milkit-runs-');
  root = path.join(cwd, 'mlruns');
  await seed();
});
afterEach(() => rmSync(cwd, { recursive: true, force: true }));

async function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { manifest: builtinManifest(), cwd, env, io: { out: (t) => void out.push(t), err: (t) => void err.push(t), stdoutIsTTY: false } });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('runs query', () => {
  it('loads runs with latest metric values and filters, sorts by params, metrics and attributes', async () => {
    const rows = await loadLocalRuns(root, { logger: new MemoryLogger() });
    expect(rows).toHaveLength(4);
    const cell = rows.find((r) => r.runName === 'abmil');
    expect(cell?.metrics['train/loss']).toBe(0.31);
    expect(cell?.parentRunId).toBe(ids.sweep);
    const cells = applyFilters(rows, [parseFilter('tags.milkit.level=cell')]);
    expect(cells.map((r) => r.runName).sort()).toEqual(['abmil', 'mean-pool', 'transmil']);
    expect(applyFilters(cells, [parseFilter('params.train.lr=0.0002'), parseFilter('metrics.test/auc_mean>=0.92')]).map((r) => r.runName)).toEqual(['transmil']);
    expect(applyFilters(cells, [parseFilter('status!=FINISHED')]).map((r) => r.runName)).toEqual(['mean-pool']);
    expect(applyFilters(cells, [parseFilter("name~'MIL'")]).map((r) => r.runName).sort()).toEqual(['abmil', 'transmil']);
    // Numbers compare as numbers ("0.001" > "0.0002"), not as text.
    expect(applyFilters(cells, [parseFilter('params.train.lr>0.0005')]).map((r) => r.runName)).toEqual(['mean-pool']);
    expect(sortRows(cells, ['metrics.test/auc_mean:desc']).map((r) => r.runName)).toEqual(['transmil', 'abmil', 'mean-pool']);
    expect(sortRows(cells, ['params.train.lr', 'metrics.train/loss:desc']).map((r) => r.runName)).toEqual(['abmil', 'transmil', 'mean-pool']);
    expect(() => parseFilter('colour=red')).toThrow(/unknown field "colour"/);
    expect(() => parseFilter('params.x')).toThrow(/cannot read the filter/);
  });

  it('compares runs like a results table: differing params, mean ± std, best marked per column', async () => {
    const rows = applyFilters(await loadLocalRuns(root, { logger: new MemoryLogger() }), [parseFilter('tags.milkit.level=cell')]);
    const table = compareTable(sortRows(rows, ['name']), { digits: 3 });
    expect(table.header).toEqual(['run', 'model.aggregator.name', 'train.lr', 'test/acc', 'test/auc']);
    expect(table.rows).toEqual([
      ['abmil', 'abmil', '0.0002', '0.850 ± 0.020', '0.912 ± 0.012'],
      ['mean-pool', 'mean-pool', '0.001', '0.880 ± 0.010 *', '0.801 ± 0.021'],
      ['transmil', 'transmil', '0.0002', '0.830 ± 0.030', '0.934 ± 0.008 *'],
    ]);
    // Lower is better for losses.
    const losses = compareTable(sortRows(rows, ['name']), { metrics: ['train/loss'], params: [] });
    expect(losses.rows.map((r) => r[1])).toEqual(['0.310', '0.450', '0.280 *']);
    expect(renderTable(losses, 'md').split('\n')[0]).toBe('| run       | train/loss |');
    expect(renderTable(losses, 'csv')).toBe('run,train/loss\nabmil,0.310\nmean-pool,0.450\ntransmil,0.280 *');
    expect(JSON.parse(renderTable(losses, 'json'))).toEqual([{ run: 'abmil', 'train/loss': '0.310' }, { run: 'mean-pool', 'train/loss': '0.450' }, { run: 'transmil', 'train/loss': '0.280 *' }]);
    // A column no run has is an error naming it (with the closest one), not an empty column.
    expect(() => compareTable(rows, { metrics: ['test/aux'] })).toThrow(/--metrics "test\/aux" is not logged by any of these runs\. Did you mean "test\/auc"\?/);
    expect(() => compareTable(rows, { params: ['train.lrr'] })).toThrow(/--params "train\.lrr" is not logged by any of these runs\. Did you mean "train\.lr"\?/);
  });
});

describe('milkit runs / milkit mlflow (CLI)', () => {
  it('lists runs of a level with chosen columns, sorted', async () => {
    const { code, out } = await cli(['runs', 'list', '--level', 'cell', '--sort', 'metrics.test/auc_mean:desc', '--columns', 'params.model.aggregator.name,metrics.test/auc_mean', '--format', 'csv']);
    expect(code).toBe(0);
    const lines = out.split('\n');
    expect(lines[0]).toBe('run,name,status,level,started,params.model.aggregator.name,metrics.test/auc_mean');
    expect(lines.slice(1).map((l) => l.split(',').slice(1, 3).concat(l.split(',').slice(5)))).toEqual([
      ['transmil', 'FINISHED', 'transmil', '0.9340'],
      ['abmil', 'FINISHED', 'abmil', '0.9120'],
      ['mean-pool', 'FAILED', 'mean-pool', '0.8010'],
    ]);
  });

  it('compares the children of a sweep given by an id prefix, and shows one run', async () => {
    const compared = await cli(['runs', 'compare', '--parent', (ids.sweep ?? '').slice(0, 10), '--metrics', 'test/auc', '--sort', 'name']);
    expect(compared.code).toBe(0);
    expect(compared.out.split('\n')).toEqual([
      'run        model.aggregator.name  train.lr  test/auc',
      '---------  ---------------------  --------  ---------------',
      'abmil      abmil                  0.0002    0.912 ± 0.012',
      'mean-pool  mean-pool              0.001     0.801 ± 0.021',
      'transmil   transmil               0.0002    0.934 ± 0.008 *',
    ]);
    const shown = await cli(['runs', 'show', ids.abmil ?? '']);
    expect(shown.out).toContain('model.aggregator.name = abmil');
    expect(shown.out).toContain('train/loss = 0.3100  (2)');
    const missing = await cli(['runs', 'show', 'zzzz']);
    expect(missing.code).toBe(5);
    expect(missing.err).toMatch(/no run "zzzz"/);
  });

  it('mlflow sync uploads the store to a server and is a no-op the second time', async () => {
    const server = await new FakeMlflowServer().start();
    try {
      const first = await cli(['mlflow', 'sync', '--to', server.uri, '--retries', '1']);
      expect(first.code).toBe(0);
      expect(first.out).toMatch(/4 run\(s\) synced \(4 created on the server\), 18 metric point\(s\) sent, 0 already there; 0 partial, 0 failed\./);
      expect(server.metricCount()).toBe(18);
      const second = await cli(['mlflow', 'sync', '--to', server.uri]);
      expect(second.out).toMatch(/nothing to sync/);
      const forced = await cli(['mlflow', 'sync', '--to', server.uri, '--force', '--json']);
      const report = JSON.parse(forced.out) as { metricsSent: number; metricsAlreadyThere: number; runs: Array<{ created: boolean }> };
      expect([report.metricsSent, report.metricsAlreadyThere, report.runs.filter((r) => r.created).length]).toEqual([0, 18, 0]);
      // The server lists the same runs.
      const remote = await cli(['runs', 'list', '--uri', server.uri, '-e', 'table3', '--level', 'cell', '--format', 'json', '--columns', 'metrics.test/auc_mean']);
      expect((JSON.parse(remote.out) as RunRow[]).map((r) => (r as unknown as Record<string, string>)['metrics.test/auc_mean']).sort()).toEqual(['0.8010', '0.9120', '0.9340']);
    } finally {
      await server.stop();
    }
  });

  it('mlflow sync with the server down exits with the tracking error code and keeps runs unsynced', async () => {
    const server = await new FakeMlflowServer().start();
    const uri = server.uri;
    await server.stop();
    const { code, err, out } = await cli(['mlflow', 'sync', '--to', uri, '--retries', '0', '--timeout-ms', '500']);
    expect(code).toBe(5);
    expect(err).toMatch(/\[sync-incomplete\]: 4 run\(s\) did not reach the server/);
    expect(out).toMatch(/ECONNREFUSED/);
  });
});
