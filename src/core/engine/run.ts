// Runs an experiment: runtime, data (validated before any training), splits (persisted), then every fold
// (its stages in order, each train → select → test; see stages.ts), each fold tracked as a child run (and each
// stage of a multi-stage config as a child of that); a fold that fails is reported and the others finish.
// Writes resolved config, splits, per-fold metrics and predictions, and a cross-fold summary.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MilkitError, renderError } from '../errors.js';
import type { Logger } from '../logger.js';
import { Rng } from '../runtime/random.js';
import { initRuntime, runtimeTags, type RuntimeInfo } from '../runtime/index.js';
import type { SourcePool } from '../data/source-pool.js';
import type { ResolvedExperiment } from '../config/index.js';
import type { Registry } from '../../registry/registry.js';
import type { BagSource, LabelHierarchy, SlideRecord } from '../../registry/contracts/data.js';
import { hierarchyFromConfig } from '../data/labels.js';
import type { Metric, MetricValue } from '../../registry/contracts/metric.js';
import type { Tracker } from '../../registry/contracts/tracker.js';
import { validateSource } from '../data/bags.js';
import { makeSplits, writeSplits, type Fold } from '../data/splits.js';
import { checkSplitSense } from '../data/split-checks.js';
import { bootstrapMetrics, summarizeFolds } from '../eval/metrics.js';
import { summarizeRepeats } from '../stats/repeats.js';
import { writePredictionsCsv } from '../eval/predictions.js';
import { writeCurvePlots, type CurveFiles } from '../eval/plots.js';
import { createTracker, flattenParams, redactConfig, secretEnvExpressions, systemTags } from '../tracking/index.js';
import YAML from 'yaml';
import { MilModel } from './model.js';
import type { EpochRecord, TrainEvents } from './trainer.js';
import type { SlidePrediction } from './evaluate.js';
import { assertStages, foldMetrics, resolveStages, runFoldStages, type ResolvedStage, type StageResult, type StageTracking } from './stages.js';

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
  readonly runId?: string;
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
  const { resolved, registry, logger } = options;
  const { config } = resolved;
  const runtimeSection = options.runtime?.blasThreads !== undefined ? { ...config.runtime, blasThreads: options.runtime.blasThreads } : config.runtime;
  const runtime = await initRuntime(runtimeSection, { logger });
  const outDir = options.outDir ?? experimentOutDir(resolved, options.cwd);
  await mkdir(outDir, { recursive: true });
  // Secrets (keys like *token, *password) never reach disk or the tracker, even in the saved config.
  await writeFile(path.join(outDir, 'config.resolved.yaml'), resolvedYamlRedacted(resolved, options.env));

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
  // Leakage and one-class training sets stop the run (the preflight already refused them); one-class evaluation sets
  // and a validation set equal to the test set are warned about here, where the user reads the run's log.
  checkSplitSense(folds, slides, { classNames: source.classNames, logger, ...(config.split.file !== undefined ? { file: config.split.file } : {}) });
  const splitsDir = path.join(outDir, 'splits');
  // splits.json + CLAM's splits_{k}.csv / _bool / _descriptor, so the exact partitions can be reused.
  await writeSplits(splitsDir, folds, slides, source.classNames, { mode: config.split.mode, seed: splitSeed });

  const metrics = await Promise.all(resolved.slots.metrics.map(async (slot) => ({ name: slot.name, metric: registry.create(slot, { numClasses }) })));
  // The attention's instance-level score: a metric plugin named by config (eval.instanceMetric), never by core.
  const instanceMetricName = config.eval.instanceMetric;
  const instanceMetric = instanceMetricName === null ? undefined : registry.create(await registry.resolve('metric', instanceMetricName, { file: resolved.file, key: 'eval.instanceMetric' }), { numClasses: 2 });

  const tracker = options.tracking?.tracker ?? (config.tracking.enabled ? await createTracker(config.tracking, { registry, logger, cwd: options.cwd, env: options.env }) : undefined);
  const experimentName = config.tracking.experimentName ?? config.name;
  const foldsOnly = options.tracking?.foldsOnly === true && options.tracking.parentRunId !== undefined;
  const parentRunId = foldsOnly
    ? options.tracking?.parentRunId
    : tracker
    ? await tracker.startRun({
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
      })
    : undefined;
  if (tracker && parentRunId && !foldsOnly) {
    const { params, oversized } = flattenParams(config);
    await tracker.logParams(parentRunId, params);
    if (Object.keys(oversized).length > 0) {
      const file = path.join(outDir, 'params.oversized.json');
      await writeFile(file, JSON.stringify(oversized, null, 2));
      await tracker.logArtifact(parentRunId, file);
    }
    await tracker.logArtifact(parentRunId, path.join(outDir, 'config.resolved.yaml'));
    await tracker.logArtifact(parentRunId, splitsDir, 'splits');
  }

  // Stage problems fail before any fold trains (the preflight runs the same checks earlier).
  const stages = await resolveStages(resolved, registry);
  assertStages(resolved, stages, registry);
  const slideById = new Map(slides.map((s) => [s.slideId, s]));
  const pick = (ids: readonly string[]): SlideRecord[] => ids.map((id) => slideById.get(id)).filter((s): s is SlideRecord => s !== undefined);
  const selected = folds.filter((f) => options.folds === undefined || options.folds.includes(f.index));
  const outcomes: FoldOutcome[] = [];
  const allPredictions: Array<SlidePrediction & { fold: number }> = [];
  for (const fold of selected) {
    const outcome = await runOneFold({
      ...options, fold, pick, source, numClasses, hierarchy, metrics, instanceMetric, outDir, tracker, parentRunId, experimentName, allPredictions, stages,
    }).catch((error: unknown): FoldOutcome => {
      logger.error(`fold ${fold.index} failed:\n${renderError(error, false)}`);
      return { fold: fold.index, ok: false, error: error instanceof MilkitError ? error.render() : String(error), metrics: {} };
    });
    outcomes.push(outcome);
  }
  if (!options.sources) await source.close?.();

  const succeeded = outcomes.filter((o) => o.ok);
  const foldValues = succeeded.map((o) => ({ ...o.metrics, ...(o.instanceAuc ? { instance_auc: o.instanceAuc } : {}) }));
  // With repeated CV the ± is the spread of the per-repeat means (as MHIM-MIL reports it); over all folds it would mix
  // fold-to-fold and repeat-to-repeat variance.
  const repeatOf = new Map(folds.map((f) => [f.index, f.repeat ?? 0]));
  const repeated = new Set(succeeded.map((o) => repeatOf.get(o.fold) ?? 0)).size > 1;
  const summary: ExperimentResult['summary'] = repeated ? summarizeByRepeat(succeeded, foldValues, repeatOf) : summarizeFolds(foldValues);
  const stdMeaning = repeated ? 'sample standard deviation (ddof=1) of the per-repeat means' : 'sample standard deviation (ddof=1)';
  await writeFile(path.join(outDir, 'summary.json'), JSON.stringify({ folds: outcomes, summary, std: stdMeaning }, null, 2));
  await writePredictionsCsv(path.join(outDir, 'predictions.csv'), allPredictions, source.classNames);
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
    await writeFile(bootstrapFile, JSON.stringify({ level: 0.95, resamples: config.eval.bootstrap, method: 'percentile bootstrap over test slides', folds }, null, 2));
  }
  if (tracker && parentRunId && !foldsOnly) {
    const now = Date.now();
    const points = Object.entries(summary).flatMap(([key, s]) => [
      ...(s.mean !== null ? [{ key: `test/${key}_mean`, value: s.mean, step: 0, timestamp: now }] : []),
      ...(s.std !== null ? [{ key: `test/${key}_std`, value: s.std, step: 0, timestamp: now }] : []),
    ]);
    await tracker.logMetrics(parentRunId, points);
    await tracker.logArtifact(parentRunId, path.join(outDir, 'summary.json'));
    await tracker.logArtifact(parentRunId, path.join(outDir, 'predictions.csv'));
    if (plots.roc.length > 0) await tracker.logArtifact(parentRunId, path.join(outDir, 'plots'), 'plots');
    if (config.eval.bootstrap > 0) await tracker.logArtifact(parentRunId, bootstrapFile);
    await tracker.endRun(parentRunId, succeeded.length === outcomes.length ? 'FINISHED' : 'FAILED');
  }
  await tracker?.flush();
  return { outDir, runtime, folds: outcomes, summary, ...(parentRunId ? { runId: parentRunId } : {}) };
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
  readonly allPredictions: Array<SlidePrediction & { fold: number }>;
  readonly stages: readonly ResolvedStage[];
}

async function runOneFold(job: FoldJob): Promise<FoldOutcome> {
  const { resolved, registry, logger, fold, tracker, source, numClasses, hierarchy } = job;
  const { config } = resolved;
  const foldDir = path.join(job.outDir, `fold-${fold.index}`);
  await mkdir(foldDir, { recursive: true });
  const foldRng = new Rng(config.seed).fork(`fold-${fold.index}`);
  // Run ids of the fold and its stages are kept beside the checkpoints, so a resumed fold logs into the same runs.
  const runsFile = path.join(foldDir, 'runs.json');
  const knownRuns: FoldRuns = job.resume && existsSync(runsFile) ? (JSON.parse(await readFile(runsFile, 'utf8')) as FoldRuns) : { stages: {} };
  const saveRuns = (): Promise<void> => writeFile(runsFile, JSON.stringify(knownRuns, null, 2));
  const foldRunKey = `${resolved.configHash}:${fold.index}`;
  let runId: string | undefined;
  if (tracker) {
    runId = knownRuns.fold?.runKey === foldRunKey ? knownRuns.fold.runId : await tracker.startRun({
      experimentName: job.experimentName,
      runName: `fold-${fold.index}`,
      ...(job.parentRunId ? { parentRunId: job.parentRunId } : {}),
      tags: { 'milkit.fold': String(fold.index), 'milkit.run_key': foldRunKey, 'milkit.level': 'fold' },
    });
    if (knownRuns.fold?.runId !== runId) {
      knownRuns.fold = { runId, runKey: foldRunKey };
      knownRuns.stages = {};
    } else await tracker.reopenRun?.(runId); // a resumed fold continues in its run, RUNNING again
    await saveRuns();
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
          return known.runId;
        }
        const stageRunId = await tracker.startRun({
          experimentName: job.experimentName,
          runName: `fold-${fold.index}/${stage.name}`,
          parentRunId: runId,
          tags: { 'milkit.fold': String(fold.index), 'milkit.stage': stage.name, 'milkit.run_key': stageKey, 'milkit.level': 'stage' },
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
      },
    };
    const results = await runFoldStages({
      registry, stages: job.stages, model, modelLosses: resolved.slots.losses,
      lossSlots: { aggregator: resolved.slots.aggregator, classifier: resolved.slots.classifier },
      source, train: job.pick(fold.train), val: job.pick(fold.val), test: job.pick(fold.test), numClasses,
      metrics: job.metrics, ...(job.instanceMetric ? { instanceMetric: job.instanceMetric } : {}),
      ...(config.data.maxInstances !== undefined ? { maxInstances: config.data.maxInstances } : {}),
      foldRng, foldDir, configHash: resolved.configHash, fold: fold.index, resume: job.resume ?? false, logger,
      events: { ...userEvents, onEpochEnd: async (record: EpochRecord) => {
        await userEvents?.onEpochEnd?.(record);
        if (!perStageRuns && runId) await logEpoch(runId, record);
      } },
      tracking,
    });
    const last = results[results.length - 1] as StageResult;
    const instanceAuc = [...results].reverse().find((r) => r.test.instanceAuc !== undefined)?.test.instanceAuc;
    const metrics = foldMetrics(results);
    const predictions = last.test.predictions.map((p) => ({ slideId: p.slideId, caseId: p.caseId, label: p.label, probs: p.probs, prediction: p.prediction, fold: fold.index }));
    job.allPredictions.push(...predictions);
    await writePredictionsCsv(path.join(foldDir, 'predictions.csv'), predictions, source.classNames);
    const outcome: FoldOutcome = {
      fold: fold.index, ok: true, metrics, bestEpoch: last.bestEpoch, epochsRun: last.epochsRun,
      secondsPerSlide: last.test.msPerSlide / 1000, ...(instanceAuc ? { instanceAuc } : {}), ...(runId ? { runId } : {}),
    };
    const stageRecords = Object.fromEntries(results.map((r) => [r.name, { bestEpoch: r.bestEpoch, epochsRun: r.epochsRun, stoppedEarly: r.stoppedEarly, history: r.history }]));
    await writeFile(path.join(foldDir, 'metrics.json'), JSON.stringify({ ...outcome, history: last.history, stages: stageRecords }, null, 2));
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
    return outcome;
  } catch (error) {
    if (tracker && runId) {
      await tracker.setTags(runId, { 'milkit.error.code': error instanceof MilkitError ? error.code : 'internal' });
      await tracker.endRun(runId, 'FAILED');
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
