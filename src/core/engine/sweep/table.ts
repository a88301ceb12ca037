// The sweep's result table: every cell's metrics as mean ± sample std over its finished folds, in the sweep's
// cell order (the sweep file's row order). With datasets the table pivots to rows × dataset columns plus an
// Average column (the layout of an ablation table such as HDMIL's Table 3). Markdown for people, CSV for code.
import { stringify } from 'csv-stringify/sync';
import { summarizeRepeats } from '../../stats/repeats.js';
import type { JobResult } from '../job.js';
import type { JobErrorFile, PlannedCellRecord, SweepRecord } from './state.js';

/** Pseudo-metric holding the mean inference time per slide of each fold. */
export const TIME_METRIC = 's/slide';

export interface MetricStat {
  readonly mean: number | null;
  /** Sample standard deviation (n − 1); null with fewer than two values. */
  readonly std: number | null;
  /** Folds that reported a finite value. */
  readonly n: number;
  /** With repeated splits: the repeats behind the value; mean and std are then over the per-repeat means. */
  readonly repeats?: number;
}

export interface CellSummary {
  readonly cell: PlannedCellRecord;
  /** Folds with a result. */
  readonly done: number;
  readonly metrics: Readonly<Record<string, MetricStat>>;
}

export interface SweepTable {
  readonly metrics: readonly string[];
  /** Grid parameter keys, in first-appearance order. */
  readonly params: readonly string[];
  readonly cells: readonly CellSummary[];
}

export interface SummarizeOptions {
  /** Columns to show, in order; default: every metric any result reports, in first-appearance order. */
  readonly metrics?: readonly string[];
  /** Add the `s/slide` column (default: when no metric list is given; a list may name `s/slide` itself). */
  readonly includeTime?: boolean;
  /** The split repeat of each job id (repeated splits); a cell spanning several repeats reports ± over per-repeat means. */
  readonly repeatOf?: ReadonlyMap<string, number>;
}

/** Mean and sample std of the finite values. */
export function meanStd(values: readonly (number | null | undefined)[]): MetricStat {
  const finite = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  const n = finite.length;
  if (n === 0) return { mean: null, std: null, n: 0 };
  const mean = finite.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, std: null, n };
  const variance = finite.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  return { mean, std: Math.sqrt(variance), n };
}

export function summarizeSweep(record: SweepRecord, results: ReadonlyMap<string, JobResult>, options: SummarizeOptions = {}): SweepTable {
  const discovered: string[] = [];
  for (const cell of record.cells) {
    for (const id of cell.jobIds) {
      for (const key of Object.keys(results.get(id)?.metrics ?? {})) if (!discovered.includes(key)) discovered.push(key);
    }
  }
  const metrics = [...(options.metrics ?? discovered)];
  if ((options.includeTime ?? options.metrics === undefined) && !metrics.includes(TIME_METRIC)) metrics.push(TIME_METRIC);
  const params: string[] = [];
  for (const cell of record.cells) for (const key of Object.keys(cell.params)) if (!params.includes(key)) params.push(key);
  const cells = record.cells.map((cell) => {
    const found = cell.jobIds.map((id) => results.get(id)).filter((r): r is JobResult => r !== undefined);
    const repeatOf = (id: string): number => options.repeatOf?.get(id) ?? 0;
    const repeated = new Set(cell.jobIds.map(repeatOf)).size > 1;
    const stats: Record<string, MetricStat> = {};
    for (const metric of metrics) {
      const valueOf = (r: JobResult): number | null | undefined => (metric === TIME_METRIC ? r.secondsPerSlide : r.metrics[metric]);
      const plain = meanStd(found.map(valueOf));
      if (!repeated) {
        stats[metric] = plain;
        continue;
      }
      // MHIM-MIL's convention: ± is the spread of the per-repeat means, not of all folds.
      const summary = summarizeRepeats(found.map((r) => ({ repeat: repeatOf(r.id), value: valueOf(r) })));
      stats[metric] = { mean: summary.mean, std: summary.std, n: plain.n, repeats: summary.repeats };
    }
    return { cell, done: found.length, metrics: stats };
  });
  return { metrics, params, cells };
}

function formatNumber(value: number): string {
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e5)) return value.toExponential(2);
  return value.toFixed(4);
}

/** `0.8123 ± 0.0101`, `0.8123 (n=1)`, or `—` when no fold reported the metric. */
export function formatStat(stat: MetricStat | undefined, folds: number): string {
  if (!stat || stat.mean === null) return '—';
  const spread = stat.std === null ? '' : ` ± ${formatNumber(stat.std)}`;
  const count = stat.n < folds ? ` (n=${stat.n}/${folds})` : '';
  return `${formatNumber(stat.mean)}${spread}${count}`;
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

function markdown(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]): string => `| ${cells.map(escapeCell).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The identity of a table row in the pivoted layout: the row name plus the grid values. */
function rowKey(cell: PlannedCellRecord, params: readonly string[]): string {
  return JSON.stringify([cell.row ?? null, params.map((p) => cell.params[p] ?? null)]);
}

export interface RenderOptions {
  /** A mark (▲/▼/≈) per cell index and metric, appended to the cell's value. */
  readonly marks?: ReadonlyMap<number, Readonly<Record<string, string>>>;
}

/** The table as markdown: one line per cell, or rows × datasets (+ Average) when the sweep has datasets. */
export function renderMarkdown(table: SweepTable, options: RenderOptions = {}): string {
  const text = renderMarkdownTable(table, options);
  const repeats = Math.max(0, ...table.cells.flatMap((c) => Object.values(c.metrics).map((m) => m.repeats ?? 0)));
  return repeats > 1 ? `${text}

± is the sample standard deviation of the ${repeats} per-repeat means (each the mean over that repeat's folds).` : text;
}

function renderMarkdownTable(table: SweepTable, options: RenderOptions): string {
  const withMark = (cell: PlannedCellRecord, metric: string, text: string): string => {
    const mark = options.marks?.get(cell.index)?.[metric];
    return mark === undefined || text === '—' ? text : `${text} ${mark}`;
  };
  const hasRows = table.cells.some((c) => c.cell.row !== undefined);
  const datasets = [...new Set(table.cells.map((c) => c.cell.dataset).filter((d): d is string => d !== undefined))];
  const labelHeader = [...(hasRows ? ['row'] : []), ...table.params];
  const labels = (cell: PlannedCellRecord): string[] => [...(hasRows ? [cell.row ?? ''] : []), ...table.params.map((p) => cell.params[p] ?? '')];
  if (datasets.length === 0) {
    const header = [...(labelHeader.length ? labelHeader : ['cell']), 'folds', ...table.metrics];
    const rows = table.cells.map((c) => [
      ...(labelHeader.length ? labels(c.cell) : [c.cell.name]),
      `${c.done}/${c.cell.folds}`,
      ...table.metrics.map((m) => withMark(c.cell, m, formatStat(c.metrics[m], c.cell.folds))),
    ]);
    return markdown(header, rows);
  }
  const order: string[] = [];
  const byRow = new Map<string, Map<string, CellSummary>>();
  for (const summary of table.cells) {
    const key = rowKey(summary.cell, table.params);
    if (!byRow.has(key)) {
      byRow.set(key, new Map());
      order.push(key);
    }
    byRow.get(key)?.set(summary.cell.dataset ?? '', summary);
  }
  const header = [...(labelHeader.length ? labelHeader : ['cell']), ...datasets.flatMap((d) => table.metrics.map((m) => `${d} ${m}`)), ...table.metrics.map((m) => `Average ${m}`)];
  const rows = order.map((key) => {
    const perDataset = byRow.get(key) as Map<string, CellSummary>;
    const first = [...perDataset.values()][0] as CellSummary;
    const values = datasets.flatMap((d) => table.metrics.map((m) => {
      const summary = perDataset.get(d);
      return summary ? withMark(summary.cell, m, formatStat(summary.metrics[m], summary.cell.folds)) : '—';
    }));
    // The Average column is the mean of the per-dataset means, shown only when every dataset has one.
    const averages = table.metrics.map((m) => {
      const means = datasets.map((d) => perDataset.get(d)?.metrics[m]?.mean ?? null);
      return means.every((v): v is number => v !== null) ? formatNumber(means.reduce((a, b) => a + b, 0) / means.length) : '—';
    });
    return [...(labelHeader.length ? labels(first.cell) : [first.cell.row ?? first.cell.name]), ...values, ...averages];
  });
  return markdown(header, rows);
}

/** One CSV line per cell with full-precision mean, std and n of every metric. */
export function renderSummaryCsv(table: SweepTable): string {
  const header = ['cell', 'row', 'dataset', ...table.params, 'folds', 'done', ...table.metrics.flatMap((m) => [`${m} mean`, `${m} std`, `${m} n`])];
  const rows = table.cells.map((c) => [
    c.cell.name, c.cell.row ?? '', c.cell.dataset ?? '', ...table.params.map((p) => c.cell.params[p] ?? ''), c.cell.folds, c.done,
    ...table.metrics.flatMap((m) => {
      const stat = c.metrics[m];
      return [stat?.mean ?? '', stat?.std ?? '', stat?.n ?? 0];
    }),
  ]);
  return stringify([header, ...rows]);
}

/** One CSV line per cell × fold: job id, status, epochs and every metric (failed folds carry their error). */
export function renderFoldsCsv(table: SweepTable, results: ReadonlyMap<string, JobResult>, errors: ReadonlyMap<string, JobErrorFile>): string {
  const metrics = table.metrics.filter((m) => m !== TIME_METRIC);
  const header = ['cell', 'fold', 'job', 'status', 'epochs', 's/slide', ...metrics, 'error'];
  const rows: Array<Array<string | number>> = [];
  for (const { cell } of table.cells) {
    cell.jobIds.forEach((id, fold) => {
      const result = results.get(id);
      const error = errors.get(id);
      rows.push([
        cell.name, fold, id, result ? 'succeeded' : error ? 'failed' : 'missing', result?.epochs ?? '', result?.secondsPerSlide ?? '',
        ...metrics.map((m) => result?.metrics[m] ?? ''), result ? '' : (error?.message.split('\n')[0] ?? ''),
      ]);
    });
  }
  return stringify([header, ...rows]);
}
