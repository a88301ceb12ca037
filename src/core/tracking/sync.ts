// `milkit mlflow sync`: replays local runs to an MLflow server, idempotently. A run is found again on the
// server by its `milkit.run_key` + `milkit.local_run_id` tags; only what the server lacks is sent (params it
// has, metric points already in its history and artifacts of the same size are skipped). Parents go first.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { TrackingError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { MetricPoint } from '../../registry/contracts/tracker.js';
import { MlflowFileStore } from './file-store.js';
import { FileStoreReader, type StoredExperiment, type StoredRun } from './file-store-reader.js';
import { metricPointKey, MLFLOW_LIMITS, splitOversized } from './limits.js';
import { MlflowRestClient, type MlflowRestOptions, type RemoteRun } from './rest-client.js';
import { isServerUnavailable, MlflowArtifactUriError } from './rest-errors.js';
import { tagFilter } from './rest-tracker.js';
import { isLocalOnlyTag, MILKIT_TAGS, MLFLOW_TAGS, SYNC_TAGS } from './tags.js';
import { stripUrlCredentials } from './system-tags.js';

export interface SyncOptions {
  /** Local store (the `mlruns` folder). */
  readonly root: string;
  /** Server to sync to; default: each run's recorded `milkit.sync.uri`, else MLFLOW_TRACKING_URI. */
  readonly to?: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Only these experiments (names). */
  readonly experiments?: readonly string[];
  /** Re-check runs already marked synced (still idempotent: nothing the server has is sent again). */
  readonly force?: boolean;
  /** List what would be synced; no writes anywhere. */
  readonly dryRun?: boolean;
  readonly skipArtifacts?: boolean;
  /** Client settings other than the URI (credentials from env are added by the caller). */
  readonly client?: Omit<MlflowRestOptions, 'uri'>;
  readonly logger: Logger;
}

export type RunSyncStatus = 'synced' | 'partial' | 'failed' | 'skipped' | 'planned';

export interface RunSyncResult {
  readonly localRunId: string;
  readonly experiment: string;
  readonly runName: string;
  readonly target: string | undefined;
  readonly remoteRunId?: string;
  readonly status: RunSyncStatus;
  readonly created: boolean;
  readonly metricsSent: number;
  readonly metricsAlreadyThere: number;
  readonly paramsSent: number;
  readonly tagsSent: number;
  readonly artifactsUploaded: number;
  readonly problems: readonly string[];
}

export interface SyncReport {
  readonly runs: readonly RunSyncResult[];
  readonly metricsSent: number;
  readonly metricsAlreadyThere: number;
  /** Runs that did not reach the server. */
  readonly failed: number;
  /** Runs that reached it with something missing (artifacts, nesting) or still RUNNING locally. */
  readonly partial: number;
}

interface Candidate {
  readonly experiment: StoredExperiment;
  readonly run: StoredRun;
  readonly target: string | undefined;
}

function depthOf(runId: string, parents: ReadonlyMap<string, string | undefined>): number {
  let depth = 0;
  let current = parents.get(runId);
  const seen = new Set<string>([runId]);
  while (current !== undefined && !seen.has(current) && depth < 64) {
    seen.add(current);
    depth += 1;
    current = parents.get(current);
  }
  return depth;
}

/** Replays unsynced local runs to their server; returns per-run counts (0 duplicates by construction). */
export async function syncStore(options: SyncOptions): Promise<SyncReport> {
  const { logger } = options;
  const reader = new FileStoreReader(options.root, logger);
  const writer = new MlflowFileStore({ root: options.root, logger });
  const experiments = (await reader.listExperiments()).filter((e) => !options.experiments || options.experiments.includes(e.name));
  if (options.experiments) {
    for (const name of options.experiments) {
      if (!experiments.some((e) => e.name === name)) throw new TrackingError('unknown-experiment', `no experiment "${name}" in ${options.root}.`, { hint: `Experiments: ${(await reader.listExperiments()).map((e) => e.name).join(', ') || 'none'}.` });
    }
  }
  const all: Candidate[] = [];
  for (const experiment of experiments) {
    for (const run of await reader.listRuns(experiment.id, { metrics: false })) {
      const recorded = run.tags[SYNC_TAGS.uri];
      const target = options.to ?? recorded ?? options.env.MLFLOW_TRACKING_URI;
      all.push({ experiment, run, target: target && /^https?:\/\//i.test(target) ? target.replace(/\/+$/, '') : target });
    }
  }
  const byId = new Map(all.map((c) => [c.run.info.runId, c]));
  const parents = new Map(all.map((c) => [c.run.info.runId, c.run.tags[MLFLOW_TAGS.parentRunId]]));
  const isSynced = (c: Candidate): boolean => c.target !== undefined && c.run.tags[SYNC_TAGS.state] === 'synced' && c.run.tags[SYNC_TAGS.uri] === stripUrlCredentials(c.target);
  const selected = new Set(all.filter((c) => options.force || !isSynced(c)).map((c) => c.run.info.runId));
  const ordered = [...selected].sort((a, b) => depthOf(a, parents) - depthOf(b, parents));

  const results: RunSyncResult[] = [];
  const clients = new Map<string, MlflowRestClient>();
  /** local run id → server run id, per target. */
  const remoteIds = new Map<string, string>();
  let serverDown: string | undefined;

  for (const runId of ordered) {
    const candidate = byId.get(runId);
    if (!candidate) continue;
    const base = { localRunId: runId, experiment: candidate.experiment.name, runName: candidate.run.info.runName, target: candidate.target ? stripUrlCredentials(candidate.target) : undefined, created: false, metricsSent: 0, metricsAlreadyThere: 0, paramsSent: 0, tagsSent: 0, artifactsUploaded: 0 };
    if (!candidate.target || !/^https?:\/\//i.test(candidate.target)) {
      results.push({ ...base, status: 'skipped', problems: [candidate.target ? `target "${candidate.target}" is not an http(s) server` : 'no server recorded for this run; pass --to <uri> or set MLFLOW_TRACKING_URI'] });
      continue;
    }
    if (options.dryRun) {
      results.push({ ...base, status: 'planned', problems: [] });
      continue;
    }
    if (serverDown) {
      results.push({ ...base, status: 'failed', problems: [`not tried: ${serverDown}`] });
      continue;
    }
    let client = clients.get(candidate.target);
    if (!client) {
      client = new MlflowRestClient({ ...options.client, uri: candidate.target, logger });
      clients.set(candidate.target, client);
    }
    const full = (await reader.readRun(candidate.experiment.id, runId)) ?? candidate.run;
    try {
      const result = await syncRun(client, full, candidate, { ...options, remoteIdOf: (id) => remoteIds.get(`${candidate.target}\u0000${id}`) ?? recordedRemoteId(byId.get(id), candidate.target ?? ''), reader, writer });
      if (result.remoteRunId) remoteIds.set(`${candidate.target}\u0000${runId}`, result.remoteRunId);
      results.push({ ...base, ...result });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      results.push({ ...base, status: 'failed', problems: [message] });
      if (isServerUnavailable(error)) serverDown = `${stripUrlCredentials(candidate.target)} is unavailable (${message})`;
    }
  }
  for (const r of results) {
    if (r.status === 'failed' || r.status === 'partial') logger.warn(`sync: run ${r.localRunId} (${r.experiment}/${r.runName}) ${r.status}: ${r.problems.join('; ')}`);
  }
  return {
    runs: results,
    metricsSent: results.reduce((s, r) => s + r.metricsSent, 0),
    metricsAlreadyThere: results.reduce((s, r) => s + r.metricsAlreadyThere, 0),
    failed: results.filter((r) => r.status === 'failed').length,
    partial: results.filter((r) => r.status === 'partial').length,
  };
}

function recordedRemoteId(candidate: Candidate | undefined, target: string): string | undefined {
  if (!candidate) return undefined;
  return candidate.run.tags[SYNC_TAGS.uri] === stripUrlCredentials(target) ? candidate.run.tags[SYNC_TAGS.remoteRunId] : undefined;
}

interface SyncRunContext extends SyncOptions {
  readonly remoteIdOf: (localRunId: string) => string | undefined;
  readonly reader: FileStoreReader;
  readonly writer: MlflowFileStore;
}

type RunOutcome = Omit<RunSyncResult, 'localRunId' | 'experiment' | 'runName' | 'target'>;

async function syncRun(client: MlflowRestClient, run: StoredRun, candidate: Candidate, ctx: SyncRunContext): Promise<RunOutcome> {
  const problems: string[] = [];
  const localId = run.info.runId;
  const experimentId = await client.withRetries('experiment', () => client.getOrCreateExperiment(candidate.experiment.name));

  // Tags as the server should have them: local-only bookkeeping removed, the parent pointing at its server id.
  const tags: Record<string, string> = Object.fromEntries(Object.entries(run.tags).filter(([key]) => !isLocalOnlyTag(key)));
  tags[MILKIT_TAGS.localRunId] = localId;
  const localParent = run.tags[MLFLOW_TAGS.parentRunId];
  if (localParent) {
    const remoteParent = ctx.remoteIdOf(localParent);
    if (remoteParent) tags[MLFLOW_TAGS.parentRunId] = remoteParent;
    else {
      delete tags[MLFLOW_TAGS.parentRunId];
      problems.push(`parent run ${localParent} is not on the server, so the run is not nested`);
    }
  }
  const identity: Record<string, string> = { [MILKIT_TAGS.localRunId]: localId };
  const runKey = tags[MILKIT_TAGS.runKey];
  if (runKey) identity[MILKIT_TAGS.runKey] = runKey;

  const find = async (): Promise<RemoteRun | undefined> => {
    const runs = await client.searchAllRuns({ experimentIds: [experimentId], filter: tagFilter(identity), runViewType: 'ACTIVE_ONLY' });
    return runs.sort((a, b) => (a.info.startTime ?? 0) - (b.info.startTime ?? 0))[0];
  };
  let created = false;
  const { fitting: tagsFitting } = splitOversized(tags, MLFLOW_LIMITS.tagValueLength);
  const tagEntries = Object.entries(tagsFitting).sort(([a], [b]) => Number(b in identity) - Number(a in identity));
  const remote = await client.withRetries('find or create run', async () => {
    const existing = await find();
    if (existing) return existing;
    const made = await client.createRun({
      experimentId,
      runName: run.info.runName,
      ...(run.info.startTime !== undefined ? { startTime: run.info.startTime } : {}),
      ...(run.info.userId ? { userId: run.info.userId } : {}),
      tags: Object.fromEntries(tagEntries.slice(0, MLFLOW_LIMITS.tagsPerBatch)),
    });
    created = true;
    return made;
  });
  const remoteId = remote.info.runId;

  // Params: only those the server lacks; a different value is a conflict the user must see.
  const params: Record<string, string> = {};
  for (const [key, value] of Object.entries(run.params)) {
    const there = remote.params[key];
    if (there === undefined) params[key] = value;
    else if (there !== value) problems.push(`param "${key}" is "${there}" on the server but "${value}" locally (params cannot change)`);
  }
  const tagsToSend = created ? Object.fromEntries(tagEntries.slice(MLFLOW_LIMITS.tagsPerBatch)) : Object.fromEntries(tagEntries.filter(([key, value]) => remote.tags[key] !== value));

  // Metrics: the server's history per key (skipped for keys it has never seen) minus what it already has.
  const missing: MetricPoint[] = [];
  let already = 0;
  for (const [key, points] of Object.entries(run.metrics)) {
    const remoteHistory = !created && remote.metrics[key] !== undefined ? await client.getMetricHistory(remoteId, key) : [];
    const have = new Map<string, number>();
    for (const p of remoteHistory) have.set(metricPointKey(p), (have.get(metricPointKey(p)) ?? 0) + 1);
    for (const p of points) {
      const id = metricPointKey(p);
      const count = have.get(id) ?? 0;
      if (count > 0) {
        have.set(id, count - 1);
        already += 1;
      } else {
        missing.push(p);
      }
    }
  }
  await client.logBatch(remoteId, { params, tags: tagsToSend, metrics: missing });

  let artifactsUploaded = 0;
  if (!ctx.skipArtifacts) {
    try {
      const local = await ctx.reader.listArtifacts(run);
      if (local.length > 0) {
        const present = new Map((created ? [] : await client.listAllArtifacts(remoteId)).map((a) => [a.path, a.size]));
        for (const file of local) {
          if (present.get(file.path) === file.size) continue;
          await client.uploadArtifact(remote.info.artifactUri, file.path, await readFile(path.join(run.dir, 'artifacts', ...file.path.split('/'))));
          artifactsUploaded += 1;
        }
      }
    } catch (error) {
      if (!(error instanceof MlflowArtifactUriError)) throw error;
      problems.push(`artifacts not uploaded: ${error.message}`);
    }
  }

  const terminal = run.info.status !== 'RUNNING';
  if (terminal && (remote.info.status !== run.info.status || (run.info.endTime !== undefined && remote.info.endTime !== run.info.endTime))) {
    await client.updateRun(remoteId, { status: run.info.status, ...(run.info.endTime !== undefined ? { endTime: run.info.endTime } : {}) });
  }
  if (!terminal) problems.push('the run is still RUNNING locally (in progress or crashed); synced as RUNNING, sync again when it ends');

  const complete = problems.length === 0;
  await ctx.writer.setTags(localId, {
    [SYNC_TAGS.state]: complete ? 'synced' : 'unsynced',
    [SYNC_TAGS.uri]: stripUrlCredentials(candidate.target ?? ''),
    [SYNC_TAGS.remoteRunId]: remoteId,
    [SYNC_TAGS.error]: problems.join('; ').slice(0, 1000),
  });
  return {
    remoteRunId: remoteId,
    status: complete ? 'synced' : 'partial',
    created,
    metricsSent: missing.length,
    metricsAlreadyThere: already,
    paramsSent: Object.keys(params).length,
    tagsSent: created ? tagEntries.length : Object.keys(tagsToSend).length,
    artifactsUploaded,
    problems,
  };
}
