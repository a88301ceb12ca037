// Network budgets hold as documented: one operation makes at most `retries + 1` requests (nested retry loops once
// made 25 for one lookup), and `flushTimeoutMs` bounds the end of a run even while a request is in flight or
// retrying — nothing of the server's outlives the budget, and the last line says what stayed unsynced and how to sync.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeMlflowServer } from '../helpers/fake-mlflow-server.js';
import { fastSection, localRuns, logEpochs, makeTracker, tempWorkspace } from '../helpers/tracking-kit.js';

let cwd: string;
let server: FakeMlflowServer;
afterEach(async () => {
  await server.stop();
  rmSync(cwd, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('network budgets', () => {
  it('a lookup that keeps timing out makes retries + 1 requests, not (retries + 1)²', async () => {
    cwd = tempWorkspace();
    server = await new FakeMlflowServer().start();
    server.setDelay(400);
    const retries = 3;
    const { tracker } = await makeTracker(cwd, fastSection(server.uri, { timeoutMs: 100, retries, flushTimeoutMs: 20_000 }));
    await tracker.startRun({ experimentName: 'budget', runName: 'lookup', tags: { 'milkit.run_key': 'budget:0' } });
    await tracker.flush();
    // The experiment lookup failed: retries + 1 attempts, then the mirror marked the server down and sent nothing else.
    expect(server.log.filter((line) => line.includes('experiments/get-by-name'))).toHaveLength(retries + 1);
    expect(server.requests).toBe(retries + 1);
  });

  it('flush gives up at flushTimeoutMs with a request in flight, cancels it and its retries, and says how to sync', async () => {
    cwd = tempWorkspace();
    server = await new FakeMlflowServer().start();
    const { tracker, logger } = await makeTracker(cwd, fastSection(server.uri, { timeoutMs: 10_000, retries: 4, flushTimeoutMs: 2_000 }));
    const run = await tracker.startRun({ experimentName: 'budget', runName: 'slow', tags: { 'milkit.run_key': 'budget:1' } });
    await tracker.flush();
    // From here every answer takes 6 s: far longer than the flush budget, shorter than the request timeout. (The
    // budget is 2 s, not less, so that the first flush's few requests fit in it on a heavily loaded machine.)
    server.setDelay(6_000);
    await logEpochs(tracker, run, 0, 5);
    await tracker.endRun(run, 'FINISHED');
    const started = Date.now();
    await tracker.flush();
    const flushMs = Date.now() - started;
    expect(flushMs).toBeGreaterThanOrEqual(1_950);
    expect(flushMs).toBeLessThan(4_500);
    const requestsAtFlush = server.requests;
    // Cancelled, not left to retry: no request reaches the server after the budget.
    await sleep(6_500);
    expect(server.requests).toBe(requestsAtFlush);
    const last = logger.lines.map((line) => line.message).filter((line) => line.includes('flushTimeoutMs')).at(-1) ?? '';
    expect(last).toMatch(/still pending after 2000 ms \(tracking\.server\.flushTimeoutMs\); they stay unsynced in .*mlruns\. Run `milkit mlflow sync` to upload them\./);
    expect(localRuns(path.join(cwd, 'mlruns')).get(run)?.tags['milkit.sync.state']).toBe('unsynced');
  });
});
