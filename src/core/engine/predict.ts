// Prediction with a trained run: rebuilds every fold's model as it was tested (all parts, pre-screener included,
// screening on when a stage trained it; the last stage's selected checkpoint), then scores bags. The same code
// serves `milkit predict` (feature files) and any later slide-level inference: `loadTrainedRun` gives the
// models, `predictSlides` takes a bag source and slides and returns per-fold probabilities and instance scores.
// Design and the ensemble rule: docs/predict.md.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ConfigError, DataError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { loadExperiment, type ResolvedExperiment } from '../config/index.js';
import { Rng } from '../runtime/random.js';
import type { Registry } from '../../registry/registry.js';
import type { BagData, BagSource, SlideRecord } from '../../registry/contracts/data.js';
import type { Metric, MetricValue } from '../../registry/contracts/metric.js';
import type { Fold } from '../data/splits.js';
import { HIERARCHY_EXTRAS } from '../../registry/contracts/model.js';
import { assignVariables, loadCheckpoint } from './checkpoint.js';
import { evaluate, type SlidePrediction } from './evaluate.js';
import { loadTrainedFold, locateFoldCheckpoint, RUN_CONFIG_FILE } from './export.js';
import { MilModel, type ModelDims } from './model.js';
import { buildViews } from '../data/bags.js';
import { fullPass, type SlidePass } from './screening.js';
import { resolveStages, stageStreams, type ResolvedStage } from './stages.js';
import { readJsonIfAny, RUN_IDENTITY_FILE, type RunIdentity } from './run-folder.js';

const FOLD_DIR = /^fold-(\d+)$/;

/** One fold's model as its test evaluation ran it. */
export interface TrainedFoldModel {
  readonly fold: number;
  readonly model: MilModel;
  readonly checkpointFile: string;
  /** Stage whose selected checkpoint was loaded (the last one), when the run has stages. */
  readonly stage: string;
  /** The stream the fold's test evaluation used, so predictions on its own test split are identical. */
  readonly testRng: () => Rng;
}

/** A trained run, every requested fold loaded. */
export interface TrainedRun {
  readonly runDir: string;
  readonly resolved: ResolvedExperiment;
  /** Class names in index order, as the run trained them. */
  readonly classNames: readonly string[];
  readonly dims: ModelDims;
  readonly folds: readonly TrainedFoldModel[];
  /** The run's own splits (splits/splits.json), when present. */
  readonly splits?: readonly Fold[];
  /** Folder the run's own data paths are relative to (the experiment file's folder, from the resolved config's header). */
  readonly dataBaseDir: string;
  dispose(): void;
}

/** Class names of a run from CLAM's per-class split descriptor it wrote (first column, header skipped). */
export async function runClassNames(runDir: string, fold: number): Promise<string[] | undefined> {
  const file = path.join(runDir, 'splits', `splits_${fold}_descriptor.csv`);
  if (!existsSync(file)) return undefined;
  const rows = (await readFile(file, 'utf8')).split(/\r?\n/).filter((line) => line.trim() !== '').slice(1);
  return rows.map((line) => {
    const cell = line.split(',')[0] ?? '';
    return cell.startsWith('"') && cell.endsWith('"') ? cell.slice(1, -1).replace(/""/g, '"') : cell;
  });
}

/** The folder the run's experiment file was in (header line `# source: <file>` of config.resolved.yaml). */
export function runSourceDir(runDir: string, cwd: string): string {
  const file = path.join(runDir, RUN_CONFIG_FILE);
  const header = existsSync(file) ? readFileSync(file, 'utf8').split('\n').find((line) => line.startsWith('# source:')) : undefined;
  const source = header?.slice('# source:'.length).trim();
  return source ? path.dirname(path.resolve(cwd, source)) : runDir;
}

/** Trained folds of a run folder (fold-<k> folders), ascending. */
function trainedFolds(runDir: string, entries: readonly string[]): number[] {
  return entries.map((name) => FOLD_DIR.exec(name)).filter((m): m is RegExpExecArray => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b);
}

/**
 * The run folder of `target`: itself when it holds a run config; in a sweep folder (`jobs/<id>/`), the job named
 * by `job`, or its only trained job. Several jobs and no `job` is an error listing them.
 */
export function resolveRunDir(target: string, cwd: string, job?: string): string {
  const full = path.resolve(cwd, target);
  const jobsDir = path.join(full, 'jobs');
  if (job === undefined && existsSync(path.join(full, RUN_CONFIG_FILE))) return full;
  if (!existsSync(jobsDir)) {
    if (job !== undefined) throw new ConfigError('bad-option', `--job ${job}: ${target} is not a sweep folder (no jobs/).`, { hint: 'Drop --job, or pass the sweep folder.' });
    return full; // loadTrainedRun reports what is missing
  }
  const trained = readdirSync(jobsDir).filter((id) => existsSync(path.join(jobsDir, id, RUN_CONFIG_FILE))).sort();
  if (job !== undefined) {
    if (!trained.includes(job)) throw new ConfigError('bad-option', `--job ${job}: the sweep has no trained job of that id (trained: ${trained.slice(0, 10).join(', ') || 'none'}${trained.length > 10 ? ', ...' : ''}).`, { hint: 'milkit sweep status <sweep> lists the jobs.' });
    return path.join(jobsDir, job);
  }
  if (trained.length === 1) return path.join(jobsDir, trained[0] as string);
  throw new ConfigError('job-required', `${target} is a sweep with ${trained.length} trained jobs; say which one predicts.`, {
    hint: `Pass --job <id> (${trained.slice(0, 5).join(', ')}${trained.length > 5 ? ', ...' : ''}), e.g. the best row of the sweep's table.`,
  });
}

export interface LoadRunOptions {
  readonly registry: Registry;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger?: Logger;
  /** Folds to load (default: every trained fold). */
  readonly folds?: readonly number[];
}

/**
 * Loads a run folder's folds for prediction: the run's resolved config, then per fold the last stage's selected
 * checkpoint (or the old layout's best/last) into the full model, in eval mode, screening as the run tested.
 */
export async function loadTrainedRun(runDir: string, options: LoadRunOptions): Promise<TrainedRun> {
  const { registry } = options;
  const logger = options.logger ?? silentLogger;
  const full = path.resolve(options.cwd, runDir);
  if (!existsSync(path.join(full, RUN_CONFIG_FILE))) {
    throw new DataError('not-a-run', `${runDir}: no ${RUN_CONFIG_FILE}, so this is not a run folder.`, { hint: 'Pass the run folder milkit run wrote (outputs/<name>/<hash>); for a sweep, one of its job folders.' });
  }
  const available = trainedFolds(full, readdirSync(full));
  if (available.length === 0) throw new DataError('no-checkpoint', `${runDir}: the run has no fold-<k> folders, so no trained fold.`, { hint: 'Train it first: milkit run <config>.' });
  const wanted = options.folds ?? available;
  for (const fold of wanted) {
    if (!available.includes(fold)) throw new ConfigError('bad-option', `--fold ${fold}: the run has no fold-${fold} (trained folds: ${available.join(', ')}).`, { hint: 'Pass one of the trained folds, or leave --fold out to use them all as an ensemble.' });
  }
  const loaded: TrainedFoldModel[] = [];
  let resolved: ResolvedExperiment | undefined;
  let dims: ModelDims | undefined;
  let checkpointDims: ModelDims | undefined;
  let stages: ResolvedStage[] = [];
  // With a trainable encoder the checkpoint's shapes give the aggregator's width (the encoder's output), not the
  // width of the instances the model reads; run.json records the training data's width, which a cohort must match.
  const trainedWidth = (await readJsonIfAny<RunIdentity>(path.join(full, RUN_IDENTITY_FILE)))?.data.featureDim;
  try {
    for (const fold of wanted) {
      const located = await locateFoldCheckpoint(full, { cwd: options.cwd, fold });
      // The aggregator + classifier loader knows how to read the run's dims off the checkpoint; its model is only a probe.
      const probe = await loadTrainedFold(located, { registry, cwd: options.cwd, env: options.env, logger });
      probe.model.dispose();
      resolved ??= probe.resolved;
      stages = stages.length ? stages : await resolveStages(resolved, registry);
      if (checkpointDims && (checkpointDims.inputDim !== probe.dims.inputDim || checkpointDims.numClasses !== probe.dims.numClasses)) {
        throw new DataError('inconsistent-folds', `${located.file}: fold ${fold} has D = ${probe.dims.inputDim}, C = ${probe.dims.numClasses}, other folds D = ${checkpointDims.inputDim}, C = ${checkpointDims.numClasses}.`, { hint: 'The folds do not belong to one run; pass --fold.' });
      }
      checkpointDims = probe.dims;
      dims = probe.resolved.slots.encoder && trainedWidth !== undefined ? { ...probe.dims, inputDim: trainedWidth } : probe.dims;
      loaded.push(await buildFoldModel(registry, resolved, stages, dims, fold, located.file, logger));
    }
  } catch (error) {
    for (const f of loaded) f.model.dispose();
    throw error;
  }
  const run = resolved as ResolvedExperiment;
  const modelDims = dims as ModelDims;
  const classNames = (await runClassNames(full, wanted[0] as number)) ?? Array.from({ length: modelDims.numClasses }, (_, c) => `class ${c}`);
  const splitsFile = path.join(full, 'splits', 'splits.json');
  const splits = existsSync(splitsFile) ? (JSON.parse(await readFile(splitsFile, 'utf8')) as { folds: Fold[] }).folds : undefined;
  return {
    runDir: full, resolved: run, classNames, dims: modelDims, folds: loaded, ...(splits ? { splits } : {}), dataBaseDir: runSourceDir(full, options.cwd),
    dispose: () => {
      for (const f of loaded) f.model.dispose();
    },
  };
}

/** The full model of one fold with its selected checkpoint's weights (every part the checkpoint holds). */
async function buildFoldModel(
  registry: Registry, resolved: ResolvedExperiment, stages: readonly ResolvedStage[], dims: ModelDims, fold: number, file: string, logger: Logger,
): Promise<TrainedFoldModel> {
  const { slots, config } = resolved;
  // Built as the run built it (same streams), though every weight is then overwritten from the checkpoint.
  const foldRng = new Rng(config.seed).fork(`fold-${fold}`);
  const model = new MilModel(registry, { ...slots }, dims, foldRng.fork('init'), logger, { prescreenerRng: foldRng.fork('prescreener-init') });
  try {
    const last = stages[stages.length - 1];
    if (last?.losses) model.useLosses(registry, { aggregator: slots.aggregator, classifier: slots.classifier, losses: last.losses });
    if (model.prescreener && stages.some((s) => s.trains.includes('prescreener'))) model.screening = true;
    const checkpoint = await loadCheckpoint(file);
    if (!checkpoint) throw new DataError('no-checkpoint', `${file}: no such checkpoint.`, { hint: 'Train the fold first.' });
    assignVariables(model.namedTensors().map(([name, entry]) => [name, entry.variable] as const), checkpoint.tensors, 'model/', file);
    model.setTraining(false);
    return { fold, model, checkpointFile: file, stage: last?.name ?? '', testRng: () => (last ? stageStreams(foldRng, last).test : foldRng.fork('test')) };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** Per-instance scores of one slide: [K][N] rows (K = 1, or one per class for class-wise attention), with coords. */
export interface SlideInstanceScores {
  readonly slideId: string;
  /** Rows of the model's `instanceScores`, each over every instance in slide order. */
  readonly scores: Float32Array[];
  /**
   * Coarse-level rows [Kc][N] of a hierarchical model's class-wise attention (the `coarseInstanceScores` extra), one
   * per coarse class, when the model gives them over every instance.
   */
  readonly coarseScores?: Float32Array[];
  /** [N, 2] level-0 coordinates, when the bag has them. */
  readonly coords?: Float32Array;
  /** [N, 16, 16, 3] thumbnails, when the bag has them (montage). */
  readonly thumbs?: Uint8Array;
  /** [N] planted instance labels, when the data has them. */
  readonly instanceLabels?: Uint8Array;
}

export interface FoldPredictions {
  readonly fold: number;
  readonly predictions: SlidePrediction[];
  readonly metrics: Record<string, MetricValue>;
  /** Per slide, when asked for and the aggregator declares instance scores over every instance. */
  readonly instanceScores: Map<string, SlideInstanceScores>;
}

export interface PredictSlidesOptions {
  readonly source: BagSource;
  /** Slides per fold: the same list for every fold (a new cohort), or a fold's own split (`--split`). */
  readonly slidesOf: (fold: number) => readonly SlideRecord[];
  readonly metrics: ReadonlyArray<{ readonly name: string; readonly metric: Metric }>;
  /** Copy instance scores (heatmaps); only aggregators with the instanceScores capability give them. */
  readonly instanceScores?: boolean;
  readonly onFold?: (fold: number, slides: number) => void;
}

/** The rows of a [K, N] score tensor as host arrays. */
function scoreRows(scores: tf.Tensor): Float32Array[] {
  const values = scores.dataSync() as Float32Array;
  const [k = 0, n = 0] = scores.shape;
  return Array.from({ length: k }, (_, row) => values.slice(row * n, (row + 1) * n));
}

function copyScores(slide: SlideRecord, data: BagData, pass: SlidePass): SlideInstanceScores | undefined {
  const scores = pass.output.instanceScores;
  // Screened passes score only the kept rows; a heatmap needs a score for every patch.
  if (!pass.allInstances || !scores || scores.shape[1] !== data.n) return undefined;
  // A hierarchical model's coarse-level attention (keyed on the extra it declares, not on the aggregator).
  const coarse = pass.output.extras?.[HIERARCHY_EXTRAS.coarseInstanceScores];
  const coarseUsable = coarse !== undefined && coarse.rank === 2 && coarse.shape[1] === data.n;
  return {
    slideId: slide.slideId,
    scores: scoreRows(scores),
    ...(coarseUsable ? { coarseScores: scoreRows(coarse) } : {}),
    ...(data.coords ? { coords: data.coords } : {}),
    ...(data.thumbs ? { thumbs: data.thumbs } : {}),
    ...(data.instanceLabels ? { instanceLabels: data.instanceLabels } : {}),
  };
}

/**
 * Runs every fold of a trained run over its slides (the evaluation the run's test used: eval mode, the fold's
 * test stream, one warm-up pass) and returns per-fold predictions, metrics and, when asked, instance scores.
 */
export async function predictSlides(run: TrainedRun, options: PredictSlidesOptions): Promise<FoldPredictions[]> {
  const out: FoldPredictions[] = [];
  for (const fold of run.folds) {
    const slides = options.slidesOf(fold.fold);
    options.onFold?.(fold.fold, slides.length);
    const instanceScores = new Map<string, SlideInstanceScores>();
    const result = await evaluate({
      model: fold.model, source: options.source, slides, numClasses: run.dims.numClasses, metrics: options.metrics, rng: fold.testRng(),
      views: fold.model.capabilities.needsViews, warmup: true,
      ...(options.instanceScores && fold.model.capabilities.instanceScores
        ? { onSlide: (slide: SlideRecord, data: BagData, pass: SlidePass) => {
            const copied = copyScores(slide, data, pass);
            if (copied) instanceScores.set(slide.slideId, copied);
          } }
        : {}),
    });
    // A screened model's pass scores only the patches its pre-screener keeps; heatmaps need every patch, so its
    // instance scores come from the full pass (the aggregator on all patches, HDMIL's all-patches mode).
    if (options.instanceScores && fold.model.capabilities.instanceScores && fold.model.screening) {
      const rng = fold.testRng().fork('instance-scores');
      for (const slide of slides) {
        const data = await options.source.load(slide.slideId);
        const pass = fullPass(fold.model, data, { io: { training: false, rng }, views: fold.model.capabilities.needsViews, makeViews: buildViews });
        try {
          const copied = copyScores(slide, data, pass);
          if (copied) instanceScores.set(slide.slideId, copied);
        } finally {
          tf.dispose(pass.output as unknown as tf.TensorContainer);
        }
      }
    }
    out.push({ fold: fold.fold, predictions: result.predictions, metrics: result.metrics, instanceScores });
  }
  return out;
}

/** One slide of the fold ensemble: the mean fine probabilities, and the mean coarse ones for a hierarchical task. */
export interface EnsembleProbabilities {
  readonly slideId: string;
  readonly caseId: string;
  readonly label: number;
  readonly probs: number[];
  /** Coarse label and the folds' mean coarse-class probabilities (each fold's own coarse head, or its summed fine ones). */
  readonly coarse?: { readonly label: number; readonly probs: number[] };
}

/** Column means of equally long probability rows. */
function meanRows(rows: ReadonlyArray<readonly number[]>): number[] {
  const width = rows[0]?.length ?? 0;
  return Array.from({ length: width }, (_, c) => rows.reduce((a, r) => a + (r[c] as number), 0) / rows.length);
}

/** Mean of the folds' probabilities per slide (the ensemble) at every level, in the first fold's slide order. */
export function ensembleProbabilities(folds: readonly FoldPredictions[]): EnsembleProbabilities[] {
  const first = folds[0];
  if (!first) return [];
  const bySlide = folds.map((f) => new Map(f.predictions.map((p) => [p.slideId, p])));
  return first.predictions.map((p) => {
    const rows = bySlide.map((m) => m.get(p.slideId)).filter((r): r is SlidePrediction => r !== undefined);
    const probs = meanRows(rows.map((r) => r.probs));
    const coarseRows = rows.map((r) => r.coarse?.probs).filter((c): c is readonly number[] => c !== undefined);
    const coarse = p.coarse && coarseRows.length === rows.length ? { label: p.coarse.label, probs: meanRows(coarseRows) } : undefined;
    return { slideId: p.slideId, caseId: p.caseId, label: p.label, probs, ...(coarse ? { coarse } : {}) };
  });
}

/** Mean over folds of per-instance scores (ensemble heatmaps); folds missing a slide are left out. */
export function ensembleInstanceScores(folds: readonly FoldPredictions[]): Map<string, SlideInstanceScores> {
  const out = new Map<string, SlideInstanceScores>();
  const first = folds[0];
  if (!first) return out;
  for (const [slideId, base] of first.instanceScores) {
    const all = folds.map((f) => f.instanceScores.get(slideId)).filter((s): s is SlideInstanceScores => s !== undefined && s.scores.length === base.scores.length);
    const meanOf = (rowsOf: (s: SlideInstanceScores) => readonly Float32Array[] | undefined, baseRows: readonly Float32Array[]): Float32Array[] =>
      baseRows.map((row, k) => {
        const mean = new Float32Array(row.length);
        for (const s of all) {
          const other = rowsOf(s)?.[k] as Float32Array;
          for (let i = 0; i < mean.length; i += 1) mean[i] = (mean[i] as number) + (other[i] as number) / all.length;
        }
        return mean;
      });
    const scores = meanOf((s) => s.scores, base.scores);
    const { coarseScores: baseCoarse, ...rest } = base;
    const coarseEverywhere = baseCoarse !== undefined && all.every((s) => s.coarseScores?.length === baseCoarse.length);
    out.set(slideId, { ...rest, scores, ...(coarseEverywhere ? { coarseScores: meanOf((s) => s.coarseScores, baseCoarse) } : {}) });
  }
  return out;
}
