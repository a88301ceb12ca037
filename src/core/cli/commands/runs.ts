// `milkit runs list|compare|show`: runs from the local store (default) or a server, in the terminal — for
// users with no MLflow UI at hand. Filters: params.<k>=v, metrics.<k>>=x, tags.<k>=v, status, name~text.
import path from 'node:path';
import type { Command } from 'commander';
import type { Metric } from '../../../registry/contracts/metric.js';
import type { FoldPredictionSet } from '../../stats/compare.js';
import { TrackingError } from '../../errors.js';
import type { RunRow, TableFormat } from '../../tracking/runs-query.js';
import { loadActionCode, type CliApp } from '../app.js';

/**
 * The store readers, queries and statistics the actions use, loaded when an action runs: they pull in axios,
 * zod and the stats code, which `milkit --help` must not pay (BENCHMARKS.md "coldstart").
 */
async function loadQueries() {
  const [trackerFactory, restClient, runsQuery, fileStoreReader, statsReport, statsCompare] = await loadActionCode('runs', () => Promise.all([
    import('../../tracking/create-tracker.js'),
    import('../../tracking/rest-client.js'),
    import('../../tracking/runs-query.js'),
    import('../../tracking/file-store-reader.js'),
    import('../../stats/report.js'),
    import('../../stats/compare.js'),
  ]));
  return {
    localStoreRoot: trackerFactory.localStoreRoot,
    restEnvOptions: trackerFactory.restEnvOptions,
    MlflowRestClient: restClient.MlflowRestClient,
    FileStoreReader: fileStoreReader.FileStoreReader,
    methodFootnote: statsReport.methodFootnote,
    readFoldPredictions: statsReport.readFoldPredictions,
    resolveMetric: statsCompare.resolveMetric,
    ...runsQuery,
  };
}
type Queries = Awaited<ReturnType<typeof loadQueries>>;


const collect = (value: string, previous: string[]): string[] => [...previous, value];
const list = (value: string): string[] => value.split(',').map((s) => s.trim()).filter(Boolean);
const FORMATS: readonly TableFormat[] = ['text', 'md', 'csv', 'json'];

interface SourceOptions {
  uri?: string;
  mlruns?: string;
  experiment: string[];
  where: string[];
  sort: string[];
  limit?: string;
  format: string;
  parent?: string;
  level?: string;
}

function withSourceOptions(cmd: Command): Command {
  return cmd
    .option('--uri <uri>', 'read a server (http(s)://...) instead of the local store')
    .option('--mlruns <dir>', 'local store to read (default: ./mlruns)')
    .option('-e, --experiment <name>', 'experiment name (repeatable; required with --uri)', collect, [] as string[])
    .option('-w, --where <filter>', 'keep runs matching, e.g. params.model.aggregator.name=abmil, metrics.test/auc_mean>=0.9, status=FINISHED, name~fold (repeatable)', collect, [] as string[])
    .option('--level <level>', 'only runs at this level of a run tree (sweep, cell, experiment, fold)')
    .option('--parent <run>', 'only children of this run (id or id prefix)')
    .option('-s, --sort <field>', 'sort key, e.g. metrics.test/auc_mean:desc (repeatable; default newest first)', collect, [] as string[])
    .option('-n, --limit <n>', 'show at most n runs')
    .option('--format <format>', `output format: ${FORMATS.join(', ')}`, 'text');
}

function checkFormat(format: string): TableFormat {
  if (!(FORMATS as readonly string[]).includes(format)) throw new TrackingError('invalid-option', `--format must be one of ${FORMATS.join(', ')}, got "${format}".`);
  return format as TableFormat;
}

/** Resolves a run id or unique prefix among rows. */
function pickRun(rows: readonly RunRow[], idOrPrefix: string): RunRow {
  const hits = rows.filter((r) => r.runId === idOrPrefix || r.runId.startsWith(idOrPrefix));
  if (hits.length === 1 && hits[0]) return hits[0];
  if (hits.length === 0) throw new TrackingError('unknown-run', `no run "${idOrPrefix}" among ${rows.length} run(s).`, { hint: 'See `milkit runs list` for ids.' });
  throw new TrackingError('ambiguous-run', `"${idOrPrefix}" matches ${hits.length} runs (${hits.slice(0, 4).map((r) => r.runId).join(', ')}...).`, { hint: 'Give more characters of the id.' });
}

async function loadRows(q: Queries, app: CliApp, opts: SourceOptions): Promise<RunRow[]> {
  return selectRows(q, await loadAllRows(q, app, opts), opts);
}

/** Every run of the source, before filters (fold runs included, for comparisons). */
async function loadAllRows(q: Queries, app: CliApp, opts: SourceOptions): Promise<RunRow[]> {
  let rows: RunRow[];
  if (opts.uri && /^https?:\/\//i.test(opts.uri)) {
    if (opts.experiment.length === 0) throw new TrackingError('missing-experiment', 'reading a server needs --experiment <name>.', { hint: 'Name the MLflow experiment(s) to list.' });
    const client = new q.MlflowRestClient({ uri: opts.uri, ...q.restEnvOptions(app.env), logger: app.logger });
    rows = await q.loadRemoteRuns(client, { experiments: opts.experiment });
  } else {
    const root = q.localStoreRoot(app.cwd, app.env, opts.mlruns ?? opts.uri);
    rows = await q.loadLocalRuns(root, { ...(opts.experiment.length > 0 ? { experiments: opts.experiment } : {}), logger: app.logger });
  }
  return rows;
}

function selectRows(q: Queries, rows: readonly RunRow[], opts: SourceOptions): RunRow[] {
  const filters = opts.where.map(q.parseFilter);
  if (opts.level) filters.push({ field: 'tags.milkit.level', op: '=', value: opts.level });
  let out = q.applyFilters(rows, filters);
  if (opts.parent) {
    const parent = pickRun(rows, opts.parent);
    out = out.filter((r) => r.parentRunId === parent.runId);
  }
  out = q.sortRows(out, opts.sort);
  if (opts.limit !== undefined) {
    const n = Number(opts.limit);
    if (!Number.isInteger(n) || n <= 0) throw new TrackingError('invalid-option', `--limit must be a positive integer, got "${opts.limit}".`);
    out = out.slice(0, n);
  }
  return out;
}

/** Reads a fold run's predictions.csv artifact from the local store (once per run). */
function localPredictions(q: Queries, root: string, app: CliApp): (fold: RunRow) => Promise<FoldPredictionSet | undefined> {
  const reader = new q.FileStoreReader(root, app.logger);
  const cache = new Map<string, Promise<FoldPredictionSet | undefined>>();
  return (fold) => {
    let entry = cache.get(fold.runId);
    if (!entry) {
      entry = reader.readRun(fold.experimentId, fold.runId, { history: false })
        .then((run) => (run ? q.readFoldPredictions(path.join(run.dir, 'artifacts', 'predictions.csv')) : undefined));
      cache.set(fold.runId, entry);
    }
    return entry;
  };
}

/**
 * The metric plugins the bootstrap recomputes, each created for the class count of the level it is computed on (read
 * from the baseline's first fold): `auc` on the flat predictions, `coarse_auc` as `auc` on the coarse ones.
 */
async function metricPlugins(q: Queries, app: CliApp, compared: readonly RunRow[], all: readonly RunRow[], predictionsOf: ((fold: RunRow) => Promise<FoldPredictionSet | undefined>) | undefined, wanted: readonly string[] | undefined): Promise<(name: string, numClasses: number) => Metric | undefined> {
  if (!predictionsOf) return () => undefined;
  const firstFold = all.find((r) => r.parentRunId === compared[0]?.runId && r.tags['milkit.level'] === 'fold');
  const predictions = firstFold ? await predictionsOf(firstFold) : undefined;
  if (predictions === undefined) return () => undefined;
  const registry = app.createRegistry();
  const known = new Set(registry.ids('metric'));
  const names = (wanted ?? q.compareColumns(compared).metrics).map((m) => m.replace(/^test\//, ''));
  const metrics = new Map<string, Metric>();
  for (const name of names) {
    const target = q.resolveMetric(name, predictions, (plugin) => known.has(`metric/${plugin}`));
    const key = target && `${target.name}/${target.numClasses}`;
    if (!target || !key || metrics.has(key)) continue;
    metrics.set(key, registry.create(await registry.resolve('metric', target.name, { key: 'eval.metrics' }), { numClasses: target.numClasses }));
  }
  return (name, numClasses) => metrics.get(`${name}/${numClasses}`);
}

export function register(program: Command, app: CliApp): void {
  const runs = program.command('runs').description('list, compare and show tracked runs (local store or server)');

  withSourceOptions(runs.command('list'))
    .description('one line per run with chosen columns')
    .option('-c, --columns <fields>', 'extra columns, comma-separated fields (default: the 4 most common metrics)', list)
    .option('--digits <n>', 'decimals of numbers', '4')
    .action(async (opts: SourceOptions & { columns?: string[]; digits: string }) => {
      const format = checkFormat(opts.format);
      const q = await loadQueries();
      const rows = await loadRows(q, app, opts);
      const columns = opts.columns ?? q.metricKeys(rows).slice(0, 4).map((k) => `metrics.${k}`);
      if (rows.length === 0) {
        app.io.out('no runs match.');
        return;
      }
      app.io.out(q.renderTable(q.listTable(rows, columns, Number(opts.digits)), format));
    });

  withSourceOptions(runs.command('compare'))
    .description('paper-style table: differing params and metrics (mean ± std across folds when logged) per run; * marks the best')
    .argument('[runs...]', 'run ids or prefixes (default: every run matching the filters)')
    .option('-m, --metrics <names>', 'metrics to show, comma-separated; "test/auc" shows test/auc_mean ± test/auc_std', list)
    .option('-p, --params <keys>', 'params to show (default: those that differ)', list)
    .option('--digits <n>', 'decimals', '3')
    .option('-b, --baseline <run>', 'test every run against this one (id or prefix) over their fold runs: paired Δ, CI, Holm-adjusted p, ▲/▼/≈')
    .option('--alpha <level>', 'significance level of the marks after Holm correction', '0.05')
    .option('--bootstrap <n>', 'paired patient-bootstrap resamples (local store: read from the fold runs\' predictions.csv; 0 = off)', '1000')
    .action(async (ids: string[], opts: SourceOptions & { metrics?: string[]; params?: string[]; digits: string; baseline?: string; alpha: string; bootstrap: string }) => {
      const format = checkFormat(opts.format);
      const q = await loadQueries();
      const all = await loadAllRows(q, app, opts);
      const rows = selectRows(q, all, opts);
      const chosen = ids.length > 0 ? ids.map((id) => pickRun(rows, id)) : rows;
      if (chosen.length === 0) {
        app.io.out('no runs match.');
        return;
      }
      if (opts.baseline !== undefined) {
        const baseline = pickRun(all, opts.baseline);
        const compared = chosen.some((r) => r.runId === baseline.runId) ? chosen : [baseline, ...chosen];
        const alpha = Number(opts.alpha);
        if (!(alpha > 0 && alpha < 1)) throw new TrackingError('invalid-option', `--alpha must be between 0 and 1, got "${opts.alpha}".`);
        const resamples = Number(opts.bootstrap);
        if (!Number.isInteger(resamples) || resamples < 0) throw new TrackingError('invalid-option', `--bootstrap must be a whole number ≥ 0, got "${opts.bootstrap}".`);
        const local = !(opts.uri && /^https?:\/\//i.test(opts.uri));
        const predictionsOf = local ? localPredictions(q, q.localStoreRoot(app.cwd, app.env, opts.mlruns ?? opts.uri), app) : undefined;
        const metricFor = await metricPlugins(q, app, compared, all, predictionsOf, opts.metrics);
        const { table, comparison } = await q.baselineCompareTable(compared, all, {
          baseline, alpha, digits: Number(opts.digits), bootstrapResamples: resamples, metricFor,
          ...(predictionsOf ? { predictionsOf } : {}),
          ...(opts.metrics ? { metrics: opts.metrics } : {}), ...(opts.params ? { params: opts.params } : {}),
        });
        app.io.out(q.renderTable(table, format));
        if (format === 'text' || format === 'md') {
          for (const row of comparison.rows) for (const flag of row.flags) app.io.out(`\n- ${row.label.slice(0, 8)}: ${flag}`);
          for (const warning of comparison.warnings) app.io.out(`\n- ${warning}`);
          app.io.out(`\n${q.methodFootnote(comparison)}`);
        }
        return;
      }
      app.io.out(q.renderTable(q.compareTable(chosen, { digits: Number(opts.digits), ...(opts.metrics ? { metrics: opts.metrics } : {}), ...(opts.params ? { params: opts.params } : {}) }), format));
    });

  runs
    .command('show')
    .description('one run: info, params, tags and the latest value (and point count) of each metric')
    .argument('<run>', 'run id or prefix')
    .option('--mlruns <dir>', 'local store to read (default: ./mlruns)')
    .action(async (id: string, opts: { mlruns?: string }) => {
      const q = await loadQueries();
      const root = q.localStoreRoot(app.cwd, app.env, opts.mlruns);
      const rows = await q.loadLocalRuns(root, { logger: app.logger });
      const row = pickRun(rows, id);
      const run = await new q.FileStoreReader(root, app.logger).readRun(row.experimentId, row.runId);
      if (!run) throw new TrackingError('unknown-run', `run ${row.runId} vanished from ${root}.`);
      app.io.out(`${row.runId}  ${row.experimentName}/${row.runName}  ${row.status}${row.parentRunId ? `  parent ${row.parentRunId}` : ''}`);
      app.io.out('params:');
      for (const [k, v] of Object.entries(run.params).sort(([a], [b]) => a.localeCompare(b))) app.io.out(`  ${k} = ${v}`);
      app.io.out('tags:');
      for (const [k, v] of q.visibleTags(run.tags)) app.io.out(`  ${k} = ${v.length > 120 ? `${v.slice(0, 117)}...` : v}`);
      app.io.out('metrics (latest, points):');
      for (const [k, points] of Object.entries(run.metrics).sort(([a], [b]) => a.localeCompare(b))) {
        app.io.out(`  ${k} = ${q.formatNumber(row.metrics[k], 4)}  (${points.length})`);
      }
    });
}
