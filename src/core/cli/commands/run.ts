// `milkit run EXP [overrides...]` and `milkit cv EXP [overrides...]`: compose, validate, and run every fold
// of the experiment's split; `--cfg` prints the resolved config and exits.
import type { Command } from 'commander';
import { ConfigError, InterruptedError } from '../../errors.js';
import type { ResolvedExperiment } from '../../config/index.js';
import { loadActionCode, type CliApp } from '../app.js';

interface RunFlags {
  readonly cfg?: boolean;
  readonly resume?: boolean;
  readonly folds?: string;
  readonly force?: boolean;
}

function parseFolds(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const folds = text.split(',').map((t) => Number(t.trim()));
  if (folds.some((f) => !Number.isInteger(f) || f < 0)) {
    throw new ConfigError('bad-option', `--folds: expected comma-separated fold indices such as 0,2,4, got "${text}".`);
  }
  return folds;
}

async function execute(app: CliApp, file: string, overrides: string[], flags: RunFlags, requireFolds: boolean): Promise<void> {
  // Loaded here, not at the top: config and engine pull in zod and tfjs, which `milkit --help` must not pay.
  const [{ loadExperiment }, { experimentOutDir, runExperiment }, { preflight, trackingFolders }, { renderRunReport }, { epochProgress }, lifecycle] = await loadActionCode(requireFolds ? 'cv' : 'run', () => Promise.all([
    import('../../config/index.js'),
    import('../../engine/run.js'),
    import('../../engine/preflight.js'),
    import('../../engine/report.js'),
    import('../../engine/progress.js'),
    import('../../engine/lifecycle.js'),
  ]));
  const registry = app.createRegistry();
  const resolved: ResolvedExperiment = await loadExperiment(file, overrides, { registry, cwd: app.cwd, env: app.env });
  if (flags.cfg) {
    app.io.out(resolved.toYaml());
    return;
  }
  if (requireFolds && resolved.config.split.folds < 2) {
    app.logger.warn(`split.folds is ${resolved.config.split.folds}: cv runs a single fold (set split.mode=kfold split.folds=5 for cross-validation).`);
  }
  const folds = parseFolds(flags.folds);
  // Drawn splits have a known fold count, so a fold index out of range is refused before any data is read.
  const foldCount = resolved.config.split.folds * resolved.config.split.repeats;
  const outOfRange = resolved.config.split.file === undefined ? (folds ?? []).filter((f) => f >= foldCount) : [];
  if (outOfRange.length > 0) {
    throw new ConfigError('fold-out-of-range', `--folds ${flags.folds ?? ''}: fold ${outOfRange.join(', ')} does not exist; the split has ${foldCount} fold${foldCount === 1 ? '' : 's'} (0–${foldCount - 1}).`, {
      where: { file, key: 'split.folds' },
      hint: `Pick fold indices in 0–${foldCount - 1}, or change split.folds.`,
    });
  }
  // Every problem of the job is found now, before the first epoch and before any MLflow run is opened.
  const outputs = [{ dir: experimentOutDir(resolved, app.cwd), key: 'output.dir' }, ...trackingFolders(resolved, app.cwd, app.env)];
  await preflight([{ resolved, label: file, outputs }], { registry, fs: app.services.fs });
  const { tracking } = resolved.config;
  const tracker = tracking.enabled ? await app.services.createTracker(tracking, { registry, logger: app.logger, cwd: app.cwd, env: app.env }) : undefined;
  // SIGINT/SIGTERM: the run stops at its next safe point and writes what finished; a second signal exits at once.
  lifecycle.clearStopRequest();
  const removeHandlers = lifecycle.installSignalHandlers({ logger: app.logger });
  let result: Awaited<ReturnType<typeof runExperiment>>;
  try {
    result = await runExperiment({
      resolved, registry, logger: app.logger, cwd: app.cwd, env: app.env, fs: app.services.fs,
      ...(tracker ? { tracking: { tracker } } : {}),
      ...(flags.resume ? { resume: true } : {}),
      ...(flags.force ? { force: true } : {}),
      ...(folds !== undefined ? { folds } : {}),
      events: (fold) => epochProgress({ fold, stdoutIsTTY: app.io.stdoutIsTTY, logger: app.logger }),
    });
  } finally {
    removeHandlers();
  }
  app.io.out(renderRunReport(result, { primaryMetrics: resolved.slots.metrics.map((slot) => slot.name) }));
  if (result.interrupted) {
    const command = ['milkit', requireFolds ? 'cv' : 'run', file, ...overrides, ...(flags.folds !== undefined ? ['--folds', flags.folds] : []), '--resume'].map(shellWord).join(' ');
    const finished = result.folds.filter((f) => f.ok).length;
    throw new InterruptedError(result.interrupted, `stopped by ${result.interrupted}: ${finished} of ${finished + result.missingFolds.length} folds finished; the partial summary is in ${result.outDir}/summary.json.`, {
      hint: `Resume with: ${command}`,
    });
  }
  // A signal after the last fold (while results were written or sent to the server): every fold is saved, but the
  // run was stopped all the same, so it exits 130/143 and says what may not have reached the server.
  const lateSignal = lifecycle.stopRequested();
  if (lateSignal) {
    throw new InterruptedError(lateSignal, `stopped by ${lateSignal} after the last fold: every fold finished and the summary is in ${result.outDir}/summary.json.`, {
      hint: 'Writes that had not reached the MLflow server are marked unsynced in the local store; upload them with: milkit mlflow sync',
    });
  }
  if (result.folds.some((f) => !f.ok)) process.exitCode = 1;
}

/** A word as a POSIX shell reads it back (quoted when it holds anything beyond safe characters). */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function define(program: Command, app: CliApp, name: 'run' | 'cv', description: string): void {
  program
    .command(name)
    .description(description)
    .argument('<experiment>', 'experiment config file (YAML, JSON or TS), e.g. experiments/quickstart.yaml')
    .argument('[overrides...]', 'Hydra-style overrides: a.b=v, +a.b=v, ++a.b=v, ~a.b, group=option')
    .option('--cfg', 'print the resolved config (after composition, overrides and interpolation) and exit')
    .option('--resume', 'skip finished folds and continue the others from their last checkpoints (same MLflow runs)')
    .option('--folds <list>', 'run only these fold indices, e.g. 0,1 (the summary covers every finished fold)')
    .option('--force', 'discard the results in the run folder when its fold count or data changed, instead of refusing')
    .action(async (file: string, overrides: string[], flags: RunFlags) => execute(app, file, overrides, flags, name === 'cv'));
}

export function register(program: Command, app: CliApp): void {
  define(program, app, 'run', 'run an experiment: every fold of its split, test metrics printed at the end');
  define(program, app, 'cv', 'k-fold cross-validation: train and test every fold, print per-fold and mean ± std metrics');
}
