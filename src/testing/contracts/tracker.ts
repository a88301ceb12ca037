// Tracker contract: the run lifecycle against a fresh store the caller provides (a temp folder, a test server),
// read back independently of the tracker: distinct run ids, params/metrics/tags/artifacts stored as given (NaN
// metrics included), parent links, final statuses, flush. The golden case is one scripted run and the run the
// store must then hold (MLflow semantics, identical for every MLflow-backed tracker).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';
import type { MetricPoint, RunStatus, StartRunSpec, Tracker, TrackerContext } from '../../registry/contracts/tracker.js';
import { readGolden, type GoldenFile, type GoldenReport } from './golden.js';
import { goldenPath, missingGolden, type SuiteOptions } from './shared.js';

/** A run as the store holds it, read without the tracker's code. */
export interface StoredRun {
  readonly experimentName: string;
  readonly runName: string;
  readonly status: RunStatus | string;
  readonly params: Readonly<Record<string, string>>;
  readonly tags: Readonly<Record<string, string>>;
  readonly metrics: Readonly<Record<string, ReadonlyArray<{ readonly step: number; readonly value: number; readonly timestamp: number }>>>;
  /** Artifact paths relative to the run's artifact root, sorted. */
  readonly artifacts: readonly string[];
}

/** A fresh store for one test and a way to read it back. */
export interface TrackerHarness {
  /** Plugin options pointing the tracker at the store. */
  readonly options: Readonly<Record<string, unknown>>;
  readonly cwd: string;
  readRun(runId: string): Promise<StoredRun | undefined>;
  close(): Promise<void>;
}

export type TrackerOp =
  | { readonly op: 'startRun'; readonly spec: StartRunSpec }
  | { readonly op: 'logParams'; readonly params: Readonly<Record<string, string>> }
  | { readonly op: 'logMetrics'; readonly metrics: readonly MetricPoint[] }
  | { readonly op: 'setTags'; readonly tags: Readonly<Record<string, string>> }
  | { readonly op: 'logArtifact'; readonly file: string; readonly content: string; readonly artifactPath: string }
  | { readonly op: 'endRun'; readonly status: Exclude<RunStatus, 'RUNNING'> };

export interface TrackerGoldenCase {
  /** Applied to the run the first op starts. */
  readonly ops: readonly TrackerOp[];
}

export interface TrackerGoldenExpected {
  /** The stored run; `tags` lists the tags that must be present (stores add system tags of their own). */
  readonly run: StoredRun;
}

export type TrackerGolden = GoldenFile<TrackerGoldenCase, TrackerGoldenExpected>;

export function createTracker(definition: AnyPluginDefinition, harness: TrackerHarness): Tracker {
  const ctx: TrackerContext = { logger: silentLogger, cwd: harness.cwd };
  return (definition.create as (options: unknown, ctx: TrackerContext) => Tracker)(definition.options.parse(harness.options), ctx);
}

/** Runs the ops on a fresh run; returns its id. */
export async function playTrackerOps(tracker: Tracker, ops: readonly TrackerOp[]): Promise<string> {
  let runId = '';
  const scratch = mkdtempSync(join(tmpdir(), 'milkit-tracker-contract-'));
  try {
    for (const step of ops) {
      if (step.op === 'startRun') runId = await tracker.startRun(step.spec);
      else if (step.op === 'logParams') await tracker.logParams(runId, step.params);
      else if (step.op === 'logMetrics') await tracker.logMetrics(runId, step.metrics);
      else if (step.op === 'setTags') await tracker.setTags(runId, step.tags);
      else if (step.op === 'logArtifact') {
        const file = join(scratch, step.file);
        writeFileSync(file, step.content);
        await tracker.logArtifact(runId, file, step.artifactPath);
      } else await tracker.endRun(runId, step.status);
    }
    await tracker.flush();
    return runId;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Differences between a stored run and the expected one (tags: expected ⊆ stored). */
export function compareStoredRun(actual: StoredRun | undefined, expected: StoredRun): string[] {
  if (!actual) return ['run: not found in the store'];
  const out: string[] = [];
  const same = (what: string, a: unknown, e: unknown): void => {
    if (JSON.stringify(a) !== JSON.stringify(e)) out.push(`${what}: ${JSON.stringify(a)}, expected ${JSON.stringify(e)}`);
  };
  same('experimentName', actual.experimentName, expected.experimentName);
  same('runName', actual.runName, expected.runName);
  same('status', actual.status, expected.status);
  same('params', sortKeys(actual.params), sortKeys(expected.params));
  for (const [key, value] of Object.entries(expected.tags)) same(`tag ${key}`, actual.tags[key], value);
  // JSON turns NaN into null on both sides, which is what "NaN stored as NaN" compares as here.
  same('metrics', sortKeys(actual.metrics), sortKeys(expected.metrics));
  same('artifacts', [...actual.artifacts].sort(), [...expected.artifacts].sort());
  return out;
}

function sortKeys<T>(record: Readonly<Record<string, T>>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}

export async function checkTrackerGolden(definition: AnyPluginDefinition, golden: TrackerGolden, harness: TrackerHarness): Promise<GoldenReport> {
  const runId = await playTrackerOps(createTracker(definition, harness), golden.case.ops);
  return { plugin: `tracker/${definition.name}`, mismatches: compareStoredRun(await harness.readRun(runId), golden.expected.run) };
}

export interface TrackerSuiteOptions extends SuiteOptions {
  /** A fresh store for the plugin (temp folder, test server); the suite closes it. */
  readonly harnessFor: (name: string) => Promise<TrackerHarness>;
}

export function trackerContract(definitions: readonly AnyPluginDefinition[], suite: TrackerSuiteOptions): void {
  describe.each(definitions.map((d) => [d.name, d] as const))('tracker/%s contract', (name, definition) => {
    const withHarness = async (body: (harness: TrackerHarness) => Promise<void>): Promise<void> => {
      const harness = await suite.harnessFor(name);
      try {
        await body(harness);
      } finally {
        await harness.close();
      }
    };

    it('parses its defaults, or names every option it requires', () => {
      const parsed = definition.options.safeParse({});
      if (parsed.success) expect(definition.options.parse(JSON.parse(JSON.stringify(parsed.data)))).toEqual(parsed.data);
      else for (const issue of parsed.error.issues) expect(issue.path.length, `only missing required options fail: ${issue.message}`).toBe(1);
    });

    it('gives every run its own id and stores each final status', async () => {
      await withHarness(async (harness) => {
        const tracker = createTracker(definition, harness);
        const statuses = ['FINISHED', 'FAILED', 'KILLED'] as const;
        const ids: string[] = [];
        for (const status of statuses) {
          const id = await tracker.startRun({ experimentName: 'contract', runName: `run-${status}` });
          expect(id.length, 'a non-empty run id').toBeGreaterThan(0);
          ids.push(id);
          await tracker.endRun(id, status);
        }
        await tracker.flush();
        expect(new Set(ids).size, 'distinct run ids').toBe(ids.length);
        for (const [i, id] of ids.entries()) {
          const stored = await harness.readRun(id);
          expect(stored?.status).toBe(statuses[i]);
          expect(stored?.runName).toBe(`run-${statuses[i]}`);
          expect(stored?.experimentName).toBe('contract');
        }
      });
    });

    it('links a child run to its parent and keeps the tags given at start', async () => {
      await withHarness(async (harness) => {
        const tracker = createTracker(definition, harness);
        const parent = await tracker.startRun({ experimentName: 'contract', runName: 'parent' });
        const child = await tracker.startRun({ experimentName: 'contract', runName: 'child', parentRunId: parent, tags: { fold: '2' } });
        await tracker.endRun(child, 'FINISHED');
        await tracker.endRun(parent, 'FINISHED');
        await tracker.flush();
        const stored = await harness.readRun(child);
        expect(stored?.tags['mlflow.parentRunId'], 'MLflow parent tag').toBe(parent);
        expect(stored?.tags['fold']).toBe('2');
      });
    });

    it('stores a metric history in order, NaN included', async () => {
      await withHarness(async (harness) => {
        const tracker = createTracker(definition, harness);
        const run = await tracker.startRun({ experimentName: 'contract', runName: 'metrics' });
        await tracker.logMetrics(run, [{ key: 'loss', value: Number.NaN, step: 0, timestamp: 10 }, { key: 'loss', value: 0.5, step: 1, timestamp: 20 }]);
        await tracker.logMetrics(run, [{ key: 'loss', value: 0.25, step: 2, timestamp: 30 }]);
        await tracker.endRun(run, 'FINISHED');
        await tracker.flush();
        const history = (await harness.readRun(run))?.metrics['loss'] ?? [];
        expect(history.map((p) => p.step)).toEqual([0, 1, 2]);
        expect(Number.isNaN(history[0]?.value)).toBe(true);
        expect(history.slice(1).map((p) => p.value)).toEqual([0.5, 0.25]);
      });
    });

    const golden = goldenPath(suite, name);
    it.skipIf(!golden && !suite.requireGolden)('matches its golden case', async () => {
      if (!golden) throw new Error(missingGolden(suite, 'tracker', name));
      await withHarness(async (harness) => {
        expect((await checkTrackerGolden(definition, readGolden<TrackerGoldenCase, TrackerGoldenExpected>(golden, 'tracker'), harness)).mismatches, golden).toEqual([]);
      });
    });
  });
}
