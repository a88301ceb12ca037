// MLflow's limits and value rules, shared by the file store, the REST client and sync: key names, lengths,
// log-batch chunking, and how non-finite metric values are written (JSON strings, file-store float text).
import { TrackingError } from '../errors.js';
import type { MetricPoint } from '../../registry/contracts/tracker.js';

/** Limits checked against a real MLflow 3.6 server (docs/methods/mlflow.md#limits) and mlflow/utils/validation.py. */
export const MLFLOW_LIMITS = {
  metricsPerBatch: 1000,
  paramsPerBatch: 100,
  tagsPerBatch: 100,
  entitiesPerBatch: 1000,
  /** The server rejects larger log-batch bodies (MAX_BATCH_LOG_REQUEST_SIZE); we stay below with room for JSON overhead. */
  batchBytes: 900_000,
  keyLength: 250,
  /** Longer param values are truncated by the server (silently); milkit sends them to an artifact instead. */
  paramValueLength: 6000,
  /** 3.6 accepts 8000; older servers 5000. The lower bound works everywhere. */
  tagValueLength: 5000,
  experimentNameLength: 500,
} as const;

export type EntityKind = 'param' | 'metric' | 'tag';

// MLflow: `^[/\w.\- :]*$` with Python's Unicode \w.
const KEY_CHARS = /^[\p{L}\p{N}\p{M}_\-. :/]+$/u;

/** Why `key` cannot be an MLflow param/metric/tag name, or undefined when it can. */
export function keyProblem(key: string): string | undefined {
  if (key.length === 0) return 'it is empty';
  if (key.length > MLFLOW_LIMITS.keyLength) return `it is ${key.length} characters long (limit ${MLFLOW_LIMITS.keyLength})`;
  if (!KEY_CHARS.test(key)) return 'it has characters other than letters, digits, "_", "-", ".", " ", ":" and "/"';
  // `/` makes sub-folders in the file store, so the name must be a normalised relative path.
  if (key.startsWith('/') || key.endsWith('/') || key.includes('//')) return 'it is not a normalised relative path (leading, trailing or double "/")';
  if (key.split('/').some((part) => part === '.' || part === '..')) return 'it has a "." or ".." path segment';
  return undefined;
}

/** Throws a TrackingError `invalid-key` naming the key and the rule it breaks. */
export function assertValidKey(kind: EntityKind, key: string): void {
  const problem = keyProblem(key);
  if (problem !== undefined) {
    throw new TrackingError('invalid-key', `${kind} name ${JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}…` : key)} is not a valid MLflow name: ${problem}.`, {
      hint: 'Rename it: names may use letters, digits, "_", "-", ".", " ", ":" and "/" (for nesting), at most 250 characters.',
    });
  }
}

/** JSON form of a metric value: NaN and ±Infinity as the strings MLflow accepts (JSON.stringify would send null). */
export function metricValueToJson(value: number): number | 'NaN' | 'Infinity' | '-Infinity' {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return 'Infinity';
  if (value === -Infinity) return '-Infinity';
  return value;
}

/** The server stores ±Infinity as ±DBL_MAX and returns it that way. */
const DOUBLE_MAX = 1.7976931348623157e308;

/** Reads a metric value from a server response (`"NaN"`, strings, ±DBL_MAX for infinities). */
export function metricValueFromJson(raw: unknown): number {
  if (typeof raw === 'number') return raw >= DOUBLE_MAX ? Infinity : raw <= -DOUBLE_MAX ? -Infinity : raw;
  if (typeof raw === 'string') {
    const lower = raw.toLowerCase();
    if (lower === 'nan') return NaN;
    if (lower === 'infinity' || lower === 'inf') return Infinity;
    if (lower === '-infinity' || lower === '-inf') return -Infinity;
    const parsed = Number(raw);
    if (Number.isFinite(parsed)) return parsed;
  }
  throw new TrackingError('mlflow-bad-response', `the server sent metric value ${JSON.stringify(raw)}, which is not a number.`, {
    hint: 'Check that the tracking URI points at an MLflow server.',
  });
}

/**
 * File-store text of a metric value, as Python's `str(float)` writes it: `0.5`, `3.0`, `nan`, `inf`, `-inf`,
 * `1e-07`. Any of these parses back exactly with float().
 */
export function metricValueToFileText(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (value === Infinity) return 'inf';
  if (value === -Infinity) return '-inf';
  const text = String(value);
  // Python pads one-digit exponents: 1e-07, 1e+21.
  if (/[eE]/.test(text)) return text.replace(/e([+-])(\d)$/, (_match, sign: string, digit: string) => `e${sign}0${digit}`);
  return Number.isInteger(value) ? `${text}.0` : text;
}

/** Parses a file-store metric value (Python float() syntax). */
export function metricValueFromFileText(text: string): number | undefined {
  const lower = text.trim().toLowerCase();
  if (lower === 'nan' || lower === '+nan' || lower === '-nan') return NaN;
  if (lower === 'inf' || lower === '+inf' || lower === 'infinity' || lower === '+infinity') return Infinity;
  if (lower === '-inf' || lower === '-infinity') return -Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(lower)) return undefined;
  return Number(lower);
}

/** Identity of a metric point for de-duplication (sync): step, timestamp and value, with NaN/∞ normalised. */
export function metricPointKey(point: MetricPoint): string {
  const value = Number.isNaN(point.value) ? 'nan' : point.value >= DOUBLE_MAX ? 'inf' : point.value <= -DOUBLE_MAX ? '-inf' : String(point.value);
  return `${point.key}\u0000${point.step}\u0000${point.timestamp}\u0000${value}`;
}

export interface KeyValue {
  readonly key: string;
  readonly value: string;
}

export interface LogBatch {
  readonly metrics: MetricPoint[];
  readonly params: KeyValue[];
  readonly tags: KeyValue[];
}

const approxBytes = (item: MetricPoint | KeyValue): number =>
  'step' in item ? item.key.length + 80 : Buffer.byteLength(item.key) + Buffer.byteLength(item.value) + 30;

/**
 * Splits metrics, params and tags into log-batch calls within every server limit (per kind, total, bytes).
 * Params go first so a run's configuration lands before its curves.
 */
export function chunkLogBatch(input: { metrics?: readonly MetricPoint[]; params?: readonly KeyValue[]; tags?: readonly KeyValue[] }): LogBatch[] {
  const batches: LogBatch[] = [];
  let current: LogBatch = { metrics: [], params: [], tags: [] };
  let bytes = 0;
  const size = (b: LogBatch): number => b.metrics.length + b.params.length + b.tags.length;
  const push = <T extends MetricPoint | KeyValue>(item: T, list: (b: LogBatch) => T[], perKind: number): void => {
    const itemBytes = approxBytes(item);
    if (list(current).length >= perKind || size(current) >= MLFLOW_LIMITS.entitiesPerBatch || (size(current) > 0 && bytes + itemBytes > MLFLOW_LIMITS.batchBytes)) {
      batches.push(current);
      current = { metrics: [], params: [], tags: [] };
      bytes = 0;
    }
    list(current).push(item);
    bytes += itemBytes;
  };
  for (const p of input.params ?? []) push(p, (b) => b.params, MLFLOW_LIMITS.paramsPerBatch);
  for (const t of input.tags ?? []) push(t, (b) => b.tags, MLFLOW_LIMITS.tagsPerBatch);
  for (const m of input.metrics ?? []) push(m, (b) => b.metrics, MLFLOW_LIMITS.metricsPerBatch);
  if (size(current) > 0) batches.push(current);
  return batches;
}

/** Splits values into those within `limit` characters and those over it (which must go to an artifact). */
export function splitOversized(values: Readonly<Record<string, string>>, limit: number): { fitting: Record<string, string>; oversized: Record<string, string> } {
  const fitting: Record<string, string> = {};
  const oversized: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    if (value.length > limit) oversized[key] = value;
    else fitting[key] = value;
  }
  return { fitting, oversized };
}

export const RUN_STATUS_CODES = { RUNNING: 1, SCHEDULED: 2, FINISHED: 3, FAILED: 4, KILLED: 5 } as const;
export type MlflowRunStatus = keyof typeof RUN_STATUS_CODES;

/** A run's info block, as both the file store (meta.yaml) and the REST API (RunInfo) describe it. */
export interface MlflowRunInfo {
  readonly runId: string;
  readonly experimentId: string;
  readonly runName: string;
  readonly userId: string;
  readonly status: MlflowRunStatus;
  readonly startTime: number | undefined;
  readonly endTime: number | undefined;
  readonly artifactUri: string;
  readonly lifecycleStage: string;
}

export function runStatusFromCode(code: unknown): MlflowRunStatus {
  const entry = Object.entries(RUN_STATUS_CODES).find(([, value]) => value === code);
  return entry ? (entry[0] as MlflowRunStatus) : 'RUNNING';
}
