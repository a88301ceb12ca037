// tracker/mlflow-file through the registry: resolves from the built-in manifest, validates its options,
// and writes a run the independent file-store parser reads back.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { Registry } from '../../../src/registry/index.js';
import { parseMlruns } from '../../helpers/mlruns-parser.js';
import { tempWorkspace } from '../../helpers/tracking-kit.js';

let cwd: string;
afterEach(() => rmSync(cwd, { recursive: true, force: true }));

describe('tracker/mlflow-file', () => {
  it('is registered, defaults root to ./mlruns under the working directory, and logs a run', async () => {
    cwd = tempWorkspace();
    const registry = new Registry(builtinManifest());
    expect(registry.names('tracker')).toEqual(expect.arrayContaining(['mlflow-file', 'mlflow-rest']));
    const resolved = await registry.resolve('tracker', 'mlflow-file', { key: 'tracking' });
    expect(resolved.options).toEqual({ root: 'mlruns' });
    const tracker = registry.create(resolved, { logger: new MemoryLogger(), cwd });
    const run = await tracker.startRun({ experimentName: 'plugin', runName: 'r' });
    await tracker.logMetrics(run, [{ key: 'm', value: 2, step: 0, timestamp: 5 }]);
    await tracker.endRun(run, 'KILLED');
    await tracker.flush();
    const parsed = parseMlruns(path.join(cwd, 'mlruns')).find((e) => e.name === 'plugin')?.runs[0];
    expect(parsed?.metrics.m).toEqual([{ timestamp: 5, value: 2, step: 0 }]);
    expect(parsed?.meta.status).toBe(5);
  });

  it('rejects unknown options with the slot path', async () => {
    cwd = tempWorkspace();
    await expect(new Registry(builtinManifest()).resolve('tracker', { name: 'mlflow-file', rooot: 'x' }, { key: 'tracking' })).rejects.toThrow(/tracking/);
  });
});
