// `milkit sweep EXP a=1,2 b=x,y [--zip a,b] [--file table.yaml] [--executor local|slurm] [--workers N]`:
// a grid (Hydra syntax), zipped pairs, or a sweep file of named rows × datasets; every cell is composed and
// validated first, then the unfinished cell × fold jobs run on the executor; prints the result table.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import type { Command } from 'commander';
import { ConfigError, InterruptedError } from '../../errors.js';
import { clearStopRequest, installSignalHandlers, stopRequested } from '../../engine/lifecycle.js';
import type { ResolvedExperiment } from '../../config/index.js';
import type { Registry } from '../../../registry/registry.js';
import type { SweepTracking } from '../../engine/sweep/tracking.js';
import type { ComposeCell, SweepPlan } from '../../engine/sweep/plan.js';
import type { ExpandArgument, SweepDefinition, SweepFile } from '../../engine/sweep/spec.js';
import { loadActionCode, type CliApp } from '../app.js';

/**
 * What the action needs — config composition, the sweep engine, preflight, progress, yaml — loaded when it
 * runs: these modules pull in zod and tfjs, which `milkit --help` must not pay (BENCHMARKS.md "coldstart").
 */
async function loadSweepModules() {
  const [config, preflight, tracking, progress, engine, spec, yaml] = await loadActionCode('sweep', () => Promise.all([
    import('../../config/index.js'),
    import('../../engine/preflight.js'),
    import('../../engine/sweep/tracking.js'),
    import('../../engine/progress.js'),
    import('../../engine/sweep/engine.js'),
    import('../../engine/sweep/spec.js'),
    import('yaml'),
  ]));
  return {
    expandSweep: config.expandSweep,
    formatOverride: config.formatOverride,
    groupOptions: config.groupOptions,
    loadExperiment: config.loadExperiment,
    parseOverride: config.parseOverride,
    slotKindOfGroup: config.slotKindOfGroup,
    preflight: preflight.preflight,
    trackingFolders: preflight.trackingFolders,
    createSweepTracking: tracking.createSweepTracking,
    createProgress: progress.createProgress,
    progressLogger: progress.progressLogger,
    runSweep: engine.runSweep,
    mergeGridArguments: spec.mergeGridArguments,
    normaliseDatasets: spec.normaliseDatasets,
    readSweepFile: spec.readSweepFile,
    SweepFileSchema: spec.SweepFileSchema,
    parseYaml: yaml.parse,
  };
}
type SweepModules = Awaited<ReturnType<typeof loadSweepModules>>;


interface SweepFlags {
  readonly file?: string;
  readonly zip: string[];
  readonly executor?: string;
  readonly workers?: string;
  readonly executorOption: string[];
  readonly name?: string;
  readonly dir?: string;
  readonly dryRun?: boolean;
  readonly metrics?: string;
  readonly baseline?: string;
  readonly alpha?: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/**
 * V8 flags of every worker process. Workers are sized one per core, so V8's helper threads for concurrent and
 * parallel GC would run on the other workers' cores: two paired training processes each ran 17% slower than
 * alone with them, 10% slower with GC on the main thread, and a lone process was no slower (BENCHMARKS.md, sweep).
 */
const WORKER_NODE_FLAGS = ['--single-threaded-gc'];

/**
 * The package's own CLI entry: what every worker process runs (`node bin/milkit.mjs worker ...`). This module
 * runs from src/core/cli/commands/ (sources) or dist/src/core/cli/commands/ (build), so the package root is the
 * nearest folder up that holds bin/milkit.mjs; the bin then picks the build or, with MILKIT_SOURCE=1 (inherited
 * by the workers), the sources, exactly as the parent did.
 */
const MILKIT_BIN = findPackageBin(path.dirname(fileURLToPath(import.meta.url)));

function findPackageBin(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'bin', 'milkit.mjs');
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`no bin/milkit.mjs above ${from}: the milkit package is incomplete`);
  }
}

/** Sweep arguments through the config module's Hydra parser: `a=1,2` → [`a=1`, `a=2`]; glob() reads the group's options. */
function expander(m: SweepModules, experimentFile: string, cwd: string, registry: Registry): ExpandArgument {
  // Plugin slot groups (model/aggregator ...) offer every registered plugin, as in composition.
  const impliedOptions = (group: string): readonly string[] | undefined => {
    const kind = m.slotKindOfGroup(group);
    return kind ? registry.names(kind) : undefined;
  };
  return (argument) => {
    const override = m.parseOverride(argument);
    if (!override.sweep) return { key: override.key, overrides: [argument] };
    const options = override.sweep.type === 'glob' ? m.groupOptions(experimentFile, override.key, { cwd, impliedOptions }) : undefined;
    return { key: override.key, overrides: m.expandSweep(override, options).map((value) => m.formatOverride(override, value)) };
  };
}

/** `key=value` executor options, values typed as YAML scalars (`pollSeconds=5` is a number). */
function parseExecutorOptions(m: SweepModules, pairs: readonly string[]): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ConfigError('invalid-cli-value', `--executor-option expects key=value, got "${pair}".`, { hint: 'Example: --executor-option partition=gpu --executor-option time=02:00:00.' });
    options[pair.slice(0, eq)] = m.parseYaml(pair.slice(eq + 1)) as unknown;
  }
  return options;
}

function parseWorkers(text: string): number {
  const workers = Number(text);
  if (!Number.isInteger(workers) || workers < 1) throw new ConfigError('invalid-cli-value', `--workers expects a whole number ≥ 1, got "${text}".`, { hint: 'Example: --workers 2.' });
  return workers;
}

function parseAlpha(text: string): number {
  const alpha = Number(text);
  if (!(alpha > 0 && alpha < 1)) throw new ConfigError('invalid-cli-value', `--alpha expects a number between 0 and 1, got "${text}".`, { hint: 'Example: --alpha 0.05.' });
  return alpha;
}

async function definitionFrom(m: SweepModules, app: CliApp, experimentArg: string | undefined, args: readonly string[], flags: SweepFlags): Promise<{ definition: SweepDefinition; sweepFile?: SweepFile }> {
  let positional = [...args];
  let experiment = experimentArg;
  // With --file, the experiment may come from the file; then the first positional is already an override.
  if (flags.file && experiment !== undefined && experiment.includes('=')) {
    positional = [experiment, ...positional];
    experiment = undefined;
  }
  const fileArg = flags.file ? path.resolve(app.cwd, flags.file) : undefined;
  const sweepFile = fileArg ? await m.readSweepFile(fileArg) : undefined;
  const experimentFile = experiment ?? sweepFile?.experiment;
  if (experimentFile === undefined) {
    throw new ConfigError('sweep-missing-experiment', 'no experiment config given.', {
      hint: 'Pass it first (milkit sweep experiments/x.yaml a=1,2) or set `experiment:` in the sweep file.',
    });
  }
  const name = flags.name ?? sweepFile?.name ?? (fileArg ? path.basename(fileArg).replace(/\.[^.]+$/, '') : path.basename(experimentFile).replace(/\.[^.]+$/, ''));
  const metrics = flags.metrics ? flags.metrics.split(',').map((metric) => metric.trim()).filter(Boolean) : sweepFile?.metrics;
  const datasets = m.normaliseDatasets(sweepFile?.datasets);
  const baseline = flags.baseline ?? sweepFile?.baseline;
  const alpha = flags.alpha !== undefined ? parseAlpha(flags.alpha) : sweepFile?.alpha;
  return {
    definition: {
      name,
      experimentFile,
      grid: m.mergeGridArguments(sweepFile?.grid ?? [], positional),
      zip: [...(sweepFile?.zip ?? []), ...flags.zip.map((group) => group.split(',').map((k) => k.trim()).filter(Boolean))],
      ...(sweepFile?.rows ? { rows: sweepFile.rows } : {}),
      ...(datasets ? { datasets } : {}),
      ...(metrics ? { metrics } : {}),
      ...(baseline !== undefined ? { baseline } : {}),
      ...(alpha !== undefined ? { alpha } : {}),
      ...(fileArg ? { file: fileArg } : {}),
    },
    ...(sweepFile ? { sweepFile } : {}),
  };
}

export function register(program: Command, app: CliApp): void {
  program
    .command('sweep')
    .description('run a grid / zipped / ablation-table sweep of an experiment: every cell × fold is a resumable job')
    .argument('[experiment]', 'experiment config (optional when the sweep file names one)')
    .argument('[overrides...]', 'overrides; sweep values multiply the cells: a=1,2 · choice(a,b) · range(1,5) · glob(*)')
    .option('-f, --file <sweep.yaml>', 'sweep file: rows [{name, overrides}], datasets, grid, zip, metrics, executor')
    .option('--zip <keys>', 'comma-separated swept keys whose values pair up instead of multiplying (repeatable): n=5,10 a=0.5,0.7 --zip n,a', collect, [])
    .option('--executor <name>', 'where jobs run: local (child processes) or slurm (sbatch --array); default local')
    .option('-w, --workers <n>', 'local executor: worker processes at once (default: CPU cores)')
    .option('--executor-option <key=value>', 'executor option (repeatable), e.g. partition=gpu time=02:00:00 cpusPerTask=4', collect, [])
    .option('--name <name>', 'sweep name (state folder outputs/sweeps/<name>-<hash>)')
    .option('--dir <folder>', 'state folder to use instead of outputs/sweeps/<name>-<hash>')
    .option('--metrics <list>', 'table columns, comma-separated result metrics (default: all)')
    .option('--baseline <row>', 'row the others are tested against (default: the first row; a sweep file may set baseline:)')
    .option('--alpha <level>', 'significance level of the ▲/▼ marks after Holm correction (default 0.05)')
    .option('--dry-run', 'compose and validate every cell and write the state folder, run nothing')
    .addHelpText('after', [
      '',
      'Examples:',
      '  milkit sweep experiments/quickstart.yaml train.optimizer.lr=1e-4,2e-4 model/aggregator=mean-pool,max-pool --workers 2',
      '  milkit sweep experiments/quickstart.yaml train.epochs=4,8 train.optimizer.lr=1e-3,2e-3 --zip train.epochs,train.optimizer.lr   # (4,1e-3) and (8,2e-3)',
      '  milkit sweep --file experiments/table3.yaml --executor slurm --executor-option partition=gpu',
      'Re-running the same command resumes: finished jobs are skipped, failed and missing ones run again.',
    ].join('\n'))
    .action(async (experimentArg: string | undefined, args: string[], flags: SweepFlags) => {
      const m = await loadSweepModules();
      const { definition, sweepFile } = await definitionFrom(m, app, experimentArg, args, flags);
      const registry = app.createRegistry();
      // The default executor is the sweep-file schema's default, so core names no executor plugin.
      const executorRef = { ...(sweepFile ?? m.SweepFileSchema.parse({})).executor } as Record<string, unknown> & { name: string };
      if (flags.executor) {
        // A different executor on the CLI drops the file's options for the other one.
        if (flags.executor !== executorRef.name) for (const key of Object.keys(executorRef)) delete executorRef[key];
        executorRef.name = flags.executor;
      }
      Object.assign(executorRef, parseExecutorOptions(m, flags.executorOption));
      if (flags.workers !== undefined) executorRef.workers = parseWorkers(flags.workers);
      const resolvedExecutor = await registry.resolve('executor', executorRef, { ...(definition.file ? { file: definition.file } : {}), key: 'executor' });

      const interactive = app.io.stdoutIsTTY && Boolean(process.stderr.isTTY);
      // Bars draw on the terminal; plain lines go through the CLI's diagnostics stream (stderr, or a test's capture).
      const progress = m.createProgress({ stream: interactive ? process.stderr : { write: (text: string) => app.io.err(text.replace(/\n$/, '')) }, interactive, now: () => app.services.clock.now() });
      const logger = m.progressLogger(progress, app.logger);
      const executor = app.services.createExecutor(registry, resolvedExecutor, { logger, cwd: app.cwd, cores: os.availableParallelism(), env: app.env });
      const composed = new Map<string, ResolvedExperiment>();
      const compose: ComposeCell = async (file, overrides) => {
        const resolved = await m.loadExperiment(file, overrides, { registry, cwd: app.cwd, env: app.env });
        composed.set(resolved.configHash, resolved);
        // With split.repeats every repeat's folds are jobs too (fold index = repeat · folds + fold).
        return { configHash: resolved.configHash, folds: resolved.config.split.folds * resolved.config.split.repeats, configYaml: resolved.toYaml() };
      };
      // The tracker comes from the first cell's `tracking:` (cells share it unless a row overrides tracking).
      let sweepTracking: SweepTracking | undefined;
      const tracking: SweepTracking = {
        open: async (plan, stateDir, sweepName) => {
          const first = composed.get(plan.cells[0]?.configHash ?? '');
          if (!first || !first.config.tracking.enabled) return new Map();
          const tracker = await app.services.createTracker(first.config.tracking, { registry, logger, cwd: app.cwd, env: app.env });
          sweepTracking = m.createSweepTracking({
            tracker, experimentName: first.config.tracking.experimentName ?? first.config.name, logger, cwd: app.cwd,
            configOf: (hash) => composed.get(hash)?.config,
            // Hashed: the section may hold credentials, and tracking.json is written to disk.
            target: createHash('sha256').update(JSON.stringify(first.config.tracking)).digest('hex').slice(0, 16),
          });
          return sweepTracking.open(plan, stateDir, sweepName);
        },
        close: async (table, stateDir, artifacts, comparison, interrupted) => sweepTracking?.close(table, stateDir, artifacts, comparison, interrupted),
      };
      // Every cell is checked before the state folder is written, any MLflow run opened or any job launched;
      // the state folder is named by --dir, the flag that moves it.
      const checkCells = async (plan: SweepPlan, stateDir: string): Promise<void> => {
        const jobs = plan.cells.flatMap((cell) => {
          const resolved = composed.get(cell.configHash);
          if (!resolved) return [];
          const outputs = [{ dir: stateDir, key: '--dir' }, ...m.trackingFolders(resolved, app.cwd, app.env)];
          return [{ resolved, label: cell.name, outputs }];
        });
        await m.preflight(jobs, { registry, fs: app.services.fs });
      };
      const controller = new AbortController();
      // First Ctrl-C/SIGTERM: stop launching, workers are signalled (their fold runs end KILLED) and reaped, the table
      // of finished jobs is written marked partial; a second signal exits at once (docs/reliability.md#signals).
      clearStopRequest();
      const removeHandlers = installSignalHandlers({
        logger,
        firstMessage: (signal) => `${signal}: no new jobs start, running workers are stopped; finished results are kept (run the same command to resume).`,
        onFirst: (signal) => controller.abort(signal),
      });
      try {
        const report = await m.runSweep({
          definition,
          expand: expander(m, definition.experimentFile, app.cwd, registry),
          compose,
          executor,
          worker: { command: process.execPath, args: [...WORKER_NODE_FLAGS, MILKIT_BIN, 'worker'] },
          cwd: app.cwd,
          logger,
          progress,
          signal: controller.signal,
          tracking,
          preflight: checkCells,
          fs: app.services.fs,
          metricFor: async (name, numClasses) => {
            // Result metrics that are not plugins (stage or instance metrics) get no bootstrap.
            if (!registry.ids('metric').includes(`metric/${name}`)) return undefined;
            return registry.create(await registry.resolve('metric', name, { key: 'eval.metrics' }), { numClasses });
          },
          ...(flags.dir ? { stateDir: path.resolve(app.cwd, flags.dir) } : {}),
          ...(flags.dryRun ? { dryRun: true } : {}),
        });
        progress.stop();
        app.io.out(report.markdown);
        if (report.comparisonMarkdown !== undefined) app.io.out(report.comparisonMarkdown);
        app.io.out('');
        app.io.out(`${report.cells} cells, ${report.jobs} jobs: ${report.alreadyDone} already finished, ${report.succeeded} finished now, ${report.failed.length} failed, ${report.busy} running elsewhere, ${report.missing} without a result.`);
        app.io.out(`table: ${path.join(report.stateDir, 'table.md')} · ${path.join(report.stateDir, 'summary.csv')} · per fold: ${path.join(report.stateDir, 'folds.csv')}`);
        for (const failure of report.failed) app.io.err(`failed: ${failure.label} [${failure.id}]: ${failure.error.split('\n')[0] ?? ''}`);
        const stoppedBy = stopRequested();
        if (stoppedBy && !flags.dryRun) {
          throw new InterruptedError(stoppedBy, `sweep stopped by ${stoppedBy}: ${report.jobs - report.missing} of ${report.jobs} jobs have a result; table.md is marked partial.`, {
            hint: 'Run the same sweep command again to run the missing jobs (finished ones are kept).',
          });
        }
        if (!flags.dryRun && report.missing > 0) process.exitCode = 1;
      } finally {
        progress.stop();
        removeHandlers();
      }
    });
}
