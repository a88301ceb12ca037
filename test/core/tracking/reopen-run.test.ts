// Tracker.reopenRun on the file store: a resumed fold logs into its earlier run, which becomes RUNNING again
// (end time cleared) until the resumed run ends it.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../../src/core/logger.js';
import { MlflowFileStore } from '../../../src/core/tracking/file-store.js';
import { MirroredTracker } from '../../../src/core/tracking/mirror.js';
import { parseMlruns } from '../../helpers/mlruns-parser.js';

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
