// tracker/mlflow-rest through the registry: option validation, and a run written to a server and found
// again by its key on a second start (no duplicate run).
import { describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { Registry } from '../../../src/registry/index.js';
import { FakeMlflowServer } from '../../helpers/fake-mlflow-server.js';

describe('tracker/mlflow-rest', () => {
  it('requires an http(s) URI and fills client defaults', async () => {
    const registry = new Registry(builtinManifest());
    await expect(registry.resolve('tracker', { name: 'mlflow-rest', uri: 'sqlite:///mlflow.db' }, { key: 'tracking' })).rejects.toThrow(/tracking\.uri: expected string, got "sqlite:\/\/\/mlflow\.db"/);
    const resolved = await registry.resolve('tracker', { name: 'mlflow-rest', uri: 'http://127.0.0.1:5000' }, { key: 'tracking' });
    expect(resolved.options).toMatchObject({ uri: 'http://127.0.0.1:5000', timeoutMs: 15000, retries: 4, backoffMs: 500, insecureTls: false });
  });

  it('logs a run with metrics and params, and a second start with the same key reuses the server run', async () => {
    const server = await new FakeMlflowServer().start();
    try {
      const registry = new Registry(builtinManifest());
      const resolved = await registry.resolve('tracker', { name: 'mlflow-rest', uri: server.uri, retries: 0 }, { key: 'tracking' });
      const tracker = registry.create(resolved, { logger: new MemoryLogger(), cwd: process.cwd() });
      const spec = { experimentName: 'rest', runName: 'r', tags: { 'milkit.run_key': 'abc:0', 'milkit.local_run_id': 'l1' } };
      const run = await tracker.startRun(spec);
      await tracker.logParams(run, { lr: '0.1' });
      await tracker.logMetrics(run, [{ key: 'val/auc', value: NaN, step: 0, timestamp: 1 }, { key: 'val/auc', value: 0.7, step: 1, timestamp: 2 }]);
      await tracker.endRun(run, 'FINISHED');
      expect(await tracker.startRun(spec)).toBe(run);
      expect(server.runs.size).toBe(1);
      const stored = server.runs.get(run);
      expect(stored?.status).toBe('FINISHED');
      expect(stored?.params.get('lr')).toBe('0.1');
      expect(stored?.metrics.map((m) => m.value)).toEqual([NaN, 0.7]);
    } finally {
      await server.stop();
    }
  });
});
