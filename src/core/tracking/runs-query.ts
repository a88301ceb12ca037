// `milkit runs`: runs from the local store or a server as rows, filtered and sorted, and rendered as a
// terminal table or a paper-style comparison (one row per run, differing params, metrics as mean ± std).
import { stringify as csvStringify } from 'csv-stringify/sync';
import { ConfigError, TrackingError } from '../errors.js';
import { didYouMean } from '../util/suggest.js';
import type { Metric } from '../../registry/contracts/metric.js';
import { Rng } from '../runtime/random.js';
import { compareWithBaseline, type ComparisonResult, type FoldPredictionSet, type FoldRecord, type RowRecord } from '../stats/compare.js';
import type { Logger } from '../logger.js';
import { FileStoreReader, latestPoint } from './file-store-reader.js';
import type { MlflowRunStatus } from './limits.js';
import type { MlflowRestClient } from './rest-client.js';
import { isLocalOnlyTag, MILKIT_TAGS, MLFLOW_TAGS } from './tags.js';

export interface RunRow {
  readonly runId: string;
  readonly experimentId: string;
  readonly experimentName: string;
  readonly runName: string;
  readonly status: MlflowRunStatus;
  readonly startTime: number | undefined;
  readonly endTime: number | undefined;
  readonly parentRunId: string | undefined;
  readonly params: Readonly<Record<string, string>>;
  readonly tags: Readonly<Record<string, string>>;
  /** Latest value per key. */
  readonly metrics: Readonly<Record<string, number>>;
}

/** Runs of a local store (all experiments, or the named ones). */
export async function loadLocalRuns(root: string, options: { experiments?: readonly string[]; logger: Logger }): Promise<RunRow[]> {
  const reader = new FileStoreReader(root, options.logger);
  const experiments = await reader.listExperiments();
  checkExperimentNames(options.experiments, experiments.map((e) => e.name), root);
  const rows: RunRow[] = [];
  for (const experiment of experiments.filter((e) => !options.experiments || options.experiments.includes(e.name))) {
    for (const run of await reader.listRuns(experiment.id, { history: false })) {
      rows.push({
        runId: run.info.runId,
        experimentId: experiment.id,
        experimentName: experiment.name,
        runName: run.info.runName,
        status: run.info.status,
        startTime: run.info.startTime,
        endTime: run.info.endTime,
        parentRunId: run.tags[MLFLOW_TAGS.parentRunId],
        params: run.params,
        tags: run.tags,
        metrics: Object.fromEntries(Object.entries(run.metrics).map(([key, points]) => [key, latestPoint(points)?.value ?? NaN])),
      });
    }
  }
  return rows;
}

/** Runs of named experiments on a server (every page). */
export async function loadRemoteRuns(client: MlflowRestClient, options: { experiments: readonly string[] }): Promise<RunRow[]> {
  const rows: RunRow[] = [];
  for (const name of options.experiments) {
    const experiment = await client.getExperimentByName(name);
    if (!experiment) throw new TrackingError('unknown-experiment', `no experiment "${name}" on ${client.uri}.`, { hint: 'Check the name (milkit uses tracking.experimentName, else the experiment\'s name).' });
    for (const run of await client.searchAllRuns({ experimentIds: [experiment.experimentId] })) {
      rows.push({
        runId: run.info.runId,
        experimentId: experiment.experimentId,
        experimentName: name,
        runName: run.info.runName,
        status: run.info.status,
        startTime: run.info.startTime,
        endTime: run.info.endTime,
        parentRunId: run.tags[MLFLOW_TAGS.parentRunId],
        params: run.params,
        tags: run.tags,
        metrics: Object.fromEntries(Object.entries(run.metrics).map(([key, point]) => [key, point.value])),
      });
    }
  }
  return rows;
}

function checkExperimentNames(wanted: readonly string[] | undefined, known: readonly string[], where: string): void {
  for (const name of wanted ?? []) {
    if (!known.includes(name)) throw new TrackingError('unknown-experiment', `no experiment "${name}" in ${where}.`, { hint: `Experiments: ${known.join(', ') || 'none'}.` });
  }
}

// ---------------- fields, filters, sorting ----------------

export type FilterOp = '=' | '!=' | '>' | '>=' | '<' | '<=' | '~';

export interface RunFilter {
  readonly field: string;
  readonly op: FilterOp;
  readonly value: string;
}

const ATTRIBUTES = ['id', 'name', 'status', 'experiment', 'parent', 'start', 'end', 'duration'] as const;

/** Throws `unknown-run-field` unless `field` is `params.<k>`, `metrics.<k>`, `tags.<k>` or an attribute. */
export function checkField(field: string): void {
  if (/^(params|metrics|tags)\../.test(field) || (ATTRIBUTES as readonly string[]).includes(field)) return;
  throw new TrackingError('unknown-run-field', `unknown field "${field}".`, { hint: `Use params.<key>, metrics.<key>, tags.<key> or one of ${ATTRIBUTES.join(', ')}.` });
}

/** The value of a field of a row: `params.<k>`, `metrics.<k>`, `tags.<k>` or an attribute (`name`, `status`...). */
export function fieldValue(row: RunRow, field: string): string | number | undefined {
  if (field.startsWith('params.')) return row.params[field.slice(7)];
  if (field.startsWith('metrics.')) return row.metrics[field.slice(8)];
  if (field.startsWith('tags.')) return row.tags[field.slice(5)];
  switch (field) {
    case 'id':
      return row.runId;
    case 'name':
      return row.runName;
    case 'status':
      return row.status;
    case 'experiment':
      return row.experimentName;
    case 'parent':
      return row.parentRunId;
    case 'start':
      return row.startTime;
    case 'end':
      return row.endTime;
    case 'duration':
      return row.startTime !== undefined && row.endTime !== undefined ? (row.endTime - row.startTime) / 1000 : undefined;
    default:
      checkField(field);
      return undefined;
  }
}

/** Parses `params.model.aggregator.name=abmil`, `metrics.val/auc>=0.8`, `status!=FAILED`, `name~fold`. */
export function parseFilter(expression: string): RunFilter {
  // MLflow keys never contain these characters, so the first one ends the key.
  const match = /^\s*([^=!<>~]+?)\s*(>=|<=|!=|=|>|<|~)\s*(.*?)\s*$/.exec(expression);
  if (!match?.[1] || !match[2]) {
    throw new TrackingError('invalid-run-filter', `cannot read the filter "${expression}".`, { hint: 'Write <field><op><value>, e.g. params.model.aggregator.name=abmil or metrics.test/auc_mean>=0.9 (ops: = != > >= < <= ~).' });
  }
  const field = match[1];
  checkField(field);
  return { field, op: match[2] as FilterOp, value: (match[3] ?? '').replace(/^'(.*)'$|^"(.*)"$/, '$1$2') };
}

function compareValues(a: string | number, b: string | number): number {
  const x = typeof a === 'number' ? a : Number(a);
  const y = typeof b === 'number' ? b : Number(b);
  if (a !== '' && b !== '' && !Number.isNaN(x) && !Number.isNaN(y)) return x - y;
  return String(a).localeCompare(String(b));
}

export function matchesFilter(row: RunRow, filter: RunFilter): boolean {
  const value = fieldValue(row, filter.field);
  if (value === undefined) return filter.op === '!=';
  if (filter.op === '~') return String(value).toLowerCase().includes(filter.value.toLowerCase());
  const order = compareValues(value, filter.value);
  switch (filter.op) {
    case '=':
      return order === 0;
    case '!=':
      return order !== 0;
    case '>':
      return order > 0;
    case '>=':
      return order >= 0;
    case '<':
      return order < 0;
    case '<=':
      return order <= 0;
  }
}

export function applyFilters(rows: readonly RunRow[], filters: readonly RunFilter[]): RunRow[] {
  return rows.filter((row) => filters.every((f) => matchesFilter(row, f)));
}

/** Sorts by `field[:asc|desc]` keys in order; missing values last. Default: newest first. */
export function sortRows(rows: readonly RunRow[], specs: readonly string[]): RunRow[] {
  const parsed = (specs.length > 0 ? specs : ['start:desc']).map((spec) => {
    const [field = '', direction = 'asc'] = spec.split(/:(?=(?:asc|desc)$)/i);
    checkField(field);
    return { field, sign: direction.toLowerCase() === 'desc' ? -1 : 1 };
  });
  return [...rows].sort((a, b) => {
    for (const { field, sign } of parsed) {
      const x = fieldValue(a, field);
      const y = fieldValue(b, field);
      if (x === undefined && y === undefined) continue;
      if (x === undefined) return 1;
      if (y === undefined) return -1;
      const order = compareValues(x, y);
      if (order !== 0) return sign * order;
    }
    return a.runId.localeCompare(b.runId);
  });
}

// ---------------- tables ----------------

export interface Table {
  readonly header: readonly string[];
  readonly rows: ReadonlyArray<readonly string[]>;
}

export function formatNumber(value: number | undefined, digits: number): string {
  if (value === undefined) return '';
  if (Number.isNaN(value)) return 'nan';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  return Math.abs(value) >= 1e6 || (Math.abs(value) < 10 ** -digits && value !== 0) ? value.toExponential(digits - 1) : value.toFixed(digits);
}

function formatTime(ms: number | undefined): string {
  if (ms === undefined) return '';
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 16);
}

/** Columns for `runs list`: id, name, status, level, start, then the given fields (default: a few metrics). */
export function listTable(rows: readonly RunRow[], columns: readonly string[], digits = 4): Table {
  const header = ['run', 'name', 'status', 'level', 'started', ...columns];
  return {
    header,
    rows: rows.map((row) => [
      row.runId.slice(0, 8),
      row.runName,
      row.status,
      row.tags[MILKIT_TAGS.level] ?? '',
      formatTime(row.startTime),
      ...columns.map((c) => {
        const v = fieldValue(row, c);
        return typeof v === 'number' ? formatNumber(v, digits) : (v ?? '');
      }),
    ]),
  };
}

/** Metric keys of the rows, most common first, excluding internal bookkeeping. */
export function metricKeys(rows: readonly RunRow[]): string[] {
  const counts = new Map<string, number>();
  for (const row of rows) for (const key of Object.keys(row.metrics)) counts.set(key, (counts.get(key) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([key]) => key);
}

const LOWER_IS_BETTER = /loss|error|_ms$|^time\/|brier|ece/i;

export interface CompareOptions {
  /** Metric names to show; `x` shows `x_mean ± x_std` when those exist. Default: every `_mean` metric, else all. */
  readonly metrics?: readonly string[];
  /** Param keys to show; default: the params whose values differ between the runs. */
  readonly params?: readonly string[];
  readonly digits?: number;
}

/** The params and metrics a comparison shows: the given ones, else differing params and the `_mean` metrics. */
export function compareColumns(rows: readonly RunRow[], options: Pick<CompareOptions, 'metrics' | 'params'> = {}): { params: string[]; metrics: string[] } {
  const allParams = [...new Set(rows.flatMap((r) => Object.keys(r.params)))].sort();
  const params = options.params ? [...options.params] : allParams.filter((key) => new Set(rows.map((r) => r.params[key] ?? '')).size > 1);
  const keys = metricKeys(rows);
  const means = keys.filter((k) => k.endsWith('_mean')).map((k) => k.slice(0, -5));
  const metrics = options.metrics ? [...options.metrics] : means.length > 0 ? means.sort() : keys.filter((k) => !k.startsWith('time/')).sort();
  // A column that no run has would print empty and look like missing data: name it instead, with what exists.
  const knownMetrics = [...new Set([...keys, ...means])].sort();
  const unknownMetrics = (options.metrics ?? []).filter((m) => !knownMetrics.includes(m));
  const unknownParams = (options.params ?? []).filter((p) => !allParams.includes(p));
  if (rows.length > 0 && (unknownMetrics.length > 0 || unknownParams.length > 0)) {
    const describe = (flag: string, unknown: readonly string[], known: readonly string[]): string =>
      unknown.map((name) => `${flag} "${name}" is not logged by any of these runs.${didYouMean(name, known)}`).join(' ');
    throw new ConfigError('unknown-compare-column', [describe('--metrics', unknownMetrics, knownMetrics), describe('--params', unknownParams, allParams)].filter(Boolean).join(' '), {
      hint: `Metrics these runs have: ${knownMetrics.slice(0, 20).join(', ') || 'none'}${knownMetrics.length > 20 ? ', …' : ''}. Params: ${allParams.slice(0, 20).join(', ') || 'none'}${allParams.length > 20 ? ', …' : ''}.`,
    });
  }
  return { params, metrics };
}

/**
 * A paper-style comparison (like a results table): one row per run, the params that tell runs apart, then
 * one column per metric as `mean ± std` when the run logged `<m>_mean`/`<m>_std`; `*` marks each column's best.
 */
export function compareTable(rows: readonly RunRow[], options: CompareOptions = {}): Table {
  const digits = options.digits ?? 3;
  const { params, metrics } = compareColumns(rows, options);
  const cell = (row: RunRow, metric: string): { value: number | undefined; text: string } => {
    const mean = row.metrics[`${metric}_mean`];
    if (mean !== undefined) {
      const std = row.metrics[`${metric}_std`];
      return { value: mean, text: std !== undefined ? `${formatNumber(mean, digits)} ± ${formatNumber(std, digits)}` : formatNumber(mean, digits) };
    }
    const value = row.metrics[metric];
    return { value, text: formatNumber(value, digits) };
  };
  const cells = rows.map((row) => metrics.map((m) => cell(row, m)));
  const best = metrics.map((metric, j) => {
    const values = cells.map((c) => c[j]?.value).filter((v): v is number => v !== undefined && Number.isFinite(v));
    if (values.length < 2) return undefined;
    return LOWER_IS_BETTER.test(metric) ? Math.min(...values) : Math.max(...values);
  });
  return {
    header: ['run', ...params, ...metrics],
    rows: rows.map((row, i) => [
      row.runName || row.runId.slice(0, 8),
      ...params.map((p) => row.params[p] ?? ''),
      ...metrics.map((_, j) => {
        const c = cells[i]?.[j];
        if (!c) return '';
        return c.value !== undefined && best[j] !== undefined && c.value === best[j] ? `${c.text} *` : c.text;
      }),
    ]),
  };
}

export type TableFormat = 'text' | 'md' | 'csv' | 'json';

/** Renders a table: aligned text, Markdown, CSV or JSON (array of objects). */
export function renderTable(table: Table, format: TableFormat): string {
  if (format === 'json') return JSON.stringify(table.rows.map((row) => Object.fromEntries(table.header.map((h, i) => [h, row[i] ?? '']))), null, 2);
  if (format === 'csv') return csvStringify([table.header as string[], ...table.rows.map((r) => [...r])]).trimEnd();
  const widths = table.header.map((h, i) => Math.max(h.length, ...table.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(format === 'md' ? ' | ' : '  ').trimEnd();
  if (format === 'md') {
    const md = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.replace(/\|/g, '\\|').padEnd(widths[i] ?? 0)).join(' | ')} |`;
    return [md(table.header), `| ${widths.map((w) => '-'.repeat(Math.max(3, w))).join(' | ')} |`, ...table.rows.map(md)].join('\n');
  }
  return [line(table.header), line(widths.map((w) => '-'.repeat(w))), ...table.rows.map(line)].join('\n');
}

/** Tags worth showing in `runs show` (bookkeeping tags of the local store included, marked). */
export function visibleTags(tags: Readonly<Record<string, string>>): Array<[string, string]> {
  return Object.entries(tags).sort(([a], [b]) => a.localeCompare(b)).map(([key, value]) => [isLocalOnlyTag(key) ? `${key} (local)` : key, value]);
}

// ---------------- comparison with a baseline run ----------------

export interface BaselineCompareOptions {
  /** The run every other run is tested against (one of the compared rows). */
  readonly baseline: RunRow;
  /** Metric names without the `test/` prefix; default: the `test/<m>_mean` metrics of the runs. */
  readonly metrics?: readonly string[];
  readonly params?: readonly string[];
  readonly alpha?: number;
  readonly digits?: number;
  /** A fold run's test predictions (local store: its predictions.csv artifact), for DeLong and the bootstrap. */
  readonly predictionsOf?: (fold: RunRow) => Promise<FoldPredictionSet | undefined>;
  /** The metric plugin for a name at a class count (a level such as coarse has its own). */
  readonly metricFor?: (name: string, numClasses: number) => Metric | undefined;
  readonly bootstrapResamples?: number;
}

export interface BaselineComparison {
  readonly table: Table;
  readonly comparison: ComparisonResult;
}

/** A fold run's repeat: its `milkit.repeat` tag, or (runs logged before the tag) fold index ÷ folds per repeat. */
function repeatOfFold(child: RunRow, index: number, foldsPerRepeat: number): number {
  const tagged = Number(child.tags[MILKIT_TAGS.repeat]);
  if (child.tags[MILKIT_TAGS.repeat] !== undefined && Number.isInteger(tagged) && tagged >= 0) return tagged;
  return Number.isInteger(foldsPerRepeat) && foldsPerRepeat > 0 ? Math.floor(index / foldsPerRepeat) : 0;
}

/** The fold runs of `run` (children tagged milkit.level = fold) as comparison records, by fold index. */
export async function foldRecordsOf(run: RunRow, all: readonly RunRow[], predictionsOf?: BaselineCompareOptions['predictionsOf']): Promise<Array<FoldRecord | null>> {
  const children = all.filter((r) => r.parentRunId === run.runId && r.tags[MILKIT_TAGS.level] === 'fold');
  const foldsPerRepeat = Number(run.params['split.folds']);
  const byIndex = new Map<number, RunRow>();
  for (const child of children) {
    const index = Number(child.tags['milkit.fold'] ?? child.params.fold);
    if (Number.isInteger(index) && index >= 0 && child.status === 'FINISHED') byIndex.set(index, child);
  }
  const planned = Math.max(-1, ...byIndex.keys(), ...children.map((c) => Number(c.tags['milkit.fold'] ?? c.params.fold)).filter(Number.isInteger)) + 1;
  const folds: Array<FoldRecord | null> = [];
  for (let index = 0; index < planned; index += 1) {
    const child = byIndex.get(index);
    if (!child) {
      folds.push(null);
      continue;
    }
    const metrics = Object.fromEntries(Object.entries(child.metrics).filter(([key]) => key.startsWith('test/')).map(([key, value]) => [key.slice(5), Number.isFinite(value) ? value : null]));
    const nTrain = Number(child.params['split.train']);
    const nTest = Number(child.params['split.test']);
    const predictions = predictionsOf ? await predictionsOf(child) : undefined;
    folds.push({
      index,
      repeat: repeatOfFold(child, index, foldsPerRepeat),
      metrics,
      ...(Number.isFinite(nTrain) && Number.isFinite(nTest) ? { nTrain, nTest } : {}),
      ...(predictions ? { predictions } : {}),
    });
  }
  return folds;
}

/**
 * `runs compare --baseline`: the paper-style table plus, per metric, each run's paired difference from the
 * baseline run over their fold runs (corrected resampled t-test, Holm across runs, ▲/▼/≈), and DeLong / bootstrap
 * p-values when the fold predictions are readable.
 */
export async function baselineCompareTable(rows: readonly RunRow[], all: readonly RunRow[], options: BaselineCompareOptions): Promise<BaselineComparison> {
  const columns = { ...(options.metrics ? { metrics: options.metrics } : {}), ...(options.params ? { params: options.params } : {}) };
  const base = compareTable(rows, { digits: options.digits ?? 3, ...columns });
  const { params, metrics: metricColumns } = compareColumns(rows, columns);
  // Fold runs log `test/<m>`; the parent's columns are `test/<m>` (from `test/<m>_mean`) or a bare `<m>` from --metrics.
  const metrics = metricColumns.map((m) => m.replace(/^test\//, ''));
  const ordered = [options.baseline, ...rows.filter((r) => r.runId !== options.baseline.runId)];
  const records: RowRecord[] = [];
  for (const run of ordered) records.push({ label: run.runId, folds: await foldRecordsOf(run, all, options.predictionsOf) });
  const comparison = compareWithBaseline(records, {
    metrics, baseline: options.baseline.runId, alpha: options.alpha ?? 0.05, rng: new Rng(`runs-compare/${options.baseline.runId}`),
    bootstrapResamples: options.bootstrapResamples ?? 1000, ...(options.metricFor ? { metricFor: options.metricFor } : {}),
  });
  const digits = options.digits ?? 3;
  const pText = (p: number | null | undefined): string => (p === null || p === undefined || Number.isNaN(p) ? '' : p < 10 ** -digits ? `<${10 ** -digits}` : p.toFixed(digits));
  const header = ['run', ...params];
  for (const metric of metrics) header.push(metric, `Δ ${metric} [CI]`, 'p (Holm)', 'DeLong p', 'bootstrap p');
  const tableRows = rows.map((row, i) => {
    const cells = [...(base.rows[i] ?? []).slice(0, 1 + params.length)];
    const compared = comparison.rows.find((r) => r.label === row.runId);
    metrics.forEach((metric, j) => {
      const valueText = ((base.rows[i] ?? [])[1 + params.length + j] ?? '').replace(/ \*$/, '');
      const m = compared?.metrics.find((x) => x.metric === metric);
      if (!m || compared?.isBaseline) {
        cells.push(compared?.isBaseline ? `${valueText} (baseline)` : valueText, '', '', '', '');
        return;
      }
      const t = m.tTest;
      cells.push(
        m.mark ? `${valueText} ${m.mark}` : valueText,
        t ? `${t.effect >= 0 ? '+' : ''}${formatNumber(t.effect, digits)}${t.ci ? ` [${formatNumber(t.ci[0], digits)}, ${formatNumber(t.ci[1], digits)}]` : ''} (${m.pairedFolds} folds)` : `(${m.pairedFolds} paired folds)`,
        pText(m.adjustedP), pText(m.delong?.p), pText(m.bootstrap?.p),
      );
    });
    return cells;
  });
  return { table: { header, rows: tableRows }, comparison };
}
