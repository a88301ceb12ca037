// Never lose a number: the server down at start, killed mid-run and back, failing with 500/429, and too slow
// for the timeout. In every case training goes on, the local store has everything, and after
// `milkit mlflow sync` the server holds exactly the local metric points: none lost, none twice.
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../../src/core/logger.js';
import { syncStore } from '../../../src/core/tracking/sync.js';
import { MlflowRestClient } from '../../../src/core/tracking/rest-client.js';
import { FakeMlflowServer } from '../../helpers/fake-mlflow-server.js';
import { fastSection, localPoints, localRuns, logEpochs, makeTracker, serverPoints, tempWorkspace } from '../../helpers/tracking-kit.js';

let cwd: string;
let server: FakeMlflowServer;
afterEach(async () => {
  await server.stop();
  rmSync(cwd, { recursive: true, force: true });
});

const syncOptions = (root: string, logger = new MemoryLogger()) => ({ root, env: {}, logger, client: { retries: 1, timeoutMs: 3000, backoffBaseMs: 10, backoffMaxMs: 20 } });

/** Sync, then check: server points == local points, nothing sent twice, a second sync has nothing to do. */
async function syncAndCount(root: string): Promise<{ local: number; sent: number }> {
  const received = server.metricsReceived;
  const report = await syncStore(syncOptions(root));
  expect(report.failed).toBe(0);
  const local = localPoints(root);
  expect(serverPoints(server)).toEqual(local);
  expect(server.metricCount()).toBe(local.length);
  // Sync sent exactly what the server lacked: no duplicate submissions.
  expect(server.metricsReceived - received).toBe(report.metricsSent);
  const replayed = new Set(report.runs.map((r) => r.localRunId));
  expect(report.metricsSent + report.metricsAlreadyThere).toBe(local.filter((p) => replayed.has(p.split('|')[0] ?? '')).length);
  for (const [, run] of localRuns(root)) expect(run.tags['milkit.sync.state']).toBe('synced');
  // Idempotent: runs are marked synced; forcing a re-check sends nothing.
  expect((await syncStore(syncOptions(root))).runs).toHaveLength(0);
  const forced = await syncStore({ ...syncOptions(root), force: true });
  expect(forced.runs).toHaveLength(localRuns(root).size);
  expect(forced.metricsSent).toBe(0);
  expect(forced.metricsAlreadyThere).toBe(local.length);
  expect(forced.runs.every((r) => !r.created)).toBe(true);
  expect(server.metricCount()).toBe(local.length);
  return { local: local.length, sent: report.metricsSent };
}

function artifact(name: string, text: string): string {
  const file = path.join(cwd, name);
  writeFileSync(file, text);
  return file;
}

describe('tracking faults', () => {
  it('server down at start: training logs locally, one warning, run unsynced; sync uploads all 60 points', async () => {
    cwd = tempWorkspace();
    server = await new FakeMlflowServer().start();
    const port = server.port;
    await server.stop();
    const { tracker, logger } = await makeTracker(cwd, fastSection(`http://127.0.0.1:${port}`));
    const run = await tracker.startRun({ experimentName: 'faults', runName: 'down-at-start', tags: { 'milkit.run_key': 'cfg-a:0' } });
    await tracker.logParams(run, { lr: '0.001', 'model.aggregator.name': 'abmil' });
    await logEpochs(tracker, run, 0, 30);
    await tracker.logArtifact(run, artifact('predictions.csv', 'slide,p\ns1,0.9\n'));
    await tracker.endRun(run, 'FINISHED');
    await tracker.flush();

    const root = path.join(cwd, 'mlruns');
    expect(localPoints(root)).toHaveLength(60);
    expect(localRuns(root).get(run)?.tags['milkit.sync.state']).toBe('unsynced');
    expect(localRuns(root).get(run)?.tags['milkit.sync.uri']).toBe(`http://127.0.0.1:${port}`);
    expect(logger.lines.filter((l) => l.level === 'warn' && /Training continues/.test(l.message))).toHaveLength(1);

    await server.start(port);
    const { local, sent } = await syncAndCount(root);
    expect([local, sent]).toEqual([60, 60]);
    const remote = [...server.runs.values()][0];
    expect(remote?.params.get('model.aggregator.name')).toBe('abmil');
    expect(remote?.status).toBe('FINISHED');
    expect([...server.artifacts.keys()].some((k) => k.endsWith('/artifacts/predictions.csv'))).toBe(true);
  });

  it('server killed mid-run then back: the cut run completes by sync without a duplicate run; later runs mirror live', async () => {
    cwd = tempWorkspace();
    server = await new FakeMlflowServer().start();
    const port = server.port;
    const { tracker, logger } = await makeTracker(cwd, fastSection(server.uri, { reconnectAfterMs: 0 }));
    const a = await tracker.startRun({ experimentName: 'faults', runName: 'cut', tags: { 'milkit.run_key': 'cfg-b:0' } });
    await tracker.logParams(a, { lr: '0.001' });
    await logEpochs(tracker, a, 0, 10);
    await tracker.flush();
    expect(server.metricCount()).toBe(20);

    await server.stop();
    await logEpochs(tracker, a, 10, 20);
    await tracker.flush();
    await server.start(port);
    await logEpochs(tracker, a, 20, 30);
    await tracker.endRun(a, 'FINISHED');
    // A run started after the server came back is mirrored live (reconnectAfterMs: 0).
    const b = await tracker.startRun({ experimentName: 'faults', runName: 'after', tags: { 'milkit.run_key': 'cfg-b:1' } });
    await logEpochs(tracker, b, 0, 5);
    await tracker.endRun(b, 'FINISHED');
    await tracker.flush();

    const root = path.join(cwd, 'mlruns');
    expect(localPoints(root)).toHaveLength(70);
    expect(localRuns(root).get(a)?.tags['milkit.sync.state']).toBe('unsynced');
    expect(localRuns(root).get(b)?.tags['milkit.sync.state']).toBe('synced');
    expect(server.metricCount()).toBe(30);
    expect(logger.lines.filter((l) => /Training continues/.test(l.message))).toHaveLength(1);

    const { local, sent } = await syncAndCount(root);
    expect([local, sent]).toEqual([70, 40]);
    expect(server.runsWithTag('milkit.run_key', 'cfg-b:0')).toHaveLength(1);
    expect(server.runs.size).toBe(2);
  });

  it('500s and 429 with Retry-After within the retry budget: the mirror rides them out and the run ends synced', async () => {
    cwd = tempWorkspace();
    server = await new FakeMlflowServer().start();
    const { tracker } = await makeTracker(cwd, fastSection(server.uri, { retries: 3 }));
    const run = await tracker.startRun({ experimentName: 'faults', runName: 'flaky', tags: { 'milkit.run_key': 'cfg-c:0' } });
    await logEpochs(tracker, run, 0, 5);
    await tracker.flush();
    server.failNext({ status: 500 }, { status: 429, retryAfter: '0.02' }, { status: 503 });
    await logEpochs(tracker, run, 5, 10);
    await tracker.flush();
    server.failNext({ status: 429, retryAfter: '0' }, { status: 502, body: 'bad gateway' });
    await logEpochs(tracker, run, 10, 15);
    await tracker.endRun(run, 'FINISHED');
    await tracker.flush();
    const root = path.join(cwd, 'mlruns');
    expect(localRuns(root).get(run)?.tags['milkit.sync.state']).toBe('synced');
    expect(server.metricCount()).toBe(30);
    const { local, sent } = await syncAndCount(root);
    expect([local, sent]).toEqual([30, 0]);
  });

  it('500s and 429s beyond the retry budget: offline, unsynced, and sync fills the gap', async () => {
    cwd = tempWorkspace();
    server = await new FakeMlflowServer().start();
    const { tracker, logger } = await makeTracker(cwd, fastSection(server.uri, { retries: 2 }));
    const run = await tracker.startRun({ experimentName: 'faults', runName: 'overloaded', tags: { 'milkit.run_key': 'cfg-d:0' } });
    await logEpochs(tracker, run, 0, 5);
    await tracker.flush();
    server.failNext({ status: 429, retryAfter: '0.01' }, { status: 500 }, { status: 429, retryAfter: '0' });
    await logEpochs(tracker, run, 5, 20);
    await tracker.endRun(run, 'FINISHED');
    await tracker.flush();
    const root = path.join(cwd, 'mlruns');
    expect(localRuns(root).get(run)?.tags['milkit.sync.state']).toBe('unsynced');
    expect(logger.text()).toMatch(/REQUEST_LIMIT_EXCEEDED/);
    expect(server.metricCount()).toBe(10);
    const { local, sent } = await syncAndCount(root);
    expect([local, sent]).toEqual([40, 30]);
  });

  it('answers slower than the timeout (applied server-side, answer lost): offline, then sync adds only what is missing', async () => {
    cwd = tempWorkspace();
    server = await new FakeMlflowServer().start();
    const { tracker } = await makeTracker(cwd, fastSection(server.uri, { timeoutMs: 250, retries: 1 }));
    const run = await tracker.startRun({ experimentName: 'faults', runName: 'slow', tags: { 'milkit.run_key': 'cfg-e:0' } });
    await logEpochs(tracker, run, 0, 5);
    await tracker.flush();
    server.setDelay(700);
    await logEpochs(tracker, run, 5, 10);
    await tracker.flush();
    server.setDelay(0);
    await logEpochs(tracker, run, 10, 15);
    await tracker.endRun(run, 'FINISHED');
    await tracker.flush();
    // Let the slow answers of the abandoned requests finish.
    await new Promise((resolve) => setTimeout(resolve, 800));
    const root = path.join(cwd, 'mlruns');
    expect(localRuns(root).get(run)?.tags['milkit.sync.state']).toBe('unsynced');
    // The timed-out batch reached the server even though its answer did not reach us.
    expect(server.metricCount()).toBeGreaterThanOrEqual(12);
    const before = server.metricCount();
    const { local, sent } = await syncAndCount(root);
    expect(local).toBe(30);
    expect(sent).toBe(30 - before);
    expect(server.runsWithTag('milkit.run_key', 'cfg-e:0')).toHaveLength(1);
  });

  it('a runs/create whose answer is lost is found again by its key: one server run, no blind second create', async () => {
    cwd = tempWorkspace();
    server = await new FakeMlflowServer().start();
    server.setDelay(700, 'runs/create');
    const { tracker } = await makeTracker(cwd, fastSection(server.uri, { timeoutMs: 250, retries: 1 }));
    const run = await tracker.startRun({ experimentName: 'faults', runName: 'slow-start', tags: { 'milkit.run_key': 'cfg-f:0' } });
    await logEpochs(tracker, run, 0, 5);
    await tracker.endRun(run, 'FINISHED');
    await tracker.flush();
    await new Promise((resolve) => setTimeout(resolve, 800));
    server.setDelay(0);
    expect(server.log.filter((l) => l.endsWith('runs/create'))).toHaveLength(1);
    expect(server.runsWithTag('milkit.run_key', 'cfg-f:0')).toHaveLength(1);
    const root = path.join(cwd, 'mlruns');
    expect(localRuns(root).get(run)?.tags['milkit.sync.state']).toBe('synced');
    expect(serverPoints(server)).toEqual(localPoints(root));
    await syncAndCount(root);
    expect(server.runs.size).toBe(1);
  });

  it('a server without the artifact proxy: that run is unsynced with the reason, metrics keep flowing for the next ones', async () => {
    cwd = tempWorkspace();
    server = await new FakeMlflowServer().start();
    await new MlflowRestClient({ uri: server.uri }).createExperiment('no-proxy', { artifactLocation: '/srv/mlflow/artifacts/9' });
    const { tracker, logger } = await makeTracker(cwd, fastSection(server.uri));
    const first = await tracker.startRun({ experimentName: 'no-proxy', runName: 'with-artifact', tags: { 'milkit.run_key': 'np:0' } });
    await logEpochs(tracker, first, 0, 3);
    await tracker.logArtifact(first, artifact('summary.json', '{}'));
    await tracker.endRun(first, 'FINISHED');
    const second = await tracker.startRun({ experimentName: 'no-proxy', runName: 'metrics-only', tags: { 'milkit.run_key': 'np:1' } });
    await logEpochs(tracker, second, 0, 3);
    await tracker.endRun(second, 'FINISHED');
    await tracker.flush();
    const runs = localRuns(path.join(cwd, 'mlruns'));
    expect(runs.get(first)?.tags['milkit.sync.state']).toBe('unsynced');
    expect(runs.get(first)?.tags['milkit.sync.error']).toMatch(/not served through the MLflow artifact proxy/);
    expect(runs.get(second)?.tags['milkit.sync.state']).toBe('synced');
    expect(server.metricCount()).toBe(12);
    expect(logger.text()).not.toMatch(/Training continues/);
    // Sync reports the artifact problem as partial and still counts every metric.
    const report = await syncStore(syncOptions(path.join(cwd, 'mlruns')));
    expect(report.runs.map((r) => r.status)).toEqual(['partial']);
    expect(report.runs[0]?.problems.join()).toMatch(/artifacts not uploaded/);
    expect(serverPoints(server)).toEqual(localPoints(path.join(cwd, 'mlruns')));
  });
});
