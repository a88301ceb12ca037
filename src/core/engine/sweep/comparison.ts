// The sweep's "is this difference real?" block: reads each job's fold outputs (result metrics, test
// predictions, split sizes), compares every row with the baseline row (src/core/stats/compare.ts) and renders
// the comparison tables, the method footnote and comparison.json. The method is described in docs/sweeps.md.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Metric } from '../../../registry/contracts/metric.js';
import { Rng } from '../../runtime/random.js';
import { cellInterval, type CellInterval } from '../../stats/cell-interval.js';
import { compareWithBaseline, resolveMetric, type ComparisonResult, type FoldPredictionSet, type FoldRecord, type MedianTest, type RowRecord } from '../../stats/compare.js';
import { methodFootnote, readFoldPredictions } from '../../stats/report.js';
import type { JobResult } from '../job.js';
import type { PlannedCellRecord, SweepLayout, SweepRecord } from './state.js';
import { TIME_METRIC } from './table.js';

export interface SweepStatsOptions {
  /** Row label of the baseline (default: the first row). */
  readonly baseline?: string;
  /** Significance level of the ▲/▼ marks after Holm (default 0.05). */
  readonly alpha?: number;
  /** Paired-bootstrap resamples per repeat (default 1000; 0 = off). */
  readonly bootstrapResamples?: number;
  /** Metric plugins by name and class count, for the bootstraps (the CLI passes the registry's). */
  readonly metricFor?: (name: string, numClasses: number) => Metric | undefined;
}

/** The label a cell's row carries in comparisons: its name without the dataset (`row | k=v k2=v2`; datasets are groups). */
export function rowLabel(cell: PlannedCellRecord): string {
  const params = Object.entries(cell.params).map(([key, value]) => `${key}=${value}`).join(' ');
  return [cell.row, params].filter((p): p is string => p !== undefined && p !== '').join(' | ') || cell.name;
}

/** Row labels of the sweep in order, without repeats (what --baseline may name). */
export function rowLabels(cells: readonly PlannedCellRecord[]): string[] {
  return [...new Set(cells.map(rowLabel))];
}

interface SplitsFile {
  folds: Array<{ index: number; repeat?: number; train: string[]; val: string[]; test: string[] }>;
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** The rows of the sweep as the comparison reads them: per cell, each planned fold's result, predictions and split. */
export async function loadRowRecords(record: SweepRecord, results: ReadonlyMap<string, JobResult>, layout: SweepLayout): Promise<RowRecord[]> {
  const rows: RowRecord[] = [];
  for (const cell of record.cells) {
    const folds: Array<FoldRecord | null> = [];
    for (const [fold, id] of cell.jobIds.entries()) {
      const result = results.get(id);
      if (!result) {
        folds.push(null);
        continue;
      }
      const dir = layout.jobDir(id);
      const splits = await readJson<SplitsFile>(path.join(dir, 'splits', 'splits.json'));
      const split = splits?.folds.find((f) => f.index === fold);
      const predictions = await readFoldPredictions(path.join(dir, `fold-${fold}`, 'predictions.csv'));
      const sameAsTest = split !== undefined && split.val.length > 0 && split.val.length === split.test.length && [...split.val].sort().join('\0') === [...split.test].sort().join('\0');
      folds.push({
        index: fold,
        repeat: split?.repeat ?? 0,
        metrics: result.metrics,
        ...(predictions ? { predictions } : {}),
        ...(split ? { nTrain: split.train.length, nTest: split.test.length, valIsTest: sameAsTest, noVal: split.val.length === 0 } : {}),
      });
    }
    rows.push({ label: rowLabel(cell), ...(cell.dataset !== undefined ? { group: cell.dataset } : {}), folds });
  }
  return rows;
}

/**
 * Compares every row of the sweep with its baseline. The bootstrap stream is fixed and forked per dataset and
 * row, so the same results give the same numbers whatever the state folder, tracking target or other rows.
 */
export function compareSweepRows(rows: readonly RowRecord[], metrics: readonly string[], options: SweepStatsOptions): ComparisonResult {
  return compareWithBaseline(rows, {
    metrics: metrics.filter((m) => m !== TIME_METRIC),
    ...(options.baseline !== undefined ? { baseline: options.baseline } : {}),
    alpha: options.alpha ?? 0.05,
    bootstrapResamples: options.bootstrapResamples ?? 1000,
    ...(options.metricFor ? { metricFor: options.metricFor } : {}),
    rng: new Rng('sweep-stats'),
  });
}

function fmt(value: number | null | undefined, digits = 4): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  if (!Number.isFinite(value)) return value > 0 ? '∞' : '−∞';
  return value.toFixed(digits);
}

function signed(value: number): string {
  return `${value > 0 ? '+' : ''}${fmt(value)}`;
}

function formatP(p: number | null | undefined): string {
  if (p === null || p === undefined || Number.isNaN(p)) return '—';
  return p < 1e-4 ? '<0.0001' : p.toFixed(4);
}

function interval(test: { ci: readonly [number, number] } | null | undefined): string {
  return test ? `[${fmt(test.ci[0])}, ${fmt(test.ci[1])}]` : '';
}

function medianCell(test: MedianTest | null): [string, string] {
  if (!test) return ['—', '—'];
  const units = test.units > 1 ? ` (median of ${test.units})` : '';
  return [`${signed(test.difference)} ${interval(test)}${units}`, formatP(test.p)];
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** The comparison tables (one per metric) and the method footnote, as markdown for table.md and the CLI. */
export function renderComparisonMarkdown(result: ComparisonResult): string {
  const metrics = [...new Set(result.rows.flatMap((r) => r.metrics.map((m) => m.metric)))];
  const hasGroups = result.rows.some((r) => r.group !== undefined);
  const level = `${Math.round(result.confidence * 100)}%`;
  const lines: string[] = [];
  const baselines = [...new Set(result.rows.filter((r) => r.isBaseline).map((r) => r.label))];
  for (const metric of metrics) {
    lines.push('', `#### ${metric}: difference from the baseline (${baselines.join(', ')}) [^stats]`, '');
    const header = [...(hasGroups ? ['dataset'] : []), 'row', 'paired folds', `Δ t-test [${level} CI]`, 'p (Holm)', 'mark', `DeLong ΔAUC [${level} CI]`, 'p', `bootstrap Δ [${level} CI]`, 'p'];
    lines.push(`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`);
    for (const row of result.rows) {
      if (row.isBaseline) continue;
      const m = row.metrics.find((x) => x.metric === metric);
      if (!m) continue;
      const t = m.tTest;
      const [delong, delongP] = medianCell(m.delong);
      const [boot, bootP] = medianCell(m.bootstrap);
      const cells = [
        ...(hasGroups ? [row.group ?? ''] : []), row.label, String(m.pairedFolds),
        t ? `${signed(t.effect)} ${t.ci ? interval({ ci: t.ci }) : '(one fold: no test)'}` : '—',
        formatP(m.adjustedP), m.mark ?? '—', delong, delongP, boot, bootP,
      ];
      lines.push(`| ${cells.map(escapeCell).join(' | ')} |`);
    }
  }
  const flagged = result.rows.filter((r) => r.flags.length > 0);
  if (flagged.length > 0 || result.warnings.length > 0) {
    lines.push('', '**Warnings**', '');
    for (const warning of result.warnings) lines.push(`- ${warning}`);
    for (const row of flagged) for (const flag of row.flags) lines.push(`- ${row.group ? `${row.group} · ` : ''}${row.label}: ${flag}`);
  }
  lines.push('', methodFootnote(result));
  return lines.join('\n');
}

/** comparison.json: everything computed, for scripts. */
export function comparisonJson(result: ComparisonResult): string {
  return `${JSON.stringify(result, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? String(value) : value), 2)}\n`;
}

/**
 * The metric plugins (name, number of classes) the intervals and bootstraps may ask for: each metric on the flat
 * predictions' class counts, and each `<level>_<metric>` as `<metric>` on that level's class counts.
 */
export function metricRequests(rows: readonly RowRecord[], metrics: readonly string[]): Array<{ readonly name: string; readonly numClasses: number }> {
  const sets = rows.flatMap((r) => r.folds.flatMap((f) => (f?.predictions ? [f.predictions] : [])));
  const requests = new Map<string, { name: string; numClasses: number }>();
  const add = (name: string, numClasses: number): void => void requests.set(`${name}/${numClasses}`, { name, numClasses });
  const levelsOf = (set: FoldPredictionSet): Array<[string, FoldPredictionSet]> => Object.entries(set.levels ?? {});
  for (const metric of metrics.filter((m) => m !== TIME_METRIC)) {
    for (const set of sets) {
      add(metric, set.numClasses);
      for (const [level, sub] of levelsOf(set)) if (metric.startsWith(`${level}_`)) add(metric.slice(level.length + 1), sub.numClasses);
    }
  }
  return [...requests.values()];
}

/** Per cell (index into the sweep's cells) and metric: the pooled out-of-fold estimate with its bootstrap CI. */
export interface CellIntervals {
  readonly byCell: ReadonlyMap<number, Readonly<Record<string, CellInterval | null>>>;
  readonly resamples: number;
  readonly confidence: number;
}

/**
 * Each cell's metrics on its pooled out-of-fold predictions with percentile bootstrap CIs over patients. The stream
 * is fixed (`sweep-stats`, forked per dataset, row and metric), so the same results give the same intervals.
 */
export function computeCellIntervals(record: SweepRecord, rows: readonly RowRecord[], metrics: readonly string[], options: SweepStatsOptions): CellIntervals {
  const resamples = options.bootstrapResamples ?? 1000;
  const byCell = new Map<number, Record<string, CellInterval | null>>();
  const root = new Rng('sweep-stats');
  record.cells.forEach((cell, i) => {
    const row = rows[i];
    if (!row || resamples <= 0) return;
    const predictions = row.folds.find((f) => f?.predictions !== undefined)?.predictions;
    const entry: Record<string, CellInterval | null> = {};
    for (const metric of metrics.filter((m) => m !== TIME_METRIC)) {
      // `coarse_auc` is the auc plugin on the coarse predictions, like any `<level>_<metric>` a run reports.
      const target = predictions === undefined ? undefined : resolveMetric(metric, predictions, (name, k) => options.metricFor?.(name, k) !== undefined);
      const plugin = target === undefined ? undefined : options.metricFor?.(target.name, target.numClasses);
      entry[metric] = plugin ? cellInterval(row.folds, plugin, { resamples, rng: root.fork(`cell/${row.group ?? ''}/${row.label}/${metric}`), ...(target?.level !== undefined ? { level: target.level } : {}) }) : null;
    }
    byCell.set(cell.index, entry);
  });
  return { byCell, resamples, confidence: 0.95 };
}

function intervalText(interval: CellInterval | null | undefined): string {
  if (!interval) return '—';
  const notes = [
    ...(interval.units > 1 ? [`median of ${interval.units}`] : []),
    ...(interval.pooledFolds < interval.plannedFolds ? [`${interval.pooledFolds}/${interval.plannedFolds} folds`] : []),
  ];
  return `${fmt(interval.value)} [${fmt(interval.ci[0])}, ${fmt(interval.ci[1])}]${notes.length ? ` (${notes.join(', ')})` : ''}`;
}

/** The per-cell interval table (one line per cell) and its footnote, as markdown for table.md and the CLI. */
export function renderIntervalMarkdown(record: SweepRecord, intervals: CellIntervals, metrics: readonly string[]): string {
  const shown = metrics.filter((m) => m !== TIME_METRIC && [...intervals.byCell.values()].some((e) => e[m]));
  if (shown.length === 0) return '';
  const hasDatasets = record.cells.some((c) => c.dataset !== undefined);
  const level = `${Math.round(intervals.confidence * 100)}%`;
  const header = ['row', ...(hasDatasets ? ['dataset'] : []), ...shown.map((m) => `${m} [${level} CI]`)];
  const lines = ['', `#### Pooled out-of-fold estimates with bootstrap CIs [^ci]`, '', `| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
  for (const cell of record.cells) {
    const entry = intervals.byCell.get(cell.index);
    const cells = [rowLabel(cell), ...(hasDatasets ? [cell.dataset ?? ''] : []), ...shown.map((m) => intervalText(entry?.[m]))];
    lines.push(`| ${cells.map(escapeCell).join(' | ')} |`);
  }
  const incomplete = record.cells.filter((cell) => Object.values(intervals.byCell.get(cell.index) ?? {}).some((i) => i && i.pooledFolds < i.plannedFolds));
  if (incomplete.length > 0) {
    lines.push('', `**Warning**: ${incomplete.map((c) => c.name).join(', ')}: folds without predictions (failed or missing) are left out of the pool, so these intervals cover fewer slides than the other cells; the "k/n folds" note says how many.`);
  }
  lines.push('', [
    `[^ci]: Each cell's metric recomputed on its pooled out-of-fold test predictions (every fold's test slides of one repeat together; each fold on its own when test sets overlap, as in monte-carlo splits),`,
    `    with a ${level} percentile bootstrap over patients (all slides of a patient resampled together): ${intervals.resamples} resamples per repeat, drawn from the fixed random stream "sweep-stats" forked per dataset, row and metric, so a re-run gives the same interval.`,
    `    With repeats the value and each bound are the medians over repeats. The metric is the configured metric plugin (eval.metrics) for the data's number of classes; a second label level's column (coarse_auc) is the plugin (auc) on that level's predictions and classes; resamples where it is undefined (one class drawn, for AUC) are left out.`,
    `    The pooled value can differ from the mean over folds above (a pooled AUC also compares slides scored by different folds' models). It measures test-set noise for the trained models, not training variance.`,
  ].join('\n'));
  return lines.join('\n');
}
