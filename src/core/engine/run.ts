// Runs an experiment: runtime, data (validated before any training), splits (persisted), then every fold
// (its stages in order, each train → select → test; see stages.ts), each fold tracked as a child run (and each
// stage of a multi-stage config as a child of that); a fold that fails is reported and the others finish.
// Writes resolved config, splits, per-fold metrics and predictions, and a cross-fold summary recomputed from every
// finished fold of the run folder. The lifecycle (docs/reliability.md): the folder is locked while a process works
// in it, its identity (fold count, data fingerprint) is checked before results are merged or resumed, a stop
// request ends the fold being trained KILLED and writes what finished, and --resume skips finished folds.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BackendError, ConfigError, InterruptedError, MilkitError, renderError, StorageError, type StopSignal } from '../errors.js';
import { makeFolder, writeFileDurably } from '../io/disk.js';
import type { FileSystem } from '../io/file-system.js';
import type { Logger } from '../logger.js';
import { Rng } from '../runtime/random.js';
import { initRuntime, runtimeTags, type RuntimeInfo } from '../runtime/index.js';
import type { SourcePool } from '../data/source-pool.js';
import type { ResolvedExperiment } from '../config/index.js';
import type { Registry } from '../../registry/registry.js';
import type { BagSource, LabelHierarchy, SlideRecord } from '../../registry/contracts/data.js';
import { hierarchyFromConfig } from '../data/labels.js';
import { LABEL_HIERARCHY_FILE } from './export.js';
import { levelReport, type LevelReport } from '../eval/levels.js';
import type { Metric, MetricValue } from '../../registry/contracts/metric.js';
import type { Tracker } from '../../registry/contracts/tracker.js';
import { validateSource } from '../data/bags.js';
import { makeSplits, writeSplits, type Fold } from '../data/splits.js';
import { checkSplitSense } from '../data/split-checks.js';
import { bootstrapMetrics, summarizeFolds } from '../eval/metrics.js';
import { cellInterval, type CellInterval } from '../stats/cell-interval.js';
import type { FoldRecord } from '../stats/compare.js';
import { summarizeRepeats } from '../stats/repeats.js';
import { writePredictionsCsv, type PredictionRow } from '../eval/predictions.js';
import { writeCurvePlots, type CurveFiles } from '../eval/plots.js';
import { createTracker, flattenParams, MILKIT_TAGS, redactConfig, secretEnvExpressions, systemTags } from '../tracking/index.js';
import YAML from 'yaml';
import { MilModel } from './model.js';
import type { SlidePrediction } from './evaluate.js';
import { defaultMemoryLimit, parseByteSize, type MemoryLimit } from './memory-budget.js';
import type { EpochRecord, TrainEvents } from './trainer.js';
import { assertStages, foldMetrics, resolveStages, runFoldStages, type ResolvedStage, type StageResult, type StageTracking } from './stages.js';
import { stopRequested } from './lifecycle.js';
import { checkIdentity, dataFingerprint, discardResults, lockRunFolder, readJsonIfAny, writeIdentity, writeJsonAtomic } from './run-folder.js';

export interface RunOptions {
  readonly resolved: ResolvedExperiment;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Continue folds from their last checkpoints. */
  readonly resume?: boolean;
  /** Run only these fold indices (default: all). */
  readonly folds?: readonly number[];
  /**
   * Discard the results already in the run folder when its recorded identity (fold count, data) differs from this
   * run's, instead of refusing (docs/reliability.md#identity).
   */
  readonly force?: boolean;
  /** Progress/reporting hooks per fold. */
  readonly events?: (fold: number) => TrainEvents;
  /**
   * Tracking: an existing tracker (default: one built from `tracking:`), a parent run to nest under, and
   * `foldsOnly` when the parent already is this config's run (a sweep cell), so fold runs go straight under it.
   */
  readonly tracking?: { readonly tracker?: Tracker; readonly parentRunId?: string; readonly foldsOnly?: boolean };
  /** Output folder instead of `experimentOutDir` (a sweep job writes into its own job folder). */
  readonly outDir?: string;
  /**
   * Execution settings that must not change results' identity (the config hash): e.g. the BLAS threads a
   * sweep worker gets as its share of the cores.
   */
  readonly runtime?: { readonly blasThreads?: number };
  /** Open bag sources shared with other runs of this process (a sweep worker's jobs); default: open and close one. */
  readonly sources?: SourcePool;
  /** The file-system seam every output file is written through (default: the real one). */
  readonly fs?: FileSystem;
}

export interface FoldOutcome {
  readonly fold: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly metrics: Readonly<Record<string, MetricValue>>;
  readonly instanceAuc?: MetricValue;
  readonly bestEpoch?: number;
  readonly epochsRun?: number;
  readonly secondsPerSlide?: number;
  readonly runId?: string;
}

export interface ExperimentResult {
  readonly outDir: string;
  readonly runtime: RuntimeInfo;
  readonly folds: FoldOutcome[];
  /** Per metric: mean ± sample std over folds, or with repeats (`repeats` set) over the per-repeat means. */
  readonly summary: Record<string, { mean: number | null; std: number | null; n: number; repeats?: number }>;
  /**
   * Per configured metric: the metric on the pooled out-of-fold test predictions with a patient-bootstrap CI
   * (eval.bootstrap resamples; median over repeats). Absent when eval.bootstrap is 0.
   */
  readonly pooled?: PooledIntervals;
  readonly runId?: string;
  /** Folds of the split without a finished result (the summary covers the others); empty when complete. */
  readonly missingFolds: readonly number[];
  /** Set when SIGINT/SIGTERM stopped the run: what finished is written, the rest needs --resume. */
  readonly interrupted?: StopSignal;
}

export interface PooledIntervals {
  readonly resamples: number;
  readonly level: number;
  /** Name of the random stream the resamples come from. */
  readonly stream: string;
  readonly metrics: Readonly<Record<string, CellInterval | null>>;
}

/** Per metric, mean ± std of the per-repeat means; `n` counts the folds where the metric is defined. */
function summarizeByRepeat(
  succeeded: readonly FoldOutcome[], values: ReadonlyArray<Readonly<Record<string, MetricValue>>>, repeatOf: ReadonlyMap<number, number>,
): ExperimentResult['summary'] {
  const names = [...new Set(values.flatMap((v) => Object.keys(v)))];
  return Object.fromEntries(names.map((name) => {
    const tagged = succeeded.map((o, i) => ({ repeat: repeatOf.get(o.fold) ?? 0, value: values[i]?.[name]?.value }));
    const s = summarizeRepeats(tagged);
    const n = tagged.filter((t) => typeof t.value === 'number' && Number.isFinite(t.value)).length;
    return [name, { mean: s.mean, std: s.std, n, repeats: s.repeats }];
  }));
}

/** The resolved config as YAML with secret-looking keys redacted, under the same provenance header. */
function resolvedYamlRedacted(resolved: ResolvedExperiment, env: Readonly<Record<string, string | undefined>>): string {
  const header = resolved.toYaml().split('\n').filter((line) => line.startsWith('#')).join('\n');
  // A secret that came from ${env:VAR} is written back as that expression: the file re-runs, the secret stays out.
  return `${header}\n\n${YAML.stringify(redactConfig(resolved.config, '', secretEnvExpressions(env)))}`;
}

/** Output folder of a resolved experiment: `<output.dir or outputs/<name>>/<configHash[0:8]>`. */
export function experimentOutDir(resolved: ResolvedExperiment, cwd: string): string {
  const base = resolved.config.output.dir ?? path.join('outputs', resolved.config.name);
  return path.resolve(cwd, base, resolved.configHash.slice(0, 8));
}

export async function runExperiment(options: RunOptions): Promise<ExperimentResult> {
  const outDir = options.outDir ?? experimentOutDir(options.resolved, options.cwd);
  await makeFolder(outDir, { ...(options.fs ? { fs: options.fs } : {}), action: 'create the output folder' });
  // One process per run folder: a second `run`/`cv` on it refuses, naming the holder (docs/reliability.md#lock).
  const release = await lockRunFolder(outDir, options.logger);
  try {
    return await runInFolder(options, outDir);
  } finally {
    await release();
  }
}

/** fold-<k>/done.json: a fold's finished result, written after its tracker run ended FINISHED. */
interface FoldDone {
  readonly configHash: string;
  readonly outcome: FoldOutcome;
  readonly predictions: Array<PredictionRow & { fold: number }>;
}

/** outDir/runs.json: the experiment-level tracker run of this folder, reused by later invocations. */
interface ExperimentRuns {
  experiment?: { runId: string; runKey: string; status: 'RUNNING' | 'FINISHED' | 'FAILED' | 'KILLED' };
}

const DONE_FILE = 'done.json';

async function readFoldDone(outDir: string, fold: number, configHash: string): Promise<FoldDone | undefined> {
  const done = await readJsonIfAny<FoldDone>(path.join(outDir, `fold-${fold}`, DONE_FILE));
  return done?.configHash === configHash && done.outcome.ok ? done : undefined;
}

/** Range text of the fold indices, for messages: 0–4. */
function foldRange(count: number): string {
  return count === 1 ? '0' : `0–${count - 1}`;
}

async function runInFolder(options: RunOptions, outDir: string): Promise<ExperimentResult> {
  const { resolved, registry, logger } = options;
  const { config } = resolved;
  const runtimeSection = options.runtime?.blasThreads !== undefined ? { ...config.runtime, blasThreads: options.runtime.blasThreads } : config.runtime;
  const runtime = await initRuntime(runtimeSection, { logger });
  // Once this run's parent run is open, a failed write marks it FAILED before the error goes up (never left RUNNING).
  let failParentRun = async (): Promise<void> => undefined;
  const failing = async (error: unknown): Promise<never> => {
    await failParentRun().catch(() => undefined);
    throw error;
  };
  const write = (file: string, text: string): Promise<void> => writeFileDurably(file, text, { ...(options.fs ? { fs: options.fs } : {}), action: `write ${path.relative(outDir, file)}` }).catch(failing);
  // Secrets (keys like *token, *password) never reach disk or the tracker, even in the saved config.
  await write(path.join(outDir, 'config.resolved.yaml'), resolvedYamlRedacted(resolved, options.env));

  const sourceContext = {
    seed: config.seed,
    baseDir: resolved.baseDir,
    cacheBytes: config.data.cacheBytes,
    ...(config.data.labels === undefined ? {} : { labelMap: config.data.labels }),
  };
  const openSource = (): Promise<BagSource> => registry.create(resolved.slots.dataset, { ...sourceContext, logger });
  // The key is everything the source's contents depend on: plugin, options, seed, base folder, labels, budget.
  const source: BagSource = options.sources
    ? await options.sources.get(JSON.stringify([resolved.slots.dataset.name, resolved.slots.dataset.options, sourceContext]), openSource)
    : await openSource();
  const { slides } = await validateSource(source, { onBadSlide: config.data.onBadSlide, logger });
  const numClasses = source.classNames.length;
  // Two-level labels: declared in the config, else the source's own (a coarse_label column, synthetic-hierarchical).
  const hierarchy = config.data.hierarchy !== undefined ? hierarchyFromConfig(source.classNames, config.data.hierarchy) : source.hierarchy;
  if (hierarchy) logger.info(`label hierarchy: ${hierarchy.coarseNames.map((coarse, c) => `${coarse} = {${source.classNames.filter((_, f) => hierarchy.fineToCoarse[f] === c).join(', ')}}`).join('; ')}`);
  const splitSeed = config.split.seed ?? config.seed;
  const folds = makeSplits(slides, config.split, splitSeed, { baseDir: resolved.baseDir, logger });
  const outOfRange = (options.folds ?? []).filter((f) => !folds.some((fold) => fold.index === f));
  if (outOfRange.length > 0) {
    throw new ConfigError('fold-out-of-range', `--folds ${options.folds?.join(',') ?? ''}: fold ${outOfRange.join(', ')} does not exist; the split has ${folds.length} fold${folds.length === 1 ? '' : 's'} (${foldRange(folds.length)}).`, {
      where: { file: resolved.file, key: 'split.folds' },
      hint: `Pick fold indices in ${foldRange(folds.length)}, or change split.folds.`,
    });
  }
  // Identity: results already in this folder must come from the same folds and the same data.
  const identity = {
    configHash: resolved.configHash,
    folds: folds.length,
    splitSeed,
    data: await dataFingerprint({
      slides, featureDim: source.featureDim, classNames: source.classNames, datasetOptions: resolved.slots.dataset.options, bases: [resolved.baseDir, options.cwd],
    }),
  };
  await checkRunIdentity(options, outDir, identity);
  await writeIdentity(outDir, identity);
  // Leakage and one-class training sets stop the run (the preflight already refused them); one-class evaluation sets
  // and a validation set equal to the test set are warned about here, where the user reads the run's log.
  checkSplitSense(folds, slides, { classNames: source.classNames, logger, ...(config.split.file !== undefined ? { file: config.split.file } : {}) });
  // The hierarchy the models are built with, beside the config: exporting a fold rebuilds the model from both.
  if (hierarchy) await write(path.join(outDir, LABEL_HIERARCHY_FILE), JSON.stringify({ classNames: source.classNames, ...hierarchy }, null, 2));
  const splitsDir = path.join(outDir, 'splits');
  // splits.json + CLAM's splits_{k}.csv / _bool / _descriptor, so the exact partitions can be reused.
  await writeSplits(splitsDir, folds, slides, source.classNames, { mode: config.split.mode, seed: splitSeed }, options.fs);

  const metrics = await Promise.all(resolved.slots.metrics.map(async (slot) => ({ name: slot.name, metric: registry.create(slot, { numClasses }) })));
  // The attention's instance-level score: a metric plugin named by config (eval.instanceMetric), never by core.
  const instanceMetricName = config.eval.instanceMetric;
  const instanceMetric = instanceMetricName === null ? undefined : registry.create(await registry.resolve('metric', instanceMetricName, { file: resolved.file, key: 'eval.instanceMetric' }), { numClasses: 2 });

  const selected = folds.filter((f) => options.folds === undefined || options.folds.includes(f.index));
  // With --resume a fold whose result is on disk is not run again (nor its tracker run touched).
  const finishedBefore = new Set<number>();
  if (options.resume) for (const fold of selected) if (await readFoldDone(outDir, fold.index, resolved.configHash)) finishedBefore.add(fold.index);
  const toRun = selected.filter((f) => !finishedBefore.has(f.index));
  if (finishedBefore.size > 0) logger.info(`resume: fold${finishedBefore.size === 1 ? '' : 's'} ${[...finishedBefore].join(', ')} finished in an earlier run; not run again.`);

  const tracker = options.tracking?.tracker ?? (config.tracking.enabled ? await createTracker(config.tracking, { registry, logger, cwd: options.cwd, env: options.env }) : undefined);
  const experimentName = config.tracking.experimentName ?? config.name;
  const foldsOnly = options.tracking?.foldsOnly === true && options.tracking.parentRunId !== undefined;
  // The experiment run of this folder is recorded in runs.json and reused by every later invocation, so resuming
  // or refreshing folds never adds a second parent run; nothing to run and a finished parent: left as it is.
  const runsFile = path.join(outDir, 'runs.json');
  const recordedRuns: ExperimentRuns = (await readJsonIfAny<ExperimentRuns>(runsFile)) ?? {};
  const recordedParent = recordedRuns.experiment?.runKey === resolved.configHash ? recordedRuns.experiment : undefined;
  const parentUntouched = recordedParent?.status === 'FINISHED' && toRun.length === 0;
  let parentRunId: string | undefined;
  if (foldsOnly) parentRunId = options.tracking?.parentRunId;
  else if (tracker && recordedParent) {
    parentRunId = recordedParent.runId;
    if (!parentUntouched) {
      await tracker.reopenRun?.(parentRunId);
      recordedRuns.experiment = { ...recordedParent, status: 'RUNNING' };
      await writeJsonAtomic(runsFile, recordedRuns, options.fs).catch(failing);
    }
  } else if (tracker) {
    parentRunId = await tracker.startRun({
      experimentName,
      runName: `${config.name}-${resolved.configHash.slice(0, 8)}`,
      ...(options.tracking?.parentRunId ? { parentRunId: options.tracking.parentRunId } : {}),
      tags: {
        ...systemTags({ runName: `${config.name}-${resolved.configHash.slice(0, 8)}`, cwd: options.cwd, ...(resolved.overrides.length ? { note: `overrides: ${resolved.overrides.join(' ')}` } : {}) }),
        ...runtimeTags(runtime),
        'milkit.configHash': resolved.configHash,
        'milkit.run_key': resolved.configHash,
        'milkit.level': 'experiment',
      },
    });
    recordedRuns.experiment = { runId: parentRunId, runKey: resolved.configHash, status: 'RUNNING' };
    await writeJsonAtomic(runsFile, recordedRuns, options.fs).catch(failing);
    const { params, oversized } = flattenParams(config);
    await tracker.logParams(parentRunId, params);
    if (Object.keys(oversized).length > 0) {
      const file = path.join(outDir, 'params.oversized.json');
      await write(file, JSON.stringify(oversized, null, 2));
      await tracker.logArtifact(parentRunId, file);
    }
    await tracker.logArtifact(parentRunId, path.join(outDir, 'config.resolved.yaml'));
    await tracker.logArtifact(parentRunId, splitsDir, 'splits');
  }
  if (tracker && parentRunId && !foldsOnly) {
    const openParent = parentRunId;
    failParentRun = async () => {
      await tracker.setTags(openParent, { 'milkit.error.code': 'storage' });
      await tracker.endRun(openParent, 'FAILED');
      await writeJsonAtomic(runsFile, { experiment: { runId: openParent, runKey: resolved.configHash, status: 'FAILED' } } satisfies ExperimentRuns, options.fs).catch(() => undefined);
      await tracker.flush();
    };
  }

  // Stage problems fail before any fold trains (the preflight runs the same checks earlier).
  const stages = await resolveStages(resolved, registry);
  assertStages(resolved, stages, registry);
  const memory = {
    limit: defaultMemoryLimit(runtime.backend, config.runtime.memoryLimit !== undefined ? parseByteSize(config.runtime.memoryLimit) : undefined),
    ...(config.runtime.memoryCheckFrom !== undefined ? { checkFrom: config.runtime.memoryCheckFrom } : {}),
  };
  const slideById = new Map(slides.map((s) => [s.slideId, s]));
  const pick = (ids: readonly string[]): SlideRecord[] => ids.map((id) => slideById.get(id)).filter((s): s is SlideRecord => s !== undefined);
  const outcomes: FoldOutcome[] = [];
  let interrupted: StopSignal | undefined;
  for (const fold of toRun) {
    interrupted = stopRequested();
    if (interrupted) break;
    const outcome = await runOneFold({
      ...options, fold, pick, source, numClasses, hierarchy, metrics, instanceMetric, outDir, tracker, parentRunId, experimentName, stages, memory,
    }).catch((error: unknown): FoldOutcome | StopSignal => {
      if (error instanceof InterruptedError) return error.signal;
      // A full or read-only disk fails every later fold too: stop here (the parent run is marked FAILED below).
      if (error instanceof StorageError) throw error;
      // So does a bag over the memory budget (the same bags and model come back in every fold).
      if (error instanceof BackendError && error.code === 'memory-budget-exceeded') throw error;
      logger.error(`fold ${fold.index} failed:\n${renderError(error, false)}`);
      return { fold: fold.index, ok: false, error: error instanceof MilkitError ? error.render() : String(error), metrics: {} };
    }).catch(failing);
    if (typeof outcome === 'string') {
      interrupted = outcome;
      break;
    }
    outcomes.push(outcome);
  }
  if (!options.sources) await source.close?.();

  // Results keyed by fold: the summary is recomputed from every finished fold on disk (earlier invocations' and
  // this one's), so a fold subset or a resume adds or refreshes folds and never drops the others.
  const failedNow = new Map(outcomes.filter((o) => !o.ok).map((o) => [o.fold, o]));
  const finished: FoldDone[] = [];
  for (const fold of folds) {
    if (failedNow.has(fold.index)) continue;
    const done = await readFoldDone(outDir, fold.index, resolved.configHash);
    if (done) finished.push(done);
  }
  const succeeded = finished.map((d) => d.outcome);
  const allOutcomes = [...succeeded, ...failedNow.values()].sort((a, b) => a.fold - b.fold);
  const allPredictions = finished.flatMap((d) => d.predictions);
  const missingFolds = folds.map((f) => f.index).filter((index) => !succeeded.some((o) => o.fold === index));
  const foldValues = succeeded.map((o) => ({ ...o.metrics, ...(o.instanceAuc ? { instance_auc: o.instanceAuc } : {}) }));
  // With repeated CV the ± is the spread of the per-repeat means (as MHIM-MIL reports it); over all folds it would mix
  // fold-to-fold and repeat-to-repeat variance.
  const repeatOf = new Map(folds.map((f) => [f.index, f.repeat ?? 0]));
  const repeated = new Set(succeeded.map((o) => repeatOf.get(o.fold) ?? 0)).size > 1;
  const summary: ExperimentResult['summary'] = repeated ? summarizeByRepeat(succeeded, foldValues, repeatOf) : summarizeFolds(foldValues);
  const stdMeaning = repeated ? 'sample standard deviation (ddof=1) of the per-repeat means' : 'sample standard deviation (ddof=1)';
  const partial = missingFolds.length > 0;
  await writePredictionsCsv(path.join(outDir, 'predictions.csv'), allPredictions, source.classNames, options.fs, hierarchy?.coarseNames).catch(failing);
  // Two-level labels: confusion matrices and per-class scores of both levels, pooled over folds and per fold.
  const hierarchyFile = path.join(outDir, 'hierarchy.json');
  if (hierarchy) await write(hierarchyFile, JSON.stringify(hierarchyReport(allPredictions, source.classNames, hierarchy), null, 2));
  // ROC/PR per fold and the mean ROC; a rendering failure is reported but never costs the computed results.
  const curveFolds = succeeded.map((o) => {
    const rows = allPredictions.filter((p) => p.fold === o.fold);
    return { fold: o.fold, input: { labels: rows.map((p) => p.label), probs: rows.map((p) => p.probs), numClasses } };
  });
  const plots = await writeCurvePlots(path.join(outDir, 'plots'), curveFolds, source.classNames, config.name).catch((error: unknown): CurveFiles => {
    logger.warn(`could not draw ROC/PR figures: ${renderError(error, false)}`);
    return { roc: [], pr: [] };
  });
  // eval.bootstrap > 0: percentile 95% CIs per fold and metric (slides resampled with replacement, seeded).
  const bootstrapFile = path.join(outDir, 'bootstrap.json');
  if (config.eval.bootstrap > 0) {
    const rng = new Rng(`bootstrap/${config.seed}`);
    const folds = Object.fromEntries(curveFolds.map(({ fold, input }) => [String(fold), bootstrapMetrics(metrics, input, { resamples: config.eval.bootstrap, rng: rng.fork(`fold-${fold}`) })]));
    await write(bootstrapFile, JSON.stringify({ level: 0.95, resamples: config.eval.bootstrap, method: 'percentile bootstrap over test slides', folds }, null, 2));
  }
  // The run's headline numbers with CIs: each metric on all out-of-fold test predictions, patients resampled.
  let pooled: PooledIntervals | undefined;
  if (config.eval.bootstrap > 0) {
    const stream = `bootstrap/${config.seed}/pooled`;
    const records: FoldRecord[] = succeeded.map((o) => {
      const rows = allPredictions.filter((p) => p.fold === o.fold);
      return {
        index: o.fold, repeat: repeatOf.get(o.fold) ?? 0, metrics: {},
        predictions: { slideIds: rows.map((p) => p.slideId), caseIds: rows.map((p) => p.caseId), labels: rows.map((p) => p.label), probs: rows.map((p) => p.probs), numClasses },
      };
    });
    // Planned folds that failed are null, so the report can say the pool is incomplete.
    const planned = folds.map((f) => records.find((r) => r.index === f.index) ?? null);
    const root = new Rng(stream);
    pooled = {
      resamples: config.eval.bootstrap, level: 0.95, stream,
      metrics: Object.fromEntries(metrics.map(({ name, metric }) => [name, cellInterval(planned, metric, { resamples: config.eval.bootstrap, rng: root.fork(name) })])),
    };
  }
  await write(path.join(outDir, 'summary.json'), JSON.stringify({
    folds: allOutcomes, summary, std: stdMeaning, ...(pooled ? { pooled } : {}),
    // A summary over some folds only says so: which are missing and, after a signal, how to finish them.
    ...(partial ? { partial: true, missingFolds, ...(interrupted ? { interrupted } : {}) } : {}),
  }, null, 2));
  if (tracker && parentRunId && !foldsOnly && !parentUntouched) {
    const now = Date.now();
    const points = Object.entries(summary).flatMap(([key, s]) => [
      ...(s.mean !== null ? [{ key: `test/${key}_mean`, value: s.mean, step: 0, timestamp: now }] : []),
      ...(s.std !== null ? [{ key: `test/${key}_std`, value: s.std, step: 0, timestamp: now }] : []),
    ]);
    for (const [key, interval] of Object.entries(pooled?.metrics ?? {})) {
      if (!interval) continue;
      points.push(
        { key: `test/${key}_pooled`, value: interval.value, step: 0, timestamp: now },
        { key: `test/${key}_pooled_ci_low`, value: interval.ci[0], step: 0, timestamp: now },
        { key: `test/${key}_pooled_ci_high`, value: interval.ci[1], step: 0, timestamp: now },
      );
    }
    await tracker.logMetrics(parentRunId, points);
    await tracker.logArtifact(parentRunId, path.join(outDir, 'summary.json'));
    await tracker.logArtifact(parentRunId, path.join(outDir, 'predictions.csv'));
    if (plots.roc.length > 0) await tracker.logArtifact(parentRunId, path.join(outDir, 'plots'), 'plots');
    if (config.eval.bootstrap > 0) await tracker.logArtifact(parentRunId, bootstrapFile);
    if (hierarchy) await tracker.logArtifact(parentRunId, hierarchyFile);
    // KILLED: stopped by a signal (resumable); FAILED: a fold of this invocation failed; FINISHED otherwise.
    const status = interrupted ? 'KILLED' : failedNow.size > 0 ? 'FAILED' : 'FINISHED';
    if (interrupted) await tracker.setTags(parentRunId, { 'milkit.interrupted': interrupted });
    await tracker.endRun(parentRunId, status);
    recordedRuns.experiment = { runId: parentRunId, runKey: resolved.configHash, status };
    await writeJsonAtomic(runsFile, recordedRuns, options.fs).catch(failing);
  }
  await tracker?.flush();
  return {
    outDir, runtime, folds: allOutcomes, summary, missingFolds, ...(pooled ? { pooled } : {}), ...(parentRunId ? { runId: parentRunId } : {}), ...(interrupted ? { interrupted } : {}),
  };
}

/**
 * Refuses results that would mix: a folder recorded with another fold count, or (with --resume or a fold subset)
 * other data. A full run without --resume over changed data starts the folder afresh; --force always does.
 */
async function checkRunIdentity(options: RunOptions, outDir: string, identity: Parameters<typeof checkIdentity>[1]): Promise<void> {
  const check = await checkIdentity(outDir, identity);
  if (!check.recorded || (!check.folds && check.dataChanges.length === 0)) return;
  const command = options.resume ? '--resume' : options.folds !== undefined ? `--folds ${options.folds.join(',')}` : undefined;
  if (options.force) {
    options.logger.warn(`${outDir}: ${check.folds ? `recorded with ${check.folds.before} folds, this run has ${check.folds.now}` : 'the data changed'}; --force discards the results there and starts afresh.`);
    await discardResults(outDir);
    return;
  }
  if (check.folds) {
    throw new ConfigError('run-folds-changed', `${outDir} holds a run with ${check.folds.before} folds; this run has ${check.folds.now}. Merging them would mix two splits.`, {
      where: { file: options.resolved.file, key: 'split.folds' },
      hint: 'Give this run another output.dir or name, or pass --force to discard the results in that folder.',
    });
  }
  if (command === undefined) {
    options.logger.warn(`${outDir}: the data changed since the results there were computed (${check.dataChanges[0] ?? ''}); every fold runs afresh.`);
    await discardResults(outDir);
    return;
  }
  throw new ConfigError('run-data-changed', `${command}: the data changed since ${outDir} was computed:\n  ${check.dataChanges.join('\n  ')}`, {
    where: { file: options.resolved.file, key: 'data.dataset' },
    hint: 'To start afresh with the new data, run again without --resume (all folds) or add --force; to keep the old results, restore the data or use another output.dir.',
  });
}

interface FoldJob extends RunOptions {
  readonly fold: Fold;
  readonly pick: (ids: readonly string[]) => SlideRecord[];
  readonly source: BagSource;
  readonly numClasses: number;
  readonly hierarchy: LabelHierarchy | undefined;
  readonly metrics: ReadonlyArray<{ name: string; metric: Metric }>;
  readonly instanceMetric: Metric | undefined;
  readonly outDir: string;
  readonly tracker: Tracker | undefined;
  readonly parentRunId: string | undefined;
  readonly experimentName: string;
  readonly stages: readonly ResolvedStage[];
  readonly memory: { readonly limit: MemoryLimit; readonly checkFrom?: number };
}

async function runOneFold(job: FoldJob): Promise<FoldOutcome> {
  const { resolved, registry, logger, fold, tracker, source, numClasses, hierarchy } = job;
  const { config } = resolved;
  const foldDir = path.join(job.outDir, `fold-${fold.index}`);
  await makeFolder(foldDir, { ...(job.fs ? { fs: job.fs } : {}), action: 'create the fold folder' });
  const foldRng = new Rng(config.seed).fork(`fold-${fold.index}`);
  // Run ids of the fold and its stages are kept beside the checkpoints, so a resumed fold logs into the same runs.
  const runsFile = path.join(foldDir, 'runs.json');
  // A fold that runs again loses its old result until it finishes; the summary then has it as missing, not stale.
  await rm(path.join(foldDir, DONE_FILE), { force: true });
  const recorded = await readJsonIfAny<FoldRuns>(runsFile);
  const knownRuns: FoldRuns = job.resume && recorded ? recorded : { stages: {} };
  const saveRuns = (): Promise<void> => writeFileDurably(runsFile, JSON.stringify(knownRuns, null, 2), job.fs ? { fs: job.fs } : {});
  const foldRunKey = `${resolved.configHash}:${fold.index}`;
  // With split.repeats > 1 the fold index runs over repeats (repeat · folds + fold): the tags let MLflow filter and group by repeat.
  const repeatTags: Record<string, string> = fold.repeat === undefined ? {} : {
    [MILKIT_TAGS.repeat]: String(fold.repeat),
    [MILKIT_TAGS.foldInRepeat]: String(fold.index - fold.repeat * config.split.folds),
  };
  let runId: string | undefined;
  // The stage run being trained, so a stop request can close it KILLED.
  let currentStageRunId: string | undefined;
  if (tracker) {
    // A resumed fold continues in its recorded run (RUNNING after kill -9, KILLED after a signal), reopened.
    runId = knownRuns.fold?.runKey === foldRunKey ? knownRuns.fold.runId : await tracker.startRun({
      experimentName: job.experimentName,
      runName: `fold-${fold.index}`,
      ...(job.parentRunId ? { parentRunId: job.parentRunId } : {}),
      tags: { 'milkit.fold': String(fold.index), ...repeatTags, 'milkit.run_key': foldRunKey, 'milkit.level': 'fold' },
    });
    if (knownRuns.fold?.runId !== runId) {
      // Refreshed without --resume: the earlier run of this fold stays, marked as replaced (filter on this tag).
      const previous = recorded?.fold?.runId;
      if (previous !== undefined && previous !== runId) await tracker.setTags(previous, { 'milkit.superseded_by': runId });
      knownRuns.fold = { runId, runKey: foldRunKey };
      knownRuns.stages = {};
    } else await tracker.reopenRun?.(runId);
    const openRunId = runId;
    await saveRuns().catch(async (error: unknown) => {
      await tracker.endRun(openRunId, 'FAILED').catch(() => undefined);
      throw error;
    });
  }
  const model = new MilModel(
    registry, { ...resolved.slots }, { inputDim: source.featureDim, numClasses, ...(hierarchy ? { hierarchy } : {}) }, foldRng.fork('init'), logger, { prescreenerRng: foldRng.fork('prescreener-init') },
  );
  try {
    if (tracker && runId) await tracker.logParams(runId, { fold: String(fold.index), 'split.train': String(fold.train.length), 'split.val': String(fold.val.length), 'split.test': String(fold.test.length) });
    const userEvents = job.events?.(fold.index);
    const logEpoch = async (target: string, record: EpochRecord): Promise<void> => {
      if (!tracker) return;
      const now = Date.now();
      const points = Object.entries(record.metrics)
        .filter((e): e is [string, number] => e[1] !== null && Number.isFinite(e[1]))
        .map(([key, value]) => ({ key, value, step: record.epoch, timestamp: now }));
      await tracker.logMetrics(target, [...points, { key: 'train/lr', value: record.lr, step: record.epoch, timestamp: now }]);
    };
    // One stage logs its epochs on the fold run (as before stages); several get a child run each under it.
    const perStageRuns = job.stages.length > 1;
    const tracking: StageTracking = {
      startStage: async (stage) => {
        if (!tracker || !runId || !perStageRuns) return runId;
        const stageKey = `${foldRunKey}:${stage.name}`;
        const known = knownRuns.stages[stage.name];
        if (known?.runKey === stageKey) {
          await tracker.reopenRun?.(known.runId);
          currentStageRunId = known.runId;
          return known.runId;
        }
        const stageRunId = currentStageRunId = await tracker.startRun({
          experimentName: job.experimentName,
          runName: `fold-${fold.index}/${stage.name}`,
          parentRunId: runId,
          tags: { 'milkit.fold': String(fold.index), ...repeatTags, 'milkit.stage': stage.name, 'milkit.run_key': stageKey, 'milkit.level': 'stage' },
        });
        knownRuns.stages[stage.name] = { runId: stageRunId, runKey: stageKey };
        await saveRuns();
        return stageRunId;
      },
      onEpochEnd: async (_stage, stageRunId, record) => {
        // A lone stage's epochs go to the fold run through `events` below; logging them here too doubled every point.
        if (stageRunId && perStageRuns) await logEpoch(stageRunId, record);
      },
      endStage: async (_stage, stageRunId, result) => {
        if (!tracker || !stageRunId || !perStageRuns) return;
        const now = Date.now();
        const finals = Object.entries(result.test.metrics).filter((e): e is [string, { value: number }] => e[1].value !== null);
        await tracker.logMetrics(stageRunId, [
          ...finals.map(([key, v]) => ({ key: `test/${key}`, value: v.value, step: result.bestEpoch, timestamp: now })),
          ...(result.test.kept.prescreener !== undefined ? [{ key: 'test/kept_prescreener', value: result.test.kept.prescreener, step: result.bestEpoch, timestamp: now }] : []),
          ...(result.test.kept.aggregator !== undefined ? [{ key: 'test/kept_aggregator', value: result.test.kept.aggregator, step: result.bestEpoch, timestamp: now }] : []),
          ...Object.entries(result.test.stageMs).map(([key, ms]) => ({ key: `time/${key}_ms`, value: ms, step: result.bestEpoch, timestamp: now })),
          { key: 'best_epoch', value: result.bestEpoch, step: result.bestEpoch, timestamp: now },
        ]);
        await tracker.endRun(stageRunId, 'FINISHED');
        currentStageRunId = undefined;
      },
    };
    const results = await runFoldStages({
      registry, stages: job.stages, model, modelLosses: resolved.slots.losses,
      lossSlots: { aggregator: resolved.slots.aggregator, classifier: resolved.slots.classifier },
      source, train: job.pick(fold.train), val: job.pick(fold.val), test: job.pick(fold.test), numClasses,
      metrics: job.metrics, ...(job.instanceMetric ? { instanceMetric: job.instanceMetric } : {}),
      ...(config.data.maxInstances !== undefined ? { maxInstances: config.data.maxInstances } : {}),
      foldRng, foldDir, configHash: resolved.configHash, fold: fold.index, resume: job.resume ?? false, logger, memory: job.memory,
      events: { ...userEvents, onEpochEnd: async (record: EpochRecord) => {
        await userEvents?.onEpochEnd?.(record);
        if (!perStageRuns && runId) await logEpoch(runId, record);
      } },
      tracking,
    });
    const last = results[results.length - 1] as StageResult;
    const instanceAuc = [...results].reverse().find((r) => r.test.instanceAuc !== undefined)?.test.instanceAuc;
    const metrics = foldMetrics(results);
    const predictions = last.test.predictions.map((p) => ({ slideId: p.slideId, caseId: p.caseId, label: p.label, probs: p.probs, prediction: p.prediction, ...(p.coarse ? { coarse: p.coarse } : {}), fold: fold.index }));
    await writePredictionsCsv(path.join(foldDir, 'predictions.csv'), predictions, source.classNames, job.fs, hierarchy?.coarseNames);
    const outcome: FoldOutcome = {
      fold: fold.index, ok: true, metrics, bestEpoch: last.bestEpoch, epochsRun: last.epochsRun,
      secondsPerSlide: last.test.msPerSlide / 1000, ...(instanceAuc ? { instanceAuc } : {}), ...(runId ? { runId } : {}),
    };
    const stageRecords = Object.fromEntries(results.map((r) => [r.name, { bestEpoch: r.bestEpoch, epochsRun: r.epochsRun, stoppedEarly: r.stoppedEarly, history: r.history }]));
    await writeFileDurably(path.join(foldDir, 'metrics.json'), JSON.stringify({ ...outcome, history: last.history, stages: stageRecords }, null, 2), job.fs ? { fs: job.fs } : {});
    if (tracker && runId) {
      const now = Date.now();
      const finals = Object.entries(metrics).filter((e): e is [string, { value: number }] => e[1].value !== null);
      await tracker.logMetrics(runId, [
        ...finals.map(([key, v]) => ({ key: `test/${key}`, value: v.value, step: last.bestEpoch, timestamp: now })),
        ...(instanceAuc && instanceAuc.value !== null ? [{ key: 'test/instance_auc', value: instanceAuc.value, step: last.bestEpoch, timestamp: now }] : []),
        { key: 'time/slide_ms', value: last.test.msPerSlide, step: last.bestEpoch, timestamp: now },
        { key: 'best_epoch', value: last.bestEpoch, step: last.bestEpoch, timestamp: now },
      ]);
      await tracker.logArtifact(runId, path.join(foldDir, 'predictions.csv'));
      await tracker.logArtifact(runId, path.join(foldDir, 'metrics.json'));
      await tracker.endRun(runId, 'FINISHED');
    }
    // Last: a fold counts as finished only once its tracker run is closed, so a resume never skips a RUNNING run.
    await writeJsonAtomic(path.join(foldDir, DONE_FILE), { configHash: resolved.configHash, outcome, predictions } satisfies FoldDone, job.fs);
    return outcome;
  } catch (error) {
    if (tracker && runId) {
      if (error instanceof InterruptedError) {
        // Stopped by a signal: KILLED with an end time; --resume reopens these runs and continues in them.
        for (const id of [currentStageRunId, runId]) {
          if (id === undefined) continue;
          await tracker.setTags(id, { 'milkit.interrupted': error.signal });
          await tracker.endRun(id, 'KILLED');
        }
      } else {
        await tracker.setTags(runId, { 'milkit.error.code': error instanceof MilkitError ? error.code : 'internal' });
        await tracker.endRun(runId, 'FAILED');
      }
    }
    throw error;
  } finally {
    model.dispose();
    logger.debug(`fold ${fold.index}: ${tf.memory().numTensors} tensors alive after dispose`);
  }
}

/** fold-<k>/runs.json: the tracker runs of a fold and its stages, reused on resume. */
interface FoldRuns {
  fold?: { runId: string; runKey: string };
  stages: Record<string, { runId: string; runKey: string }>;
}

/** hierarchy.json: the label hierarchy, and each level's confusion matrix and per-class scores, pooled and per fold. */
function hierarchyReport(predictions: ReadonlyArray<SlidePrediction & { fold: number }>, classNames: readonly string[], hierarchy: LabelHierarchy): Record<string, unknown> {
  const levels = (rows: ReadonlyArray<SlidePrediction>): { fine: LevelReport; coarse: LevelReport } => ({
    fine: levelReport({ labels: rows.map((p) => p.label), probs: rows.map((p) => p.probs), classNames }),
    coarse: levelReport({ labels: rows.map((p) => p.coarse?.label ?? -1), probs: rows.map((p) => p.coarse?.probs ?? []), classNames: hierarchy.coarseNames }),
  });
  const folds = [...new Set(predictions.map((p) => p.fold))].sort((a, b) => a - b);
  return {
    hierarchy: { coarseNames: hierarchy.coarseNames, fineToCoarse: Object.fromEntries(classNames.map((name, f) => [name, hierarchy.coarseNames[hierarchy.fineToCoarse[f] as number] ?? null])) },
    confusionRows: 'true class', confusionColumns: 'predicted class (argmax)',
    pooled: levels(predictions),
    folds: folds.map((fold) => ({ fold, ...levels(predictions.filter((p) => p.fold === fold)) })),
  };
}
