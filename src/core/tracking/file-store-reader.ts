// Reads an MLflow file store (ours or MLflow's) with MLflow's own tolerances (docs/methods/mlflow.md#file-store-layout): unknown
// meta keys ignored, missing lifecycle_stage → active, missing status → RUNNING, 2-field metric lines → step 0.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { TrackingError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { MetricPoint } from '../../registry/contracts/tracker.js';
import { metricValueFromFileText, runStatusFromCode, type MlflowRunInfo, type MlflowRunStatus } from './limits.js';
import { RESERVED_FOLDERS, TRASH_FOLDER } from './file-store.js';
import { MLFLOW_TAGS } from './tags.js';

export interface StoredExperiment {
  readonly id: string;
  readonly name: string;
  readonly artifactLocation: string;
  readonly lifecycleStage: string;
  readonly tags: Record<string, string>;
}

export type StoredRunInfo = MlflowRunInfo;

export interface StoredRun {
  readonly info: StoredRunInfo;
  readonly params: Record<string, string>;
  readonly tags: Record<string, string>;
  /** Full history per key, in file order. */
  readonly metrics: Record<string, MetricPoint[]>;
  /** Absolute run folder. */
  readonly dir: string;
}

export interface ReadRunOptions {
  /** false: only the latest point per key (default: full history). */
  readonly history?: boolean;
  /** false: skip metric files entirely (fast lookups of tags or folders). */
  readonly metrics?: boolean;
}

export interface StoredArtifact {
  /** Relative to the run's artifacts folder, `/`-separated. */
  readonly path: string;
  readonly size: number;
}

async function listDir(dir: string): Promise<Array<{ name: string; isDir: boolean }>> {
  try {
    return (await readdir(dir, { withFileTypes: true })).map((e) => ({ name: e.name, isDir: e.isDirectory() }));
  } catch {
    return [];
  }
}

/** Every file below `dir` as `relative/key` → content (keys with `/` are nested files). Temp files are skipped. */
async function readKeyFiles(dir: string, prefix = ''): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for (const entry of await listDir(dir)) {
    const key = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDir) out.push(...(await readKeyFiles(path.join(dir, entry.name), key)));
    // Atomic writes go through a temp file ending in `.<digits>` (src/core/io/file-system.ts); a crash can leave one behind.
    else if (!/\.\d{6,}$/.test(entry.name)) out.push([key, await readFile(path.join(dir, entry.name), 'utf8')]);
  }
  return out;
}

/** The point MLflow shows as "latest": max of (step, timestamp, value). */
export function latestPoint(points: readonly MetricPoint[]): MetricPoint | undefined {
  let best: MetricPoint | undefined;
  for (const p of points) {
    if (!best || p.step > best.step || (p.step === best.step && (p.timestamp > best.timestamp || (p.timestamp === best.timestamp && p.value > best.value)))) best = p;
  }
  return best;
}

export class FileStoreReader {
  constructor(readonly root: string, private readonly logger: Logger) {}

  /** Active experiments (and deleted ones from .trash when asked). */
  async listExperiments(options: { includeDeleted?: boolean } = {}): Promise<StoredExperiment[]> {
    const out: StoredExperiment[] = [];
    const bases = [this.root, ...(options.includeDeleted ? [path.join(this.root, TRASH_FOLDER)] : [])];
    for (const base of bases) {
      for (const entry of await listDir(base)) {
        if (!entry.isDir || RESERVED_FOLDERS.has(entry.name)) continue;
        const experiment = await this.readExperiment(path.join(base, entry.name), entry.name);
        if (experiment) out.push(experiment);
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  private async readExperiment(dir: string, id: string): Promise<StoredExperiment | undefined> {
    let meta: Record<string, unknown>;
    try {
      meta = (YAML.parse(await readFile(path.join(dir, 'meta.yaml'), 'utf8')) ?? {}) as Record<string, unknown>;
    } catch {
      this.logger.warn(`${dir}: no readable meta.yaml; not an experiment (skipped).`);
      return undefined;
    }
    if (String(meta.experiment_id) !== id) {
      this.logger.warn(`${dir}: meta.yaml says experiment_id ${String(meta.experiment_id)}, folder is ${id} (skipped, as MLflow does).`);
      return undefined;
    }
    return {
      id,
      name: String(meta.name ?? ''),
      artifactLocation: String(meta.artifact_location ?? ''),
      lifecycleStage: String(meta.lifecycle_stage ?? 'active'),
      tags: Object.fromEntries(await readKeyFiles(path.join(dir, 'tags'))),
    };
  }

  async experimentByName(name: string): Promise<StoredExperiment | undefined> {
    return (await this.listExperiments()).find((e) => e.name === name);
  }

  /** Runs of one experiment; malformed runs are skipped with a warning (as `mlflow ui` does). */
  async listRuns(experimentId: string, options: ReadRunOptions = {}): Promise<StoredRun[]> {
    const runs: StoredRun[] = [];
    for (const entry of await listDir(path.join(this.root, experimentId))) {
      if (!entry.isDir || RESERVED_FOLDERS.has(entry.name)) continue;
      try {
        const run = await this.readRun(experimentId, entry.name, options);
        if (run) runs.push(run);
      } catch (error) {
        this.logger.warn(`${path.join(this.root, experimentId, entry.name)}: ${error instanceof Error ? error.message : String(error)} (run skipped).`);
      }
    }
    return runs.sort((a, b) => (a.info.startTime ?? 0) - (b.info.startTime ?? 0) || a.info.runId.localeCompare(b.info.runId));
  }

  /** One run; undefined when the folder has no meta.yaml (not committed yet). */
  async readRun(experimentId: string, runId: string, options: ReadRunOptions = {}): Promise<StoredRun | undefined> {
    const dir = path.join(this.root, experimentId, runId);
    let metaText: string;
    try {
      metaText = await readFile(path.join(dir, 'meta.yaml'), 'utf8');
    } catch {
      return undefined;
    }
    const meta = (YAML.parse(metaText) ?? {}) as Record<string, unknown>;
    if (String(meta.experiment_id) !== experimentId) {
      throw new TrackingError('run-experiment-mismatch', `meta.yaml says experiment_id ${String(meta.experiment_id)}, but the run is in folder ${experimentId}.`);
    }
    const tags = Object.fromEntries(await readKeyFiles(path.join(dir, 'tags')));
    const metrics: Record<string, MetricPoint[]> = {};
    for (const [key, text] of options.metrics === false ? [] : await readKeyFiles(path.join(dir, 'metrics'))) {
      const points = parseMetricLines(key, text, path.join(dir, 'metrics', key), this.logger);
      metrics[key] = options.history === false ? [latestPoint(points)].filter((p): p is MetricPoint => p !== undefined) : points;
    }
    const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
    return {
      info: {
        runId: String(meta.run_id ?? meta.run_uuid ?? runId),
        experimentId,
        runName: String(meta.run_name ?? tags[MLFLOW_TAGS.runName] ?? ''),
        userId: String(meta.user_id ?? ''),
        status: runStatusFromCode(meta.status ?? 1),
        startTime: num(meta.start_time),
        endTime: num(meta.end_time),
        artifactUri: String(meta.artifact_uri ?? ''),
        lifecycleStage: String(meta.lifecycle_stage ?? 'active'),
      },
      params: Object.fromEntries(await readKeyFiles(path.join(dir, 'params'))),
      tags,
      metrics,
      dir,
    };
  }

  /** Finds a run by id in any active experiment. */
  async findRun(runId: string, options: ReadRunOptions = {}): Promise<StoredRun | undefined> {
    for (const experiment of await this.listExperiments()) {
      const run = await this.readRun(experiment.id, runId, options).catch(() => undefined);
      if (run) return run;
    }
    return undefined;
  }

  /** Files under the run's artifacts folder, recursively, sorted. */
  async listArtifacts(run: StoredRun): Promise<StoredArtifact[]> {
    const out: StoredArtifact[] = [];
    const walk = async (dir: string, prefix: string): Promise<void> => {
      for (const entry of await listDir(dir)) {
        const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
        if (entry.isDir) await walk(path.join(dir, entry.name), rel);
        else if (!/\.tmp-\d+-[0-9a-f]+$|\.\d{10}$/.test(entry.name)) out.push({ path: rel, size: (await stat(path.join(dir, entry.name))).size });
      }
    };
    await walk(path.join(run.dir, 'artifacts'), '');
    return out.sort((a, b) => a.path.localeCompare(b.path));
  }
}

/**
 * Parses `<timestamp> <value> [<step>]` lines. A last line without its newline is a write cut by a crash:
 * ignored with a warning. Any other malformed line is an error (MLflow would refuse to load the run).
 */
export function parseMetricLines(key: string, text: string, file: string, logger: Logger): MetricPoint[] {
  const lines = text.split('\n');
  const tail = lines.pop();
  if (tail !== undefined && tail !== '') logger.warn(`${file}: last line "${tail}" has no newline (write cut by a crash); ignored.`);
  return lines.map((line, index) => {
    const parts = line.trim().split(' ');
    const timestamp = Number(parts[0]);
    const value = parts[1] === undefined ? undefined : metricValueFromFileText(parts[1]);
    const step = parts.length === 3 ? Number(parts[2]) : 0;
    if ((parts.length !== 2 && parts.length !== 3) || !Number.isInteger(timestamp) || value === undefined || !Number.isInteger(step)) {
      throw new TrackingError('malformed-metric-line', `${file}:${index + 1}: "${line}" is not "<timestamp> <value> <step>".`, {
        hint: 'Fix or delete the line; MLflow refuses to load a run with a malformed metric file.',
      });
    }
    return { key, value, step, timestamp };
  });
}
