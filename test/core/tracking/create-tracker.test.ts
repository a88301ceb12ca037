// createTracker: where runs go for each tracking URI, through the registry (never by path), and the
// tracking: section schema.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { createTracker, localStoreRoot, logCappedArtifact, resolveTrackingTarget } from '../../../src/core/tracking/index.js';
import { writeFileSync } from 'node:fs';
import { TrackingSection } from '../../../src/core/tracking/schema.js';
import { z } from 'zod';
import { definePlugin, Registry, type AnyPluginDefinition } from '../../../src/registry/index.js';
import { parseMlruns } from '../../helpers/mlruns-parser.js';
import { tempWorkspace } from '../../helpers/tracking-kit.js';

let cwd: string | undefined;
afterEach(() => {
  if (cwd) rmSync(cwd, { recursive: true, force: true });
  cwd = undefined;
});

describe('createTracker', () => {
  it('maps tracking URIs to a local store, a server with ./mlruns, or a clear error', () => {
    expect(resolveTrackingTarget(undefined, '/w')).toEqual({ kind: 'local', root: '/w/mlruns' });
    expect(resolveTrackingTarget('runs/store', '/w')).toEqual({ kind: 'local', root: '/w/runs/store' });
    expect(resolveTrackingTarget('file:///data/mlruns', '/w')).toEqual({ kind: 'local', root: '/data/mlruns' });
    expect(resolveTrackingTarget('file:store', '/w')).toEqual({ kind: 'local', root: '/w/store' });
    expect(resolveTrackingTarget('https://mlflow.lab.org/', '/w')).toEqual({ kind: 'server', uri: 'https://mlflow.lab.org', root: '/w/mlruns' });
    let error: unknown;
    try {
      resolveTrackingTarget('sqlite:///mlflow.db', '/w');
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'unsupported-tracking-uri', where: { key: 'tracking.uri' } });
    expect((error as Error).message).toMatch(/tracking URI "sqlite:\/\/\/mlflow.db" is not supported/);
    expect((error as { hint: string }).hint).toMatch(/mlflow server --backend-store-uri/);
    expect(() => resolveTrackingTarget('postgresql://u:pw@db/x', '/w')).toThrow(/"postgresql:\/\/db\/x"/);
    expect(localStoreRoot('/w', { MLFLOW_TRACKING_URI: 'http://x' })).toBe('/w/mlruns');
    expect(localStoreRoot('/w', { MLFLOW_TRACKING_URI: '/abs/store' })).toBe('/abs/store');
    expect(localStoreRoot('/w', {}, 'other')).toBe('/w/other');
  });

  it('uses tracking.uri over MLFLOW_TRACKING_URI and writes through the registry\'s mlflow-file plugin', async () => {
    const workspace = tempWorkspace();
    cwd = workspace;
    const registry = new Registry(builtinManifest());
    const tracker = await createTracker(TrackingSection.parse({ uri: 'store-a' }), { registry, logger: new MemoryLogger(), cwd: workspace, env: { MLFLOW_TRACKING_URI: 'store-b' } });
    const run = await tracker.startRun({ experimentName: 'e', runName: 'r' });
    await tracker.endRun(run, 'FINISHED');
    expect(parseMlruns(path.join(workspace, 'store-a')).flatMap((e) => e.runs).map((r) => r.runId)).toEqual([run]);
    const viaEnv = await createTracker(TrackingSection.parse({}), { registry, logger: new MemoryLogger(), cwd: workspace, env: { MLFLOW_TRACKING_URI: 'store-b' } });
    const other = await viaEnv.startRun({ experimentName: 'e', runName: 'r2' });
    expect(parseMlruns(path.join(workspace, 'store-b')).flatMap((e) => e.runs).map((r) => r.runId)).toEqual([other]);
    // Local-only runs carry no sync bookkeeping.
    expect(parseMlruns(path.join(workspace, 'store-b'))[1]?.runs[0]?.tags['milkit.sync.state']).toBeUndefined();
    // Without the plugin in the registry there is no tracker: core asks the registry, it never imports plugins.
    await expect(createTracker(TrackingSection.parse({}), { registry: new Registry({}), logger: new MemoryLogger(), cwd: workspace, env: {} })).rejects.toThrow(/unknown tracker "mlflow-file"/);
  });

  it('builds the trackers named by tracking.local and tracking.remote (core names no tracker plugin)', async () => {
    const workspace = tempWorkspace();
    cwd = workspace;
    const section = TrackingSection.parse({});
    expect(section.local).toEqual({ name: 'mlflow-file' });
    expect(section.remote).toEqual({ name: 'mlflow-rest' });
    const registry = new Registry(builtinManifest());
    const started: string[] = [];
    const recording = (label: string): AnyPluginDefinition => definePlugin({
      kind: 'tracker',
      name: `acme:${label}`,
      summary: label,
      options: z.looseObject({ bucket: z.string().default('default') }),
      capabilities: {},
      create: (options) => ({
        startRun: async () => {
          started.push(`${label}:${String(options.bucket)}:${String(options.root ?? options.uri)}`);
          return `${label}-run`;
        },
        logParams: async () => {}, logMetrics: async () => {}, setTags: async () => {}, logArtifact: async () => {}, endRun: async () => {}, flush: async () => {},
      }),
    }) as unknown as AnyPluginDefinition;
    registry.register(recording('local'), 'test');
    registry.register(recording('remote'), 'test');
    const tracker = await createTracker(
      TrackingSection.parse({ uri: 'http://127.0.0.1:9', local: { name: 'acme:local', bucket: 'b1' }, remote: { name: 'acme:remote' }, server: { retries: 0, timeoutMs: 50 } }),
      { registry, logger: new MemoryLogger(), cwd: workspace, env: {} },
    );
    await tracker.startRun({ experimentName: 'e', runName: 'r' });
    await tracker.flush();
    expect(started).toEqual([`local:b1:${path.join(workspace, 'mlruns')}`, 'remote:default:http://127.0.0.1:9']);
    // A misspelt tracker names its key.
    await expect(createTracker(TrackingSection.parse({ local: { name: 'mlflow-fil' } }), { registry, logger: new MemoryLogger(), cwd: workspace, env: {} }))
      .rejects.toThrow(/tracking\.local\.name: unknown tracker "mlflow-fil"\. Did you mean "mlflow-file"\?/);
  });

  it('logs a checkpoint only under the size cap, and says when it does not', async () => {
    const workspace = tempWorkspace();
    cwd = workspace;
    const logger = new MemoryLogger();
    const tracker = await createTracker(TrackingSection.parse({}), { registry: new Registry(builtinManifest()), logger, cwd: workspace, env: {} });
    const run = await tracker.startRun({ experimentName: 'e', runName: 'r' });
    const small = path.join(workspace, 'best.safetensors');
    writeFileSync(small, Buffer.alloc(1000));
    expect(await logCappedArtifact(tracker, run, small, { maxMb: 0.001, logger })).toBe(true);
    writeFileSync(small, Buffer.alloc(2000));
    expect(await logCappedArtifact(tracker, run, small, { maxMb: 0.001, logger, artifactPath: 'again' })).toBe(false);
    expect(logger.text()).toMatch(/over tracking.checkpointMaxMb = 0.001; not logged/);
    expect(parseMlruns(path.join(workspace, 'mlruns')).flatMap((e) => e.runs)[0]?.artifacts).toEqual(['best.safetensors']);
  });

  it('with tracking.enabled: false writes nothing', async () => {
    const workspace = tempWorkspace();
    cwd = workspace;
    const tracker = await createTracker(TrackingSection.parse({ enabled: false }), { registry: new Registry(builtinManifest()), logger: new MemoryLogger(), cwd: workspace, env: {} });
    const run = await tracker.startRun({ experimentName: 'e', runName: 'r' });
    await tracker.logMetrics(run, [{ key: 'm', value: 1, step: 0, timestamp: 1 }]);
    expect(run).toMatch(/^[0-9a-f]{32}$/);
    expect(() => parseMlruns(path.join(workspace, 'mlruns'))).toThrow(/ENOENT/);
  });

  it('parses the tracking: section with server defaults and rejects unknown keys', () => {
    const section = TrackingSection.parse({});
    expect(section).toMatchObject({ enabled: true, logCheckpoint: false, checkpointMaxMb: 200, server: { timeoutMs: 15000, retries: 4, backoffMs: 500, backoffMaxMs: 15000, reconnectAfterMs: 60000, flushTimeoutMs: 120000 } });
    expect(TrackingSection.safeParse({ server: { timeout: 5 } }).success).toBe(false);
  });
});
