// Preflight: what `run`, `cv` and `sweep` check for every job (every sweep cell) after resolving its config and
// before anything starts — no epoch, no tracker run, no sweep job. Plugin pairings through declared capabilities,
// the data source and the split, and the folders the job writes. Every problem of every job is collected and
// reported together, once, with the exit code of its error class (ConfigError 2, PluginError 3, DataError 4).
import path from 'node:path';
import { ConfigError, DataError, MilkitError, PluginError, StorageError } from '../errors.js';
import { storageError } from '../io/storage-errors.js';
import { silentLogger } from '../logger.js';
import type { ResolvedExperiment } from '../config/index.js';
import type { FileSystem } from '../services.js';
import { makeSplits } from '../data/splits.js';
import { checkSplitSense } from '../data/split-checks.js';
import { resolveTrackingTarget } from '../tracking/create-tracker.js';
import type { Registry } from '../../registry/registry.js';
import type { SlideRecord } from '../../registry/contracts/data.js';
import { DEFAULT_DATASET_CAPABILITIES } from '../../registry/contracts/data.js';
import { DEFAULT_LOSS_CAPABILITIES } from '../../registry/contracts/loss.js';
import { DEFAULT_AGGREGATOR_CAPABILITIES } from '../../registry/contracts/model.js';
import { checkStages, resolveStages } from './stages.js';

/** A folder a job writes into, with the config key (or CLI flag) that chose it. */
export interface OutputFolder {
  /** Absolute path. */
  readonly dir: string;
  readonly key: string;
}

/** The local store folder a job's tracker writes ([] when tracking is off): a server URI still keeps ./mlruns. */
export function trackingFolders(resolved: ResolvedExperiment, cwd: string, env: Readonly<Record<string, string | undefined>>): OutputFolder[] {
  const { tracking } = resolved.config;
  if (!tracking.enabled) return [];
  return [{ dir: resolveTrackingTarget(tracking.uri ?? env.MLFLOW_TRACKING_URI, cwd).root, key: 'tracking.uri' }];
}

export interface PreflightJob {
  readonly resolved: ResolvedExperiment;
  /** How messages name the job: the config file for a run, the cell label in a sweep. */
  readonly label: string;
  readonly outputs: readonly OutputFolder[];
}

/** The error class a problem fails with, in the order they are reported: config (exit 2), plugin (3), data (4). */
export type ProblemClass = 'config' | 'plugin' | 'data';

export interface PreflightProblem {
  readonly class: ProblemClass;
  readonly code: string;
  /** Every config key involved (a pairing names both sides). */
  readonly keys: readonly string[];
  readonly message: string;
  /** What to do. */
  readonly fix: string;
}

export interface PreflightInput {
  readonly job: PreflightJob;
  readonly registry: Registry;
  /** The job's slide table, read once per dataset config across jobs, or why the source does not open. */
  readonly source: () => Promise<SourceCheck>;
  /** Whether a folder takes a file (probed once per folder across jobs); undefined means yes, else the failure. */
  readonly writable: (dir: string) => Promise<Error | undefined>;
}

export type SourceCheck = { readonly slides: readonly SlideRecord[] } | { readonly problem: PreflightProblem };

export type PreflightCheck = (input: PreflightInput) => Promise<readonly PreflightProblem[]> | readonly PreflightProblem[];

const CLASS_ORDER: readonly ProblemClass[] = ['config', 'plugin', 'data'];

function classOf(error: MilkitError): ProblemClass {
  if (error instanceof DataError) return 'data';
  if (error instanceof PluginError) return 'plugin';
  return 'config';
}

/** A check written as "throw a MilkitError when wrong" (e.g. a stage check), as a preflight check. */
export function throwingCheck(check: (resolved: ResolvedExperiment, registry: Registry) => void | Promise<void>): PreflightCheck {
  return async ({ job, registry }) => {
    try {
      await check(job.resolved, registry);
      return [];
    } catch (error) {
      if (!(error instanceof MilkitError)) throw error;
      return [problemFromError(error)];
    }
  };
}

function problemFromError(error: MilkitError): PreflightProblem {
  // The file an error names (a slide table, a split file) stays in the message; the keys lead the line.
  const file = error.where?.file ? `${error.where.file}${error.where.line === undefined ? '' : `:${error.where.line}`}: ` : '';
  return { class: classOf(error), code: error.code, keys: error.where?.key ? [error.where.key] : [], message: `${file}${error.message}`, fix: error.hint ?? '' };
}

/** Every loss slot finds the extras it reads among what the aggregator declares it provides. */
export const checkLossRequirements: PreflightCheck = async ({ job, registry }) => {
  const { slots } = job.resolved;
  const provides = registry.capabilities(slots.aggregator, DEFAULT_AGGREGATOR_CAPABILITIES).provides;
  const problems: PreflightProblem[] = [];
  for (const [slot, loss] of Object.entries(slots.losses)) {
    const missing = registry.capabilities(loss, DEFAULT_LOSS_CAPABILITIES).requires.filter((name) => !provides.includes(name));
    if (missing.length === 0) continue;
    const providers = (await registry.list('aggregator'))
      .filter((definition) => missing.every((name) => ((definition.capabilities.provides as readonly string[] | undefined) ?? []).includes(name)))
      .map((definition) => definition.name);
    problems.push({
      class: 'config',
      code: 'loss-requirement-unmet',
      keys: [`model.losses.${slot}`, 'model.aggregator'],
      message: `loss "${loss.name}" needs ${missing.map((m) => `"${m}"`).join(', ')} from the aggregator, but aggregator "${slots.aggregator.name}" provides ${provides.length ? provides.map((p) => `"${p}"`).join(', ') : 'no extras'}.`,
      fix: `${providers.length ? `Choose an aggregator that provides them (${providers.join(', ')}; e.g. model/aggregator=${providers[0] as string}), or remove` : 'Remove'} the loss slot (~model.losses.${slot}).`,
    });
  }
  return problems;
};

/**
 * The stages (stages.ts): `from` targets, parts, strategy requirements (a trainable pre-screener needs the
 * aggregator's instance gates), and the bag views the aggregator, a trained pre-screener, the strategies and the
 * stages read against what the dataset provides. Every problem is reported, each under its stage key.
 */
export const checkStagesBeforeCompute: PreflightCheck = async ({ job, registry }) => {
  let stages: Awaited<ReturnType<typeof resolveStages>>;
  try {
    stages = await resolveStages(job.resolved, registry);
  } catch (error) {
    if (!(error instanceof MilkitError)) throw error;
    return [problemFromError(error)];
  }
  // The key leads the preflight line, so it is not repeated in the message (nor the config file the job names).
  return checkStages(job.resolved, stages, registry).map((error) => {
    const key = error.where?.key ?? 'stages';
    const message = error.message.startsWith(`${key}: `) ? error.message.slice(key.length + 2) : error.message;
    return { class: 'config', code: error.code, keys: [key], message, fix: error.hint ?? '' };
  });
};

/** Early stopping watches a number the trainer logs: `val/<metric>` needs that metric in eval.metrics. */
export const checkMonitoredMetric: PreflightCheck = ({ job }) => {
  const { config } = job.resolved;
  const problems: PreflightProblem[] = [];
  // The top-level rule and every stage that sets its own monitor (stages inherit train: otherwise).
  const stageMonitors = config.stages.flatMap((stage, i) => {
    const earlyStopping = stage.train.earlyStopping as { monitor?: unknown } | undefined;
    return typeof earlyStopping?.monitor === 'string' ? [[earlyStopping.monitor, `stages[${i}].train.earlyStopping.monitor`] as const] : [];
  });
  for (const [monitor, key] of [[config.train.earlyStopping.monitor, 'train.earlyStopping.monitor'] as const, ...stageMonitors]) {
    const name = monitor.startsWith('val/') ? monitor.slice('val/'.length) : undefined;
    if (name === undefined || name === 'loss' || name.startsWith('loss_') || config.eval.metrics.includes(name)) continue;
    problems.push({
      class: 'config',
      code: 'unknown-monitor',
      keys: [key, 'eval.metrics'],
      message: `watches "${monitor}", but "${name}" is not among the metrics computed on validation (eval.metrics: ${config.eval.metrics.join(', ') || 'none'}).`,
      fix: `Add "${name}" to eval.metrics, or watch val/loss or one of val/${config.eval.metrics.join(', val/')}.`,
    });
  }
  return problems;
};

/**
 * The selection rule leaves an epoch to select: with `minEpochs` ≥ `epochs` every epoch is ignored, and the run
 * would train to the end only to test unselected weights.
 */
export const checkSelectableEpochs: PreflightCheck = ({ job }) => {
  const { config } = job.resolved;
  const problems: PreflightProblem[] = [];
  // Each stage's rule is its own train: settings over the top-level ones (as resolveStages merges them).
  for (const [i, stage] of config.stages.entries()) {
    const own = stage.train as { epochs?: unknown; earlyStopping?: { minEpochs?: unknown; select?: unknown } };
    const epochs = typeof own.epochs === 'number' ? own.epochs : config.train.epochs;
    const minEpochs = typeof own.earlyStopping?.minEpochs === 'number' ? own.earlyStopping.minEpochs : config.train.earlyStopping.minEpochs;
    const select = own.earlyStopping?.select ?? config.train.earlyStopping.select;
    if (select === 'last' || minEpochs < epochs) continue;
    const prefix = (key: 'epochs' | 'minEpochs'): string => {
      const local = key === 'epochs' ? own.epochs !== undefined : own.earlyStopping?.minEpochs !== undefined;
      const path = key === 'epochs' ? 'train.epochs' : 'train.earlyStopping.minEpochs';
      return local ? `stages[${i}].${path}` : path;
    };
    problems.push({
      class: 'config',
      code: 'no-selectable-epoch',
      keys: [...new Set([prefix('minEpochs'), prefix('epochs')])],
      message: `${config.stages.length > 1 ? `stage "${stage.name}": ` : ''}minEpochs ${minEpochs} ≥ epochs ${epochs}: every epoch is ignored by the selection rule, so none can be selected.`,
      fix: `Lower ${prefix('minEpochs')} below ${epochs}, raise ${prefix('epochs')}, or test the last epoch (+train/earlyStopping=last-epoch).`,
    });
  }
  return problems;
};

/** The dataset opens: its slide table and feature folder exist and parse. */
export const checkDataSource: PreflightCheck = async ({ source }) => {
  const opened = await source();
  return 'problem' in opened ? [opened.problem] : [];
};

/** The split can be made from the dataset's cases (folds ≤ cases, a split file matches the slides...). */
export const checkSplit: PreflightCheck = async ({ job, source }) => {
  const opened = await source();
  if ('problem' in opened) return [];
  const { config, baseDir } = job.resolved;
  try {
    const folds = makeSplits(opened.slides, config.split, config.split.seed ?? config.seed, { baseDir, logger: silentLogger });
    // Leakage and one-class training sets are errors before compute; evaluation warnings come again at run time.
    checkSplitSense(folds, opened.slides, { classNames: classNamesOf(opened.slides), logger: silentLogger, ...(config.split.file !== undefined ? { file: config.split.file } : {}) });
    return [];
  } catch (error) {
    if (!(error instanceof MilkitError)) throw error;
    const problem = problemFromError(error);
    return [{ ...problem, keys: problem.keys.length ? problem.keys : ['split'] }];
  }
};

/** Class names by label index as the slide table names them (preflight sees slides, not the opened source). */
function classNamesOf(slides: readonly SlideRecord[]): string[] {
  const names: string[] = [];
  for (const slide of slides) names[slide.label] ??= slide.labelName;
  return Array.from({ length: names.length }, (_, i) => names[i] ?? String(i));
}

/** Every folder the job writes takes a file (created, written, renamed, removed). */
export const checkOutputsWritable: PreflightCheck = async ({ job, writable }) => {
  const problems: PreflightProblem[] = [];
  for (const output of job.outputs) {
    const failure = await writable(output.dir);
    if (!failure) continue;
    // Said as the disk's refusal (full, read-only, a file in the way), never a bare errno or a misleading ENOENT.
    const described = storageError(failure, output.dir, 'write');
    const reason = described instanceof StorageError ? (described.message.replace(/^could not write: /, '').replace(/\.$/, '')) : `(${(failure as NodeJS.ErrnoException).code ?? failure.message})`;
    problems.push({
      class: 'config',
      code: 'output-not-writable',
      keys: [output.key],
      message: `cannot write to ${output.dir}: ${reason}.`,
      fix: `Point ${output.key} at a writable folder, or fix the folder's permissions and free space.`,
    });
  }
  return problems;
};

/** The checks every job goes through, in report order. */
export const preflightChecks: PreflightCheck[] = [
  checkLossRequirements,
  checkStagesBeforeCompute,
  checkMonitoredMetric,
  checkSelectableEpochs,
  checkDataSource,
  checkSplit,
  checkOutputsWritable,
];

export interface PreflightContext {
  readonly registry: Registry;
  readonly fs: FileSystem;
  readonly checks?: readonly PreflightCheck[];
}

/**
 * Runs every check on every job; returns quietly when all pass, else throws one error of the first problem's
 * class (config before plugin before data) listing every problem, grouped by message with the jobs it affects.
 */
export async function preflight(jobs: readonly PreflightJob[], ctx: PreflightContext): Promise<void> {
  const sources = new Map<string, Promise<SourceCheck>>();
  const probes = new Map<string, Promise<Error | undefined>>();
  const found: Found[] = [];
  for (const job of jobs) {
    const input: PreflightInput = {
      job,
      registry: ctx.registry,
      source: () => {
        const key = datasetKey(job.resolved);
        let pending = sources.get(key);
        if (!pending) {
          pending = readSlideTable(job.resolved, ctx.registry);
          sources.set(key, pending);
        }
        return pending;
      },
      writable: (dir) => {
        const resolvedDir = path.resolve(dir);
        let pending = probes.get(resolvedDir);
        if (!pending) {
          pending = probeFolder(ctx.fs, resolvedDir);
          probes.set(resolvedDir, pending);
        }
        return pending;
      },
    };
    for (const [order, check] of (ctx.checks ?? preflightChecks).entries()) {
      for (const problem of await check(input)) found.push({ job, problem, order });
    }
  }
  if (found.length > 0) throw preflightError(found, jobs.length);
}

/** Everything a source's slide list depends on: plugin, options, seed, folder, labels. */
function datasetKey(resolved: ResolvedExperiment): string {
  const { config } = resolved;
  return JSON.stringify([resolved.slots.dataset.name, resolved.slots.dataset.options, config.seed, resolved.baseDir, config.data.labels ?? null]);
}

/** Opens the source for its slide table only (bags are read lazily, so this is cheap) and closes it again. */
async function readSlideTable(resolved: ResolvedExperiment, registry: Registry): Promise<SourceCheck> {
  const { config } = resolved;
  try {
    const source = await registry.create(resolved.slots.dataset, {
      seed: config.seed,
      baseDir: resolved.baseDir,
      logger: silentLogger,
      ...(config.data.labels === undefined ? {} : { labelMap: config.data.labels }),
    });
    const slides = [...source.slides];
    await source.close?.();
    return { slides };
  } catch (error) {
    const problem: PreflightProblem = error instanceof MilkitError
      ? { ...problemFromError(error), keys: ['data.dataset', ...(error.where?.key && error.where.key !== 'data.dataset' ? [error.where.key] : [])] }
      : { class: 'data', code: 'data-source', keys: ['data.dataset'], message: `dataset "${resolved.slots.dataset.name}" could not be opened: ${error instanceof Error ? error.message : String(error)}`, fix: 'Check the dataset options (paths are relative to the experiment file).' };
    return { problem };
  }
}

/** Creates the folder and writes, renames and removes a probe file in it, as every writer of a run does. */
async function probeFolder(fs: FileSystem, dir: string): Promise<Error | undefined> {
  const probe = path.join(dir, `.milkit-preflight-${process.pid}`);
  try {
    await fs.mkdir(dir);
    await fs.writeFile(`${probe}.tmp`, 'probe');
    await fs.rename(`${probe}.tmp`, probe);
    await fs.remove(probe);
    return undefined;
  } catch (error) {
    await fs.remove(`${probe}.tmp`).catch(() => undefined);
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** A problem, the job it was found in, and the position of its check in the check list. */
interface Found {
  readonly job: PreflightJob;
  readonly problem: PreflightProblem;
  readonly order: number;
}

function preflightError(found: readonly Found[], jobCount: number): MilkitError {
  // One line per distinct problem, naming the jobs it affects when there are several jobs.
  const groups = new Map<string, { problem: PreflightProblem; order: number; labels: string[] }>();
  for (const { job, problem, order } of found) {
    const line = `${problem.keys.join(', ')}: ${problem.message}${problem.fix ? ` ${problem.fix}` : ''}`;
    const group = groups.get(line) ?? { problem, order, labels: [] };
    if (!group.labels.includes(job.label)) group.labels.push(job.label);
    groups.set(line, group);
  }
  // Config problems before plugin and data ones; within a class, in check order.
  const ordered = [...groups.entries()].sort(([, a], [, b]) => CLASS_ORDER.indexOf(a.problem.class) - CLASS_ORDER.indexOf(b.problem.class) || a.order - b.order);
  const lines = ordered.map(([line, { labels }]) => (jobCount > 1 ? `${line} [${labels.length === jobCount ? 'every job' : labels.join('; ')}]` : line));
  const first = ordered[0]?.[1].problem as PreflightProblem;
  const subject = jobCount > 1 ? `${jobCount} jobs` : (found[0]?.job.label ?? 'the job');
  const message = lines.length === 1
    ? `${lines[0] as string}${jobCount > 1 ? '' : ` (${subject})`}`
    : `${lines.length} problems in ${subject}:\n${lines.map((line) => `  - ${line}`).join('\n')}`;
  const options = { hint: 'Checked before anything started: nothing ran and no MLflow run was opened.' };
  const code = lines.length === 1 ? first.code : 'preflight-failed';
  if (first.class === 'data') return new DataError(code, message, options);
  if (first.class === 'plugin') return new PluginError(code, message, options);
  return new ConfigError(code, message, options);
}
