// Tracker.reopenRun on the file store: a resumed fold logs into its earlier run, which becomes RUNNING again
// (end time cleared) until the resumed run ends it. On an MLflow server (the mirror over the REST tracker), a run an
// earlier process created there is set RUNNING again with runs/update and the resumed writes go into it, so the
// server too ends with one FINISHED run.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../../src/core/logger.js';
import { MlflowFileStore } from '../../../src/core/tracking/file-store.js';
import { MirroredTracker } from '../../../src/core/tracking/mirror.js';
import { parseMlruns } from '../../helpers/mlruns-parser.js';
import { FakeMlflowServer } from '../../helpers/fake-mlflow-server.js';
import { fastSection, localPoints, localRuns, logEpochs, makeTracker, serverPoints } from '../../helpers/tracking-kit.js';
import { syncStore } from '../../../src/core/tracking/sync.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('mlflow-file store: reopenRun', () => {
  it('sets an ended run RUNNING again, then FINISHED when it ends', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'milkit-reopen-'));
    dirs.push(dir);
    const root = path.join(dir, 'mlruns');
    let clock = 1_700_000_000_000;
    const store = new MlflowFileStore({ root, logger: new MemoryLogger(), now: () => clock });
    const runId = await store.startRun({ experimentName: 'x', runName: 'fold-0', tags: { 'milkit.level': 'fold' } });
    clock += 1000;
    await store.endRun(runId, 'FAILED');
    await store.flush();
    const status = (): { status: string; end: unknown } => {
      const run = parseMlruns(root).flatMap((e) => e.runs).find((r) => r.runId === runId);
      return { status: run?.status ?? 'missing', end: run?.meta.end_time };
    };
    expect(status()).toEqual({ status: 'FAILED', end: clock });
    await store.reopenRun(runId);
    await store.flush();
    expect(status()).toEqual({ status: 'RUNNING', end: null });
    clock += 1000;
    await store.endRun(runId, 'FINISHED');
    await store.flush();
    expect(status()).toEqual({ status: 'FINISHED', end: clock });
  });
});

describe('server mirror: reopenRun', () => {
  it('reopens the local record; a run started by an earlier process is marked unsynced so the next sync sends it', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'milkit-reopen-mirror-'));
    dirs.push(dir);
    const root = path.join(dir, 'mlruns');
    const logger = new MemoryLogger();
    // The earlier process: its run ended KILLED and was synced.
    const earlier = new MlflowFileStore({ root, logger });
    const runId = await earlier.startRun({ experimentName: 'x', runName: 'fold-1', tags: { 'milkit.level': 'fold', 'milkit.sync.state': 'synced' } });
    await earlier.endRun(runId, 'KILLED');
    await earlier.flush();
    // The resuming process: a mirror over the same local store, with no server (local only).
    const store = new MlflowFileStore({ root, logger });
    const mirror = new MirroredTracker({ local: store, localRoot: root, localArtifactDir: (id) => store.localArtifactDir(id), logger });
    await mirror.reopenRun(runId);
    await mirror.flush();
    const run = (): ReturnType<typeof parseMlruns>[number]['runs'][number] | undefined => parseMlruns(root).flatMap((e) => e.runs).find((r) => r.runId === runId);
    expect(run()?.status).toBe('RUNNING');
    expect(run()?.meta.end_time).toBeNull();
    expect(run()?.tags['milkit.sync.state']).toBe('unsynced');
    await mirror.endRun(runId, 'FINISHED');
    await mirror.flush();
    expect(run()?.status).toBe('FINISHED');
  });
});

describe('server mirror: reopenRun of a run an earlier process created on the server', () => {
  const servers: FakeMlflowServer[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop();
  });

  it('sets the KILLED server run RUNNING, logs into it, and ends it FINISHED: one run, every point, synced', async () => {
    const server = await new FakeMlflowServer().start();
    servers.push(server);
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'milkit-reopen-rest-'));
    dirs.push(cwd);
    const root = path.join(cwd, 'mlruns');
    // The interrupted process: two epochs, then KILLED, everything sent.
    const earlier = (await makeTracker(cwd, fastSection(server.uri))).tracker;
    const runId = await earlier.startRun({ experimentName: 'resume', runName: 'fold-1', tags: { 'milkit.run_key': 'resume:fold-1', 'milkit.level': 'fold' } });
    await logEpochs(earlier, runId, 0, 2);
    await earlier.endRun(runId, 'KILLED');
    await earlier.flush();
    const [remote] = [...server.runs.values()];
    expect(remote?.status).toBe('KILLED');
    expect(localRuns(root).get(runId)?.tags['milkit.sync.state']).toBe('synced');

    // The resuming process: a new mirror over the same store.
    const resumed = (await makeTracker(cwd, fastSection(server.uri))).tracker;
    const updatesBefore = server.log.filter((line) => line.endsWith('runs/update')).length;
    await resumed.reopenRun?.(runId);
    await resumed.flush();
    expect(server.log.filter((line) => line.endsWith('runs/update')).length).toBe(updatesBefore + 1);
    expect(remote?.status).toBe('RUNNING');
    expect(localRuns(root).get(runId)?.status).toBe('RUNNING');
    expect(localRuns(root).get(runId)?.tags['milkit.sync.state']).toBe('unsynced');
    await logEpochs(resumed, runId, 2, 5);
    await resumed.endRun(runId, 'FINISHED');
    await resumed.flush();

    expect(server.runs.size).toBe(1);
    expect(remote?.status).toBe('FINISHED');
    expect(server.log.filter((line) => line.endsWith('runs/create'))).toHaveLength(1);
    expect(serverPoints(server)).toEqual(localPoints(root));
    expect(serverPoints(server)).toHaveLength(10);
    expect(localRuns(root).get(runId)?.tags['milkit.sync.state']).toBe('synced');
  });

  it('a run whose earlier writes did not all arrive is reopened and finished there too, and stays unsynced until a sync sends the rest', async () => {
    const server = await new FakeMlflowServer().start();
    servers.push(server);
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'milkit-reopen-rest-gap-'));
    dirs.push(cwd);
    const root = path.join(cwd, 'mlruns');
    const earlier = (await makeTracker(cwd, fastSection(server.uri))).tracker;
    const runId = await earlier.startRun({ experimentName: 'resume', runName: 'fold-1', tags: { 'milkit.run_key': 'resume:fold-1', 'milkit.level': 'fold' } });
    await earlier.flush();
    // The server dies mid-run (as if the process was killed before its queue drained): later writes stay local.
    await server.stop();
    await logEpochs(earlier, runId, 0, 2);
    await earlier.flush();
    await server.start();
    expect(localRuns(root).get(runId)?.tags['milkit.sync.state']).toBe('unsynced');
    const [remote] = [...server.runs.values()];
    expect(remote?.status).toBe('RUNNING');

    const resumed = (await makeTracker(cwd, fastSection(server.uri))).tracker;
    await resumed.reopenRun?.(runId);
    await logEpochs(resumed, runId, 2, 5);
    await resumed.endRun(runId, 'FINISHED');
    await resumed.flush();
    expect(server.runs.size).toBe(1);
    expect(remote?.status).toBe('FINISHED');
    expect(serverPoints(server)).toHaveLength(6);
    expect(localRuns(root).get(runId)?.tags['milkit.sync.state']).toBe('unsynced');

    const report = await syncStore({ root, env: {}, logger: new MemoryLogger(), client: { timeoutMs: 2_000, retries: 1, backoffBaseMs: 10, backoffMaxMs: 40 } });
    expect(report.failed).toBe(0);
    expect(server.runs.size).toBe(1);
    expect(serverPoints(server)).toEqual(localPoints(root));
    expect(localRuns(root).get(runId)?.tags['milkit.sync.state']).toBe('synced');
  });
});
