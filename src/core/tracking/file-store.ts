// The embedded MLflow store: writes MLflow's file-store layout (docs/methods/mlflow.md#file-store-layout) under a root such as
// ./mlruns, so `mlflow ui` reads it. Files are replaced atomically (temp + rename) and metrics are appended,
// so a crash leaves either the old or the new state of a run, never a half-written one.
import { randomBytes, randomUUID } from 'node:crypto';
import { readdir, readFile, stat, truncate } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import lockfile from 'proper-lockfile';
import YAML from 'yaml';
import { TrackingError } from '../errors.js';
import { appendToFile, makeFolder, writeFileDurably } from '../io/disk.js';
import { nodeFileSystem, type FileSystem } from '../io/file-system.js';
import type { Logger } from '../logger.js';
import type { MetricPoint, RunStatus, StartRunSpec, Tracker } from '../../registry/contracts/tracker.js';
import { assertValidKey, metricValueToFileText, MLFLOW_LIMITS, RUN_STATUS_CODES, splitOversized, type EntityKind } from './limits.js';
import { MILKIT_TAGS, MLFLOW_TAGS } from './tags.js';

export const DEFAULT_EXPERIMENT_ID = '0';
export const TRASH_FOLDER = '.trash';
/** Folder names MLflow reserves inside a store root or an experiment (never experiment or run ids). */
export const RESERVED_FOLDERS = new Set([TRASH_FOLDER, 'models', 'tags', 'datasets', 'traces']);

export interface MlflowFileStoreOptions {
  /** Absolute path of the store (the `mlruns` folder). */
  readonly root: string;
  readonly logger: Logger;
  /** Clock in ms (tests pin it). */
  readonly now?: () => number;
  /** The file-system seam every write goes through (default: the real one). */
  readonly fs?: FileSystem;
}

/** YAML as MLflow writes it (PyYAML safe_dump, sorted keys, block style). */
export function toMetaYaml(meta: Record<string, unknown>): string {
  return YAML.stringify(meta, { sortMapEntries: true, singleQuote: true, lineWidth: 0 });
}

/** `<folder>/<key>` for a param/metric/tag key (`/` in a key nests folders). */
export function entityPath(folder: string, key: string): string {
  return path.join(folder, ...key.split('/'));
}

/** 18-digit random integer id, as MLflow's file store makes (never "0", which is Default). */
function newExperimentId(): string {
  const value = BigInt(`0x${randomBytes(8).toString('hex')}`) % 10n ** 18n;
  return (value < 10n ** 17n ? value + 10n ** 17n : value).toString();
}

function osUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return '';
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

async function readMeta(file: string): Promise<Record<string, unknown> | undefined> {
  try {
    const parsed: unknown = YAML.parse(await readFile(file, 'utf8'));
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

interface RunLocation {
  readonly experimentId: string;
  readonly dir: string;
}

/** Tracker writing MLflow's file-store layout. Also serves as the local half of every milkit tracker. */
export class MlflowFileStore implements Tracker {
  readonly root: string;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly fs: FileSystem;
  private readonly runs = new Map<string, RunLocation>();
  private readonly experimentIds = new Map<string, string>();
  private readonly checkedMetricFiles = new Set<string>();
  /** Per-run chain: meta.yaml read-modify-writes of one run never interleave. */
  private readonly runLocks = new Map<string, Promise<unknown>>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private initialised: Promise<void> | undefined;

  constructor(options: MlflowFileStoreOptions) {
    if (!path.isAbsolute(options.root)) throw new TrackingError('invalid-store-root', `file store root must be an absolute path, got "${options.root}".`);
    this.root = options.root;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.fs = options.fs ?? nodeFileSystem;
  }

  /** Creates the root, `.trash` and the Default experiment as MLflow would (once). */
  init(): Promise<void> {
    this.initialised ??= (async () => {
      await this.folder(path.join(this.root, TRASH_FOLDER));
      const defaultDir = path.join(this.root, DEFAULT_EXPERIMENT_ID);
      if (!(await exists(path.join(defaultDir, 'meta.yaml'))) && !(await exists(path.join(this.root, TRASH_FOLDER, DEFAULT_EXPERIMENT_ID)))) {
        await this.writeExperiment(DEFAULT_EXPERIMENT_ID, 'Default');
      }
    })();
    return this.initialised;
  }

  private async writeExperiment(id: string, name: string): Promise<void> {
    const dir = path.join(this.root, id);
    const time = this.now();
    await this.write(path.join(dir, 'meta.yaml'), toMetaYaml({
      artifact_location: pathToFileURL(dir).href,
      creation_time: time,
      experiment_id: id,
      last_update_time: time,
      lifecycle_stage: 'active',
      name,
    }));
  }

  /** Id of the active experiment called `name`, created when absent (under a lock shared with other processes). */
  async experimentId(name: string): Promise<string> {
    const cached = this.experimentIds.get(name);
    if (cached) return cached;
    if (name.length === 0 || name.length > MLFLOW_LIMITS.experimentNameLength) {
      throw new TrackingError('invalid-experiment-name', `experiment name must have 1 to ${MLFLOW_LIMITS.experimentNameLength} characters, got ${name.length}.`);
    }
    await this.init();
    // Two workers starting folds at once must not both create the experiment.
    const release = await lockfile.lock(this.root, {
      realpath: false,
      lockfilePath: path.join(this.root, TRASH_FOLDER, 'milkit-experiments.lock'),
      retries: { retries: 100, minTimeout: 10, maxTimeout: 200 },
      stale: 10_000,
    });
    try {
      const found = await this.findExperiment(name);
      if (found.active) {
        this.experimentIds.set(name, found.active);
        return found.active;
      }
      if (found.deleted) {
        throw new TrackingError('experiment-deleted', `experiment "${name}" exists in ${path.join(this.root, TRASH_FOLDER, found.deleted)} (deleted).`, {
          hint: 'Restore it (`mlflow experiments restore`), delete it for good, or use another tracking.experimentName.',
        });
      }
      let id = newExperimentId();
      while (await exists(path.join(this.root, id))) id = newExperimentId();
      await this.writeExperiment(id, name);
      this.experimentIds.set(name, id);
      return id;
    } finally {
      await release();
    }
  }

  private async findExperiment(name: string): Promise<{ active?: string; deleted?: string }> {
    const result: { active?: string; deleted?: string } = {};
    for (const [base, slot] of [[this.root, 'active'], [path.join(this.root, TRASH_FOLDER), 'deleted']] as const) {
      let entries: string[] = [];
      try {
        entries = await readdir(base);
      } catch {
        continue;
      }
      for (const entry of entries) {
        if (RESERVED_FOLDERS.has(entry)) continue;
        const meta = await readMeta(path.join(base, entry, 'meta.yaml'));
        if (meta?.name === name && String(meta.experiment_id) === entry && result[slot] === undefined) result[slot] = entry;
      }
    }
    return result;
  }

  async startRun(spec: StartRunSpec): Promise<string> {
    return this.track(async () => {
      const experimentId = await this.experimentId(spec.experimentName);
      const runId = randomUUID().replace(/-/g, '');
      const dir = path.join(this.root, experimentId, runId);
      await Promise.all(['metrics', 'params', 'tags', 'artifacts'].map((sub) => this.folder(path.join(dir, sub))));
      const location = { experimentId, dir };
      const tags: Record<string, string> = {
        ...spec.tags,
        [MLFLOW_TAGS.runName]: spec.runName,
        ...(spec.parentRunId ? { [MLFLOW_TAGS.parentRunId]: spec.parentRunId } : {}),
      };
      await this.writeTags(runId, location, tags);
      // meta.yaml is the commit point: MLflow (and our reader) skip a run folder without it.
      await this.write(path.join(dir, 'meta.yaml'), toMetaYaml({
        artifact_uri: pathToFileURL(path.join(dir, 'artifacts')).href,
        deleted_time: null,
        end_time: null,
        entry_point_name: '',
        experiment_id: experimentId,
        lifecycle_stage: 'active',
        run_id: runId,
        run_name: spec.runName,
        run_uuid: runId,
        source_name: '',
        source_type: 4,
        source_version: '',
        start_time: this.now(),
        status: RUN_STATUS_CODES.RUNNING,
        tags: [],
        user_id: spec.tags?.[MLFLOW_TAGS.user] ?? osUser(),
      }));
      this.runs.set(runId, location);
      return runId;
    });
  }

  async logParams(runId: string, params: Readonly<Record<string, string>>): Promise<void> {
    await this.track(async () => {
      const location = await this.locate(runId);
      for (const key of Object.keys(params)) assertValidKey('param', key);
      const { fitting, oversized } = splitOversized(params, MLFLOW_LIMITS.paramValueLength);
      for (const [key, value] of Object.entries(fitting)) {
        const file = entityPath(path.join(location.dir, 'params'), key);
        const previous = await readFile(file, 'utf8').catch(() => undefined);
        if (previous === value) continue;
        if (previous !== undefined) {
          throw new TrackingError('param-conflict', `param "${key}" of run ${runId} is already "${previous.slice(0, 200)}"; MLflow params cannot change (got "${value.slice(0, 200)}").`, {
            hint: 'Log the changing value as a metric or a tag, or start a new run.',
          });
        }
        await this.write(file, value);
      }
      await this.divertOversized(runId, location, 'param', oversized);
    });
  }

  async setTags(runId: string, tags: Readonly<Record<string, string>>): Promise<void> {
    await this.track(async () => {
      const location = await this.locate(runId);
      await this.writeTags(runId, location, tags);
      const runName = tags[MLFLOW_TAGS.runName];
      // MLflow keeps run_name and the mlflow.runName tag equal.
      if (runName !== undefined) await this.updateMeta(runId, location, { run_name: runName });
    });
  }

  private async writeTags(runId: string, location: RunLocation, tags: Readonly<Record<string, string>>): Promise<void> {
    for (const key of Object.keys(tags)) assertValidKey('tag', key);
    const { fitting, oversized } = splitOversized(tags, MLFLOW_LIMITS.tagValueLength);
    for (const [key, value] of Object.entries(fitting)) {
      const file = entityPath(path.join(location.dir, 'tags'), key);
      await this.write(file, value);
    }
    await this.divertOversized(runId, location, 'tag', oversized);
  }

  /** Values over MLflow's limits go whole to `artifacts/oversized/<kind>s/<key>.txt`, listed in a tag; never cut. */
  private async divertOversized(runId: string, location: RunLocation, kind: Exclude<EntityKind, 'metric'>, values: Record<string, string>): Promise<void> {
    const keys = Object.keys(values);
    if (keys.length === 0) return;
    const folder = path.join(location.dir, 'artifacts', 'oversized', `${kind}s`);
    for (const [key, value] of Object.entries(values)) {
      const file = `${entityPath(folder, key)}.txt`;
      await this.write(file, value);
    }
    const listKey = kind === 'param' ? MILKIT_TAGS.oversizedParams : MILKIT_TAGS.oversizedTags;
    const listFile = path.join(location.dir, 'tags', listKey);
    const listed = (await readFile(listFile, 'utf8').catch(() => '')).split(',').filter(Boolean);
    await this.write(listFile, [...new Set([...listed, ...keys])].sort().join(','));
    this.logger.warn(`run ${runId}: ${kind} ${keys.map((k) => `"${k}"`).join(', ')} exceed MLflow's ${kind === 'param' ? MLFLOW_LIMITS.paramValueLength : MLFLOW_LIMITS.tagValueLength}-character limit; full values are in artifacts/oversized/${kind}s/.`);
  }

  async logMetrics(runId: string, metrics: readonly MetricPoint[]): Promise<void> {
    if (metrics.length === 0) return;
    await this.track(async () => {
      const location = await this.locate(runId);
      const byKey = new Map<string, string[]>();
      for (const m of metrics) {
        assertValidKey('metric', m.key);
        if (typeof m.value !== 'number') throw new TrackingError('invalid-metric', `metric "${m.key}" of run ${runId}: value ${JSON.stringify(m.value)} is not a number.`);
        if (!Number.isSafeInteger(m.step) || !Number.isSafeInteger(m.timestamp) || m.timestamp < 0) {
          throw new TrackingError('invalid-metric', `metric "${m.key}" of run ${runId}: step ${m.step} and timestamp ${m.timestamp} must be integers (timestamp ≥ 0, ms).`);
        }
        const lines = byKey.get(m.key) ?? [];
        lines.push(`${m.timestamp} ${metricValueToFileText(m.value)} ${m.step}\n`);
        byKey.set(m.key, lines);
      }
      for (const [key, lines] of byKey) {
        const file = entityPath(path.join(location.dir, 'metrics'), key);
        if (!this.checkedMetricFiles.has(file)) {
          await this.folder(path.dirname(file));
          if (await repairTornTail(file)) this.logger.warn(`run ${runId}: metric file ${file} ended in a partial line (an earlier crash); the partial line was removed.`);
          this.checkedMetricFiles.add(file);
        }
        // One append per key: each line is complete when it lands (the file is append-only).
        await appendToFile(file, lines.join(''), { fs: this.fs, action: `append metric "${key}" of run ${runId}` }).catch(async (error: unknown) => {
          // A full disk can land part of a line: cut it now, so the file holds whole points only.
          await repairTornTail(file).catch(() => undefined);
          throw error;
        });
      }
    });
  }

  async logArtifact(runId: string, localPath: string, artifactPath = ''): Promise<void> {
    await this.track(async () => {
      const location = await this.locate(runId);
      const target = safeArtifactDir(path.join(location.dir, 'artifacts'), artifactPath);
      const info = await stat(localPath).catch((cause: unknown) => {
        throw new TrackingError('artifact-missing', `artifact "${localPath}" for run ${runId} does not exist.`, { cause });
      });
      if (info.isDirectory()) await copyTreeAtomic(localPath, target, this.fs);
      else await copyFileAtomic(localPath, path.join(target, path.basename(localPath)), this.fs);
    });
  }

  async endRun(runId: string, status: Exclude<RunStatus, 'RUNNING'>): Promise<void> {
    await this.track(async () => {
      const location = await this.locate(runId);
      await this.updateMeta(runId, location, { status: RUN_STATUS_CODES[status], end_time: this.now() });
    });
  }

  async reopenRun(runId: string): Promise<void> {
    await this.track(async () => {
      const location = await this.locate(runId);
      await this.updateMeta(runId, location, { status: RUN_STATUS_CODES.RUNNING, end_time: null });
    });
  }

  async flush(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Absolute folder holding a run's artifacts (the REST mirror uploads from here). */
  async localArtifactDir(runId: string): Promise<string> {
    return path.join((await this.locate(runId)).dir, 'artifacts');
  }

  private async updateMeta(runId: string, location: RunLocation, patch: Record<string, unknown>): Promise<void> {
    const previous = this.runLocks.get(runId) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(async () => {
      const file = path.join(location.dir, 'meta.yaml');
      const meta = await readMeta(file);
      if (!meta) throw new TrackingError('run-meta-unreadable', `cannot read ${file}.`, { hint: 'The run folder is damaged; check the disk, then start a new run.' });
      await this.write(file, toMetaYaml({ ...meta, ...patch }));
    });
    this.runLocks.set(runId, next);
    await next;
  }

  /** Finds a run created by this process or any other (scan of the experiments). */
  private async locate(runId: string): Promise<RunLocation> {
    const known = this.runs.get(runId);
    if (known) return known;
    if (!/^[A-Za-z0-9][\w-]{0,255}$/.test(runId)) throw new TrackingError('invalid-run-id', `"${runId}" is not a run id.`);
    for (const entry of await readdir(this.root).catch(() => [] as string[])) {
      if (RESERVED_FOLDERS.has(entry)) continue;
      const dir = path.join(this.root, entry, runId);
      if (await exists(path.join(dir, 'meta.yaml'))) {
        const location = { experimentId: entry, dir };
        this.runs.set(runId, location);
        return location;
      }
    }
    throw new TrackingError('unknown-run', `run ${runId} is not in the store ${this.root}.`, { hint: 'Use the id returned by startRun (or listed by `milkit runs list`).' });
  }

  /** Replaces a store file atomically through the seam; a full or read-only disk is a StorageError naming it. */
  private write(file: string, data: string | Uint8Array): Promise<void> {
    return writeFileDurably(file, data, { fs: this.fs, action: `write the MLflow store file ${path.basename(file)}` });
  }

  private folder(dir: string): Promise<void> {
    return makeFolder(dir, { fs: this.fs, action: 'create an MLflow store folder' });
  }

  private track<T>(work: () => Promise<T>): Promise<T> {
    const promise = work();
    this.inFlight.add(promise);
    void promise.then(() => this.inFlight.delete(promise), () => this.inFlight.delete(promise));
    return promise;
  }
}

/** Cuts a last line that a crash left without its newline, so appends never glue onto it; true if it cut. */
async function repairTornTail(file: string): Promise<boolean> {
  const content = await readFile(file).catch(() => undefined);
  if (!content || content.length === 0 || content[content.length - 1] === 0x0a) return false;
  await truncate(file, content.lastIndexOf(0x0a) + 1);
  return true;
}

function safeArtifactDir(artifactsRoot: string, artifactPath: string): string {
  const normalised = path.posix.normalize(artifactPath.replace(/\\/g, '/'));
  if (path.posix.isAbsolute(normalised) || normalised === '..' || normalised.startsWith('../')) {
    throw new TrackingError('invalid-artifact-path', `artifact path "${artifactPath}" must be relative and stay inside the run's artifacts.`);
  }
  return normalised === '.' || normalised === '' ? artifactsRoot : path.join(artifactsRoot, ...normalised.split('/'));
}

/** Copies an artifact file as one atomic write through the seam (artifacts are run outputs: small files). */
async function copyFileAtomic(source: string, target: string, fs: FileSystem): Promise<void> {
  await writeFileDurably(target, await readFile(source), { fs, action: `copy the artifact ${path.basename(source)} into the MLflow store` });
}

async function copyTreeAtomic(sourceDir: string, targetDir: string, fs: FileSystem): Promise<void> {
  await makeFolder(targetDir, { fs, action: 'create an MLflow artifact folder' });
  for (const entry of await readdir(sourceDir, { withFileTypes: true })) {
    const from = path.join(sourceDir, entry.name);
    const to = path.join(targetDir, entry.name);
    if (entry.isDirectory()) await copyTreeAtomic(from, to, fs);
    else if (entry.isFile()) await copyFileAtomic(from, to, fs);
  }
}
