// Tracker over the MLflow REST client: get-or-create experiments by name, runs found again by their
// `milkit.run_key` (+ `milkit.local_run_id`) before any create, so a retried or replayed start never duplicates.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { TrackingError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { MetricPoint, RunStatus, StartRunSpec, Tracker } from '../../registry/contracts/tracker.js';
import { assertValidKey, MLFLOW_LIMITS, splitOversized } from './limits.js';
import { MlflowRestClient, type MlflowRestOptions, type RemoteRun } from './rest-client.js';
import { MILKIT_TAGS, MLFLOW_TAGS } from './tags.js';

export interface MlflowRestTrackerOptions extends MlflowRestOptions {
  readonly logger: Logger;
  readonly now?: () => number;
}

// Values go into a single-quoted MLflow filter; keep them to characters that need no escaping.
const FILTER_SAFE = /^[\w.:\-/ ]+$/;

/** `tags.\`k1\` = 'v1' and tags.\`k2\` = 'v2'` for an MLflow search filter. */
export function tagFilter(tags: Readonly<Record<string, string>>): string {
  return Object.entries(tags)
    .map(([key, value]) => {
      if (!FILTER_SAFE.test(value) || key.includes('`')) {
        throw new TrackingError('invalid-run-key', `tag ${key}="${value}" cannot be searched for on an MLflow server (quotes or unusual characters).`, {
          hint: 'Run keys are hashes: letters, digits, "_", ".", ":", "-", "/" and spaces.',
        });
      }
      return `tags.\`${key}\` = '${value}'`;
    })
    .join(' and ');
}

/** Tracker writing to an MLflow tracking server through its REST API. */
export class MlflowRestTracker implements Tracker {
  readonly client: MlflowRestClient;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly experiments = new Map<string, Promise<string>>();
  private readonly artifactUris = new Map<string, string>();

  constructor(options: MlflowRestTrackerOptions) {
    this.client = new MlflowRestClient(options);
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
  }

  /** Experiment id for a name (get-or-create, cached; a failed lookup is not cached). */
  experimentId(name: string): Promise<string> {
    let pending = this.experiments.get(name);
    if (!pending) {
      pending = this.client.withRetries(`experiment "${name}"`, () => this.client.getOrCreateExperiment(name));
      this.experiments.set(name, pending);
      pending.catch(() => this.experiments.delete(name));
    }
    return pending;
  }

  /** The active run of an experiment carrying exactly these tags (oldest first when several do). */
  async findRunByTags(experimentId: string, tags: Readonly<Record<string, string>>): Promise<RemoteRun | undefined> {
    const runs = await this.client.searchAllRuns({ experimentIds: [experimentId], filter: tagFilter(tags), runViewType: 'ACTIVE_ONLY' });
    runs.sort((a, b) => (a.info.startTime ?? 0) - (b.info.startTime ?? 0));
    if (runs.length > 1) this.logger.warn(`mlflow: ${runs.length} runs on ${this.client.uri} carry ${tagFilter(tags)}; using the oldest, ${runs[0]?.info.runId}.`);
    return runs[0];
  }

  async startRun(spec: StartRunSpec, options: { startTime?: number } = {}): Promise<string> {
    const experimentId = await this.experimentId(spec.experimentName);
    const tags: Record<string, string> = {
      ...spec.tags,
      [MLFLOW_TAGS.runName]: spec.runName,
      ...(spec.parentRunId ? { [MLFLOW_TAGS.parentRunId]: spec.parentRunId } : {}),
    };
    for (const key of Object.keys(tags)) assertValidKey('tag', key);
    const { fitting, oversized } = splitOversized(tags, MLFLOW_LIMITS.tagValueLength);
    const identity: Record<string, string> = {};
    for (const key of [MILKIT_TAGS.runKey, MILKIT_TAGS.localRunId]) {
      const value = fitting[key];
      if (value !== undefined && value !== '') identity[key] = value;
    }
    // Identity tags first: they must be in the create call even when the rest needs a second call.
    const entries = Object.entries(fitting).sort(([a], [b]) => Number(b in identity) - Number(a in identity));
    const runId = await this.client.withRetries(`start run "${spec.runName}"`, async () => {
      // A create whose answer was lost may have happened: look the run up before creating it again.
      if (Object.keys(identity).length > 0) {
        const existing = await this.findRunByTags(experimentId, identity);
        if (existing) {
          this.artifactUris.set(existing.info.runId, existing.info.artifactUri);
          return existing.info.runId;
        }
      }
      const created = await this.client.createRun({
        experimentId,
        runName: spec.runName,
        startTime: options.startTime ?? this.now(),
        // Identity tags go in with the create, so a lookup can find the run from its first moment.
        tags: Object.fromEntries(entries.slice(0, MLFLOW_LIMITS.tagsPerBatch)),
        ...(fitting[MLFLOW_TAGS.user] !== undefined ? { userId: fitting[MLFLOW_TAGS.user] } : {}),
      });
      this.artifactUris.set(created.info.runId, created.info.artifactUri);
      return created.info.runId;
    });
    const rest = Object.fromEntries(entries.slice(MLFLOW_LIMITS.tagsPerBatch));
    if (Object.keys(rest).length > 0) await this.client.withRetries('set tags', () => this.client.logBatch(runId, { tags: rest }));
    await this.divertOversized(runId, 'tag', oversized);
    return runId;
  }

  async logParams(runId: string, params: Readonly<Record<string, string>>): Promise<void> {
    for (const key of Object.keys(params)) assertValidKey('param', key);
    const { fitting, oversized } = splitOversized(params, MLFLOW_LIMITS.paramValueLength);
    if (Object.keys(fitting).length > 0) await this.client.logBatch(runId, { params: fitting });
    await this.divertOversized(runId, 'param', oversized);
  }

  async logMetrics(runId: string, metrics: readonly MetricPoint[]): Promise<void> {
    for (const m of metrics) assertValidKey('metric', m.key);
    if (metrics.length > 0) await this.client.logBatch(runId, { metrics });
  }

  async setTags(runId: string, tags: Readonly<Record<string, string>>): Promise<void> {
    for (const key of Object.keys(tags)) assertValidKey('tag', key);
    const { fitting, oversized } = splitOversized(tags, MLFLOW_LIMITS.tagValueLength);
    if (Object.keys(fitting).length > 0) await this.client.logBatch(runId, { tags: fitting });
    await this.divertOversized(runId, 'tag', oversized);
  }

  /** Same rule as the file store: over-limit values go whole to `oversized/<kind>s/<key>.txt`, listed in a tag. */
  private async divertOversized(runId: string, kind: 'param' | 'tag', values: Record<string, string>): Promise<void> {
    const keys = Object.keys(values);
    if (keys.length === 0) return;
    const artifactUri = await this.artifactUri(runId);
    for (const [key, value] of Object.entries(values)) {
      await this.client.uploadArtifact(artifactUri, `oversized/${kind}s/${key}.txt`, Buffer.from(value, 'utf8'), 'text/plain');
    }
    const listKey = kind === 'param' ? MILKIT_TAGS.oversizedParams : MILKIT_TAGS.oversizedTags;
    await this.client.logBatch(runId, { tags: { [listKey]: keys.sort().join(',') } });
    this.logger.warn(`run ${runId}: ${kind} ${keys.map((k) => `"${k}"`).join(', ')} exceed MLflow's limit; full values uploaded to artifacts/oversized/${kind}s/.`);
  }

  async artifactUri(runId: string): Promise<string> {
    const known = this.artifactUris.get(runId);
    if (known !== undefined) return known;
    const run = await this.client.getRun(runId);
    if (!run) throw new TrackingError('unknown-run', `run ${runId} does not exist on ${this.client.uri}.`);
    this.artifactUris.set(runId, run.info.artifactUri);
    return run.info.artifactUri;
  }

  /** Uploads a file to `<artifactPath>/<name>`, or a folder's contents into `<artifactPath>`. */
  async logArtifact(runId: string, localPath: string, artifactPath = ''): Promise<void> {
    const artifactUri = await this.artifactUri(runId);
    const prefix = artifactPath.replace(/\\/g, '/').replace(/^\/+|\/+$/g, '');
    const join = (...parts: string[]): string => parts.filter(Boolean).join('/');
    const info = await stat(localPath);
    if (!info.isDirectory()) {
      await this.client.uploadArtifact(artifactUri, join(prefix, path.basename(localPath)), await readFile(localPath));
      return;
    }
    const walk = async (dir: string, rel: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        if (entry.isDirectory()) await walk(path.join(dir, entry.name), join(rel, entry.name));
        else if (entry.isFile()) await this.client.uploadArtifact(artifactUri, join(prefix, rel, entry.name), await readFile(path.join(dir, entry.name)));
      }
    };
    await walk(localPath, '');
  }

  async endRun(runId: string, status: Exclude<RunStatus, 'RUNNING'>, endTime?: number): Promise<void> {
    await this.client.updateRun(runId, { status, endTime: endTime ?? this.now() });
  }

  /** RUNNING again; MLflow's update API cannot clear an end time, the next endRun sets a new one. */
  async reopenRun(runId: string): Promise<void> {
    await this.client.updateRun(runId, { status: 'RUNNING' });
  }

  async flush(): Promise<void> {
    // Every call above completes before it returns; nothing is buffered.
  }

  abort(): void {
    this.client.abort();
  }
}
