// Runs a sweep: expand cells, compose and validate all of them, write the state folder, hand the unfinished
// jobs to an executor, then tabulate every finished result. Re-running the same sweep resumes it: finished
// jobs are skipped, failed and missing ones run again, and results are keyed by job id so none is duplicated.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { ConfigError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { FileSystem } from '../../io/file-system.js';
import { writeForestPlot, type ForestRow } from '../../eval/plots.js';
import type { ComparisonResult } from '../../stats/compare.js';
import { didYouMean } from '../../util/suggest.js';
import type { Metric } from '../../../registry/contracts/metric.js';
import type { Executor, ExecutorJob, JobOutcome, WorkerCommand } from '../../../registry/contracts/executor.js';
import type { JobResult } from '../job.js';
import { silentProgress, type Progress } from '../progress.js';
import { planSweep, type ComposeCell, type SweepPlan } from './plan.js';
import { expandCells, type ExpandArgument, type SweepDefinition } from './spec.js';
import {
  exists, readJobError, readJobResult, STATE_VERSION, SweepLayout, writeAtomic,
  type JobErrorFile, type JobManifest, type SweepRecord,
} from './state.js';
import { compareSweepRows, comparisonJson, computeCellIntervals, loadRowRecords, metricRequests, renderComparisonMarkdown, renderIntervalMarkdown, rowLabel, rowLabels } from './comparison.js';
import { renderFoldsCsv, renderMarkdown, renderSummaryCsv, summarizeSweep, TIME_METRIC, type SweepTable } from './table.js';
import type { SweepTracking } from './tracking.js';

/** Default: a lock not refreshed for 10 minutes belongs to a worker that died on another machine. */
export const DEFAULT_LOCK_STALE_MS = 10 * 60 * 1000;

export interface SweepOptions {
  readonly definition: SweepDefinition;
  /** The config module's override parser (sweep syntax → per-value overrides). */
  readonly expand: ExpandArgument;
  /** The config module's composition + validation of one cell. */
  readonly compose: ComposeCell;
  readonly executor: Executor;
  /** argv prefix of `milkit worker` (tests point it at a worker with a fake job runner). */
  readonly worker: WorkerCommand;
  readonly cwd: string;
  readonly logger: Logger;
  readonly progress?: Progress;
  /** State folder; default `<cwd>/outputs/sweeps/<name>-<specHash>`. */
  readonly stateDir?: string;
  readonly lockStaleMs?: number;
  readonly parentRunId?: string;
  /** MLflow runs for the sweep and its cells (folds nest under their cell); omitted → jobs track on their own. */
  readonly tracking?: SweepTracking;
  readonly signal?: AbortSignal;
  /**
   * Checks every composed cell before anything is written or launched (src/core/engine/preflight.ts); throwing
   * stops the sweep with nothing started. Gets the plan and the state folder the sweep will use.
   */
  readonly preflight?: (plan: SweepPlan, stateDir: string) => Promise<void>;
  /** Plan, validate and write the state folder, but run nothing. */
  readonly dryRun?: boolean;
  /** Add the s/slide column to the table (default: unless the sweep lists its metrics). */
  readonly includeTime?: boolean;
  /** The metric plugin of a result metric, for the paired bootstrap (the CLI resolves it from the registry). */
  readonly metricFor?: (name: string, numClasses: number) => Promise<Metric | undefined>;
  /** The file-system seam the state folder (table.md, summary.csv, ...) is written through (default: the real one). */
  readonly fs?: FileSystem;
  /** Paired-bootstrap resamples per repeat (default 1000; 0 = off). */
  readonly bootstrapResamples?: number;
}

export interface SweepFailure {
  readonly id: string;
  readonly label: string;
  readonly error: string;
}

export interface SweepReport {
  readonly stateDir: string;
  readonly cells: number;
  /** Unique jobs of the sweep (cells × folds, minus duplicates). */
  readonly jobs: number;
  /** Jobs finished before this invocation. */
  readonly alreadyDone: number;
  /** Jobs handed to the executor now. */
  readonly launched: number;
  readonly succeeded: number;
  readonly failed: readonly SweepFailure[];
  /** Jobs another live worker was running (left to it). */
  readonly busy: number;
  /** Jobs still without a result at the end. */
  readonly missing: number;
  /** The signal stopped the sweep (table.md is marked partial when jobs are missing). */
  readonly interrupted?: boolean;
  readonly table: SweepTable;
  /** The result table (with ▲/▼/≈ marks when rows are compared). */
  readonly markdown: string;
  /** Every row against the baseline row; absent with a single row. */
  readonly comparison?: ComparisonResult;
  /** The comparison tables, warnings and method footnote (table.md holds the table followed by this). */
  readonly comparisonMarkdown?: string;
}

/** Where a sweep keeps its state when no folder is given. */
export function defaultStateDir(cwd: string, name: string, specHash: string): string {
  return path.join(cwd, 'outputs', 'sweeps', `${name}-${specHash}`);
}

export async function runSweep(options: SweepOptions): Promise<SweepReport> {
  const { definition, logger } = options;
  const progress = options.progress ?? silentProgress;
  const cells = expandCells(definition, options.expand);
  logger.info(`sweep ${definition.name}: ${cells.length} cell${cells.length === 1 ? '' : 's'}; composing and validating each before any job starts.`);
  const plan = await planSweep(definition, cells, options.compose, options.cwd);
  checkBaseline(definition, plan.cells.map((c) => c));
  const writeState = (file: string, content: string): Promise<void> => writeAtomic(file, content, options.fs);
  const layout = new SweepLayout(options.stateDir ?? defaultStateDir(options.cwd, definition.name, plan.specHash));
  await options.preflight?.(plan, layout.dir);
  const experimentFile = path.resolve(options.cwd, definition.experimentFile);
  await writeRecord(layout, definition, plan, experimentFile, options.cwd, options.fs);

  const finished = new Set<string>();
  let previouslyFailed = 0;
  for (const job of plan.jobs) {
    // Each job folder carries its resolved config and overrides (Hydra's .hydra/ lesson), written once.
    if (!(await exists(path.join(layout.jobDir(job.id), 'config.yaml')))) {
      await writeState(path.join(layout.jobDir(job.id), 'config.yaml'), job.configYaml);
      await writeState(path.join(layout.jobDir(job.id), 'overrides.yaml'), `${job.overrides.map((o) => `- ${JSON.stringify(o)}`).join('\n')}\n`);
    }
    if (await exists(layout.resultPath(job.id))) finished.add(job.id);
    else if (await exists(layout.errorPath(job.id))) previouslyFailed += 1;
  }
  const pending = plan.jobs.filter((job) => !finished.has(job.id));
  logger.info(`sweep state: ${layout.dir}`);
  logger.info(`${plan.jobs.length} jobs: ${finished.size} finished, ${pending.length} to run${previouslyFailed ? ` (${previouslyFailed} failed before and run again)` : ''}.`);

  let outcomes: JobOutcome[] = [];
  const cellRuns = !options.dryRun && options.tracking ? await options.tracking.open(plan, layout.dir, definition.name) : undefined;
  if (!options.dryRun && pending.length > 0 && !options.signal?.aborted) {
    const manifest: JobManifest = {
      version: STATE_VERSION,
      sweep: definition.name,
      experimentFile,
      cwd: options.cwd,
      ...(options.parentRunId !== undefined ? { parentRunId: options.parentRunId } : {}),
      lockStaleMs: options.lockStaleMs ?? DEFAULT_LOCK_STALE_MS,
      jobs: pending.map((job, index) => {
        const cellRun = cellRuns?.get(job.cell);
        return { index, id: job.id, fold: job.fold, label: job.label, overrides: [...job.overrides], dir: path.posix.join('..', 'jobs', job.id), ...(cellRun !== undefined ? { parentRunId: cellRun } : {}) };
      }),
    };
    // Content-addressed, so a manifest never changes under a queued Slurm task that still reads it.
    const text = `${JSON.stringify(manifest, null, 2)}\n`;
    const manifestPath = layout.manifestPath(createHash('sha256').update(text).digest('hex').slice(0, 12));
    if (!(await exists(manifestPath))) await writeState(manifestPath, text);
    const executorJobs: ExecutorJob[] = manifest.jobs.map((job) => ({
      index: job.index, id: job.id, label: job.label,
      resultPath: layout.resultPath(job.id), errorPath: layout.errorPath(job.id), logPath: layout.logPath(job.id),
    }));
    const bar = progress.bar('jobs', plan.jobs.length, 'jobs');
    bar.update(finished.size);
    try {
      outcomes = await options.executor.run(
        { name: definition.name, stateDir: layout.dir, manifestPath, jobs: executorJobs, worker: options.worker, cwd: options.cwd, ...(options.signal ? { signal: options.signal } : {}) },
        {
          onDone: (outcome) => {
            const job = executorJobs[outcome.index];
            const label = job?.label ?? outcome.id;
            if (outcome.status === 'failed') logger.warn(`job ${outcome.id} (${label}) failed: ${firstLine(outcome.error)} — log: ${job?.logPath ?? '?'}`);
            if (outcome.status === 'busy') logger.info(`job ${outcome.id} (${label}) is running in another worker; not waiting for it.`);
            bar.increment(`${outcome.status}: ${label}`, outcome.status === 'busy' ? 0 : 1);
          },
          onStatus: (text) => logger.debug(text),
        },
      );
    } finally {
      bar.stop();
    }
  }

  const results = new Map<string, JobResult>();
  const errors = new Map<string, JobErrorFile>();
  for (const job of plan.jobs) {
    const result = await readJobResult(layout.resultPath(job.id));
    if (result) results.set(job.id, result);
    else {
      const error = await readJobError(layout.errorPath(job.id));
      if (error) errors.set(job.id, error);
    }
  }
  const record = buildRecordObject(definition, plan, experimentFile, options.cwd);
  const rows = await loadRowRecords(record, results, layout);
  const repeatOf = new Map(record.cells.flatMap((cell, i) => cell.jobIds.map((id, f) => [id, rows[i]?.folds[f]?.repeat ?? 0] as const)));
  const table = summarizeSweep(record, results, {
    ...(definition.metrics ? { metrics: definition.metrics } : {}),
    ...(options.includeTime !== undefined ? { includeTime: options.includeTime } : {}),
    repeatOf,
  });
  const artifacts = [layout.tableMarkdownPath, layout.summaryCsvPath, layout.foldsCsvPath];
  let comparison: ComparisonResult | undefined;
  let comparisonMarkdown: string | undefined;
  let markdown: string;
  const metricFor = await prepareMetrics(rows, table.metrics, options.metricFor);
  const intervals = computeCellIntervals(record, rows, table.metrics, {
    ...(options.bootstrapResamples !== undefined ? { bootstrapResamples: options.bootstrapResamples } : {}),
    metricFor,
  });
  const intervalMarkdown = renderIntervalMarkdown(record, intervals, table.metrics);
  if (rowLabels(record.cells).length > 1) {
    comparison = compareSweepRows(rows, table.metrics, {
      ...(definition.baseline !== undefined ? { baseline: definition.baseline } : {}),
      ...(definition.alpha !== undefined ? { alpha: definition.alpha } : {}),
      ...(options.bootstrapResamples !== undefined ? { bootstrapResamples: options.bootstrapResamples } : {}),
      metricFor,
    });
    markdown = `${renderMarkdown(table, { marks: marksByCell(record, comparison) })}${intervalMarkdown ? `\n${intervalMarkdown}` : ''}`;
    comparisonMarkdown = renderComparisonMarkdown(comparison);
    await writeState(layout.comparisonJsonPath, comparisonJson(comparison));
    artifacts.push(layout.comparisonJsonPath);
    const forest = await writeForestPlot(layout.forestPlotPath, forestRows(comparison, table.metrics[0]), {
      title: `${definition.name}: ${table.metrics[0] ?? ''} difference from the baseline`,
      xTitle: `Δ ${table.metrics[0] ?? ''} vs baseline (${Math.round(comparison.confidence * 100)}% CI, corrected resampled t-test)`,
      baseline: [...new Set(comparison.rows.filter((r) => r.isBaseline).map((r) => r.label))].join(', '),
    }).catch((error: unknown) => {
      logger.warn(`forest plot not written: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    });
    if (forest) artifacts.push(forest);
    for (const warning of comparison.warnings) logger.warn(warning);
  } else {
    markdown = `${renderMarkdown(table)}${intervalMarkdown ? `\n${intervalMarkdown}` : ''}`;
  }
  // A table over some jobs only says so at the top, with why (a signal, failures) and how to complete it.
  const missing = plan.jobs.length - results.size;
  const interrupted = options.signal?.aborted === true && !options.dryRun;
  const partialNote = missing > 0 && !options.dryRun
    ? `> **Partial**: ${results.size} of ${plan.jobs.length} jobs have a result${interrupted ? ` (the sweep was stopped${typeof options.signal?.reason === 'string' ? ` by ${options.signal.reason}` : ''})` : ''}; run the same sweep command again to run the missing ones.\n\n`
    : '';
  await writeState(layout.tableMarkdownPath, `${partialNote}${markdown}\n${comparisonMarkdown !== undefined ? `${comparisonMarkdown}\n` : ''}`);
  await writeState(layout.summaryCsvPath, renderSummaryCsv(table));
  await writeState(layout.foldsCsvPath, renderFoldsCsv(table, results, errors));
  if (cellRuns) await options.tracking?.close(table, layout.dir, artifacts, comparison, interrupted);

  const failed: SweepFailure[] = outcomes
    .filter((o) => o.status === 'failed')
    .map((o) => ({ id: o.id, label: pending[o.index]?.label ?? o.id, error: errors.get(o.id)?.message ?? o.error ?? 'unknown error' }));
  return {
    stateDir: layout.dir,
    cells: cells.length,
    jobs: plan.jobs.length,
    alreadyDone: finished.size,
    launched: outcomes.length,
    succeeded: outcomes.filter((o) => o.status === 'succeeded').length,
    failed,
    busy: outcomes.filter((o) => o.status === 'busy').length,
    missing,
    ...(interrupted ? { interrupted: true } : {}),
    table,
    markdown,
    ...(comparison ? { comparison } : {}),
    ...(comparisonMarkdown !== undefined ? { comparisonMarkdown } : {}),
  };
}

/** A baseline that names no row is a config error, raised before any job runs. */
function checkBaseline(definition: SweepDefinition, cells: SweepPlan['cells']): void {
  if (definition.baseline === undefined) return;
  const labels = rowLabels(cells);
  if (labels.includes(definition.baseline)) return;
  throw new ConfigError('unknown-baseline', `baseline "${definition.baseline}" is not a row of the sweep.${didYouMean(definition.baseline, labels)}`, {
    where: { ...(definition.file ? { file: definition.file } : {}), key: 'baseline' },
    hint: `Rows: ${labels.map((l) => `"${l}"`).join(', ')}.`,
  });
}

/** The metric plugins the bootstraps need, resolved once per (metric, class count) seen in the predictions. */
async function prepareMetrics(rows: Awaited<ReturnType<typeof loadRowRecords>>, metrics: readonly string[], resolve: SweepOptions['metricFor']): Promise<(name: string, numClasses: number) => Metric | undefined> {
  if (!resolve) return () => undefined;
  // Datasets of one sweep may differ in their number of classes, and a level (coarse_*) has its own: each gets the
  // plugin created for its own.
  const byKey = new Map<string, Metric>();
  for (const { name, numClasses } of metricRequests(rows, metrics)) {
    const metric = await resolve(name, numClasses);
    if (metric) byKey.set(`${name}/${numClasses}`, metric);
  }
  return (name, numClasses) => byKey.get(`${name}/${numClasses}`);
}

/** The ▲/▼/≈ of each non-baseline cell, by cell index and metric. */
function marksByCell(record: SweepRecord, comparison: ComparisonResult): Map<number, Record<string, string>> {
  const marks = new Map<number, Record<string, string>>();
  for (const cell of record.cells) {
    const row = comparison.rows.find((r) => r.label === rowLabel(cell) && r.group === cell.dataset);
    if (!row || row.isBaseline) continue;
    const entry: Record<string, string> = {};
    for (const m of row.metrics) if (m.mark) entry[m.metric] = m.mark;
    marks.set(cell.index, entry);
  }
  return marks;
}

/** Forest-plot rows of one metric: each tested row's t-test effect and interval. */
function forestRows(comparison: ComparisonResult, metric: string | undefined): ForestRow[] {
  const rows: ForestRow[] = [];
  for (const row of comparison.rows) {
    const m = row.metrics.find((x) => x.metric === metric);
    if (!m?.tTest?.ci) continue;
    rows.push({ label: row.group ? `${row.group} · ${row.label}` : row.label, estimate: m.tTest.effect, low: m.tTest.ci[0], high: m.tTest.ci[1], mark: m.mark ?? '≈' });
  }
  return rows;
}

function firstLine(text: string | undefined): string {
  return (text ?? 'unknown error').split('\n')[0] ?? '';
}

function buildRecordObject(definition: SweepDefinition, plan: SweepPlan, experimentFile: string, cwd: string): SweepRecord {
  return {
    version: STATE_VERSION,
    name: definition.name,
    specHash: plan.specHash,
    experimentFile,
    cwd,
    grid: [...definition.grid],
    zip: definition.zip.map((group) => [...group]),
    ...(definition.metrics ? { metrics: [...definition.metrics] } : {}),
    cells: [...plan.cells],
  };
}

async function writeRecord(layout: SweepLayout, definition: SweepDefinition, plan: SweepPlan, experimentFile: string, cwd: string, fs?: FileSystem): Promise<void> {
  const record = buildRecordObject(definition, plan, experimentFile, cwd);
  await writeAtomic(layout.recordPath, `${JSON.stringify(record, null, 2)}\n`, fs);
}
