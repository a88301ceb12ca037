// Shared pieces of the tracking tests: a registry over the real plugin manifest, a tracking section with
// fast timeouts (fault tests run in seconds), and metric sets of the local store and of the fake server to count.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { builtinManifest } from '../../plugins/index.js';
import { MemoryLogger } from '../../src/core/logger.js';
import { createTracker } from '../../src/core/tracking/index.js';
import { TrackingSection } from '../../src/core/tracking/schema.js';
import { Registry, type MetricPoint, type Tracker } from '../../src/registry/index.js';
import type { FakeMlflowServer } from './fake-mlflow-server.js';
import { parseMlruns } from './mlruns-parser.js';

export function tempWorkspace(prefix = 'milkit-track-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** tracking: section for a server with timeouts and backoffs in tens of milliseconds. */
export function fastSection(uri: string | undefined, server: Partial<TrackingSection['server']> = {}): TrackingSection {
  return TrackingSection.parse({
    ...(uri !== undefined ? { uri } : {}),
    server: { timeoutMs: 300, retries: 1, backoffMs: 10, backoffMaxMs: 40, reconnectAfterMs: 60_000, flushTimeoutMs: 20_000, ...server },
  });
}

export async function makeTracker(cwd: string, section: TrackingSection, env: Record<string, string | undefined> = {}, logger = new MemoryLogger()): Promise<{ tracker: Tracker; logger: MemoryLogger }> {
  const tracker = await createTracker(section, { registry: new Registry(builtinManifest()), logger, cwd, env });
  return { tracker, logger };
}

/** `epochs` epochs of two curves (train/loss, val/auc), one logMetrics call per epoch, as the engine logs them. */
export async function logEpochs(tracker: Tracker, runId: string, from: number, to: number): Promise<void> {
  for (let epoch = from; epoch < to; epoch += 1) {
    const points: MetricPoint[] = [
      { key: 'train/loss', value: 1 / (epoch + 1), step: epoch, timestamp: 1_700_000_000_000 + epoch },
      { key: 'val/auc', value: epoch === 3 ? NaN : 0.5 + epoch / 1000, step: epoch, timestamp: 1_700_000_000_000 + epoch },
    ];
    await tracker.logMetrics(runId, points);
  }
}

const pointId = (run: string, m: { key: string; step: number; timestamp: number; value: number }): string =>
  `${run}|${m.key}|${m.step}|${m.timestamp}|${Number.isNaN(m.value) ? 'nan' : m.value}`;

/** Every metric point in the local store, as `localRunId|key|step|timestamp|value`. */
export function localPoints(root: string): string[] {
  return parseMlruns(root).flatMap((e) => e.runs.flatMap((r) => Object.entries(r.metrics).flatMap(([key, points]) => points.map((p) => pointId(r.runId, { key, ...p }))))).sort();
}

/** Every metric point on the fake server, keyed by the local run id the run carries. */
export function serverPoints(server: FakeMlflowServer): string[] {
  return [...server.runs.values()].flatMap((r) => r.metrics.map((m) => pointId(r.tags.get('milkit.local_run_id') ?? `remote:${r.runId}`, m))).sort();
}

/** Tags of every local run by id. */
export function localRuns(root: string): Map<string, { tags: Record<string, string>; status: string; experiment: string }> {
  return new Map(parseMlruns(root).flatMap((e) => e.runs.map((r) => [r.runId, { tags: r.tags, status: r.status, experiment: e.name }] as const)));
}
