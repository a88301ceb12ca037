// `milkit predict`: a trained run (one fold, or all folds as an ensemble) scores a cohort of feature files.
// Order: load the run → open the cohort → check width, classes and extractor (before any model compute) →
// predict → threshold → predictions.csv, metrics with patient-bootstrap CIs and the ROC figure when labels
// exist → optional heatmaps/instance scores → an MLflow run of its own, tagged with the training run.
// User-facing description: docs/predict.md.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { ConfigError, DataError, renderError } from '../errors.js';
import type { Logger } from '../logger.js';
import { Rng } from '../runtime/random.js';
import { initRuntime } from '../runtime/index.js';
import { loadExperiment } from '../config/index.js';
import { RUN_CONFIG_FILE } from './export.js';
import type { Registry } from '../../registry/registry.js';
import { isLabelled, type BagSource, type SlideRecord } from '../../registry/contracts/data.js';
import type { Metric, MetricInput, MetricValue } from '../../registry/contracts/metric.js';
import type { Tracker } from '../../registry/contracts/tracker.js';
import { validateSource } from '../data/bags.js';
import { recordedPatchSize, readFeatureFileIdentity } from '../data/feature-identity.js';
import { rocCurve } from '../eval/classification.js';
import { computeMetrics, quantileSorted } from '../eval/metrics.js';
import { levelReport, perClassMetrics, type LevelReport } from '../eval/levels.js';
import type { LabelHierarchy } from '../../registry/contracts/data.js';
import { curveSpec, rocSeries, writePng } from '../eval/plots.js';
import {
  DEFAULT_HEATMAP_OPTIONS, instanceScoresCsv, instanceScoresGeoJson, thumbnailPatch, topK, writeHeatmapPng, writeMontagePng, writeText, type HeatmapCanvas, type HeatmapOptions,
} from '../eval/heatmap.js';
import type { SlideReader } from '../slides/reader.js';
import { readPatchTile, readSlideThumbnail, SLIDE_EXTENSIONS } from '../slides/slide-images.js';
import { drawCaseResamples, slidesByCase } from '../stats/paired-bootstrap.js';
import { checkCohort, firstFileIdentity, openCohort } from './predict-cohort.js';
import { ensembleInstanceScores, ensembleProbabilities, loadTrainedRun, predictSlides, resolveRunDir, type FoldPredictions, type SlideInstanceScores, type TrainedRun } from './predict.js';

export type ThresholdRule = 'fixed' | 'youden';

export interface PredictOptions {
  readonly runDir: string;
  /** Job id when `runDir` is a sweep folder. */
  readonly job?: string;
  /** Dataset config file or feature folder; undefined = the run's own dataset. */
  readonly data?: string;
  /** One fold; default every trained fold (ensemble, or each fold on its own split with `split`). */
  readonly fold?: number;
  /** Score each fold's own partition of the run's splits (only with the run's own dataset). */
  readonly split?: 'train' | 'val' | 'test';
  readonly threshold: { readonly rule: ThresholdRule; readonly value: number };
  /** Patient-bootstrap resamples for the CIs (0 = none). */
  readonly bootstrap: number;
  readonly outDir: string;
  readonly heatmaps?: {
    readonly options: HeatmapOptions;
    readonly topK: number;
    readonly patchSize?: number;
    /** Folder of `<slide_id>.png|jpg` thumbnails to draw over. */
    readonly thumbnails?: string;
    /** Folder of the slides (`<slide_id>.svs|tif|…`): thumbnail, level-0 extent and montage patches are read from them. */
    readonly slides?: string;
    /** Slide-reader plugin for `slides` (default openslide). */
    readonly slideReader?: string;
  };
  readonly track: boolean;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly createTracker?: (run: TrainedRun) => Promise<Tracker | undefined>;
}

export interface PredictRow {
  readonly slideId: string;
  readonly caseId: string;
  readonly label: number;
  readonly probs: readonly number[];
  readonly prediction: number;
  /** Fold index, or `ensemble`. */
  readonly fold: string;
  /** The coarse level of a hierarchical task: coarse label, coarse-class probabilities and their argmax. */
  readonly coarse?: { readonly label: number; readonly probs: readonly number[]; readonly prediction: number };
}

export interface CaseBootstrapInterval {
  readonly low: number;
  readonly high: number;
}

export interface PredictResult {
  readonly outDir: string;
  readonly rows: PredictRow[];
  /** Threshold applied to the positive class's probability (binary tasks). */
  readonly threshold: number;
  /** Metrics over all rows (the ensemble, or the pooled folds with --split). */
  readonly metrics: Record<string, MetricValue>;
  /** Per fold (its own rows) when folds were scored separately or --fold was given. */
  readonly foldMetrics: Record<string, Record<string, MetricValue>>;
  readonly intervals: Record<string, CaseBootstrapInterval | null>;
  readonly runId?: string;
  readonly heatmapSlides: number;
}

/** Youden's J threshold on the positive class: the score maximising TPR − FPR (the highest such score). */
export function youdenThreshold(labels: readonly number[], positive: readonly number[]): number | undefined {
  const isPositive = labels.map((l) => l === 1);
  if (!isPositive.some(Boolean) || isPositive.every(Boolean)) return undefined;
  const roc = rocCurve(isPositive, [...positive]);
  let best = -Infinity;
  let threshold: number | undefined;
  for (let i = 1; i < roc.thresholds.length; i += 1) {
    const j = (roc.tpr[i] as number) - (roc.fpr[i] as number);
    // Ties (within rounding: 1 − 1/3 vs 2/3) keep the higher threshold.
    if (j > best + 1e-12) {
      best = j;
      threshold = roc.thresholds[i];
    }
  }
  return threshold;
}

/** Predicted class: binary by the threshold on class 1 (p ≥ t), otherwise the argmax. */
export function predictClass(probs: readonly number[], threshold: number): number {
  if (probs.length === 2) return (probs[1] as number) >= threshold ? 1 : 0;
  return probs.indexOf(Math.max(...probs));
}

/** Binary metrics at the applied threshold (the plugin metrics use their own rules on the probabilities). */
function thresholdMetrics(rows: readonly PredictRow[]): Record<string, MetricValue> {
  const tp = rows.filter((r) => r.label === 1 && r.prediction === 1).length;
  const fn = rows.filter((r) => r.label === 1 && r.prediction === 0).length;
  const tn = rows.filter((r) => r.label === 0 && r.prediction === 0).length;
  const fp = rows.filter((r) => r.label === 0 && r.prediction === 1).length;
  const ratio = (a: number, b: number): MetricValue => (b === 0 ? { value: null, reason: 'no slides of that class' } : { value: a / b });
  return { sensitivity_at_threshold: ratio(tp, tp + fn), specificity_at_threshold: ratio(tn, tn + fp), accuracy_at_threshold: ratio(tp + tn, rows.length) };
}

/**
 * Percentile CI of each metric with patients resampled with replacement (all of a patient's slides together),
 * as the paired comparison does; one stream per metric so adding a metric changes no other interval.
 */
export function caseBootstrap(
  metrics: ReadonlyArray<{ name: string; metric: Metric }>, input: MetricInput, caseIds: readonly string[], resamples: number, rng: Rng, level = 0.95,
): Record<string, CaseBootstrapInterval | null> {
  const cases = slidesByCase(caseIds);
  const out: Record<string, CaseBootstrapInterval | null> = {};
  for (const { name, metric } of metrics) {
    const draws = drawCaseResamples(cases.length, resamples, rng.fork(name));
    const values: number[] = [];
    for (const draw of draws) {
      const slides = draw.flatMap((c) => cases[c] as number[]);
      const v = metric.compute({ labels: slides.map((i) => input.labels[i] as number), probs: slides.map((i) => input.probs[i] as readonly number[]), numClasses: input.numClasses });
      if (v.value !== null) values.push(v.value);
    }
    values.sort((a, b) => a - b);
    const alpha = (1 - level) / 2;
    out[name] = values.length ? { low: quantileSorted(values, alpha), high: quantileSorted(values, 1 - alpha) } : null;
  }
  return out;
}

/**
 * predictions.csv: the flat columns, then for a hierarchical task the coarse ones in the layout training's
 * predictions.csv uses (coarse_label, coarse_label_name, pc_<coarse class>…, coarse_prediction, coarse_prediction_name).
 */
function predictionsCsvText(rows: readonly PredictRow[], classNames: readonly string[], coarseNames?: readonly string[]): string {
  const column = (name: string): string => name.replace(/[^A-Za-z0-9_.-]+/g, '_');
  const coarseHeader = coarseNames ? ['coarse_label', 'coarse_label_name', ...coarseNames.map((c) => `pc_${column(c)}`), 'coarse_prediction', 'coarse_prediction_name'] : [];
  const coarseCells = (r: PredictRow): string[] => {
    if (!coarseNames) return [];
    const c = r.coarse;
    if (!c) return coarseHeader.map(() => '');
    return [isLabelled(r) ? String(c.label) : '', isLabelled(r) ? coarseNames[c.label] ?? '' : '', ...coarseNames.map((_, k) => String(c.probs[k] ?? '')), String(c.prediction), coarseNames[c.prediction] ?? ''];
  };
  const header = ['slide_id', 'case_id', 'label', 'label_name', ...classNames.map((c) => `p_${column(c)}`), 'prediction', 'prediction_name', 'fold', ...coarseHeader];
  return stringify([header, ...rows.map((r) => [
    r.slideId, r.caseId, isLabelled(r) ? String(r.label) : '', classNames[r.label] ?? '', ...classNames.map((_, c) => String(r.probs[c] ?? '')), String(r.prediction), classNames[r.prediction] ?? '', r.fold,
    ...coarseCells(r),
  ])]);
}

/** The coarse level of the rows as a metric input, when every row has one (a hierarchical task). */
function coarseInputOf(rows: readonly PredictRow[], hierarchy: LabelHierarchy | undefined): MetricInput | undefined {
  if (!hierarchy || rows.length === 0 || rows.some((r) => r.coarse === undefined)) return undefined;
  return { labels: rows.map((r) => r.coarse?.label ?? -1), probs: rows.map((r) => r.coarse?.probs ?? []), numClasses: hierarchy.coarseNames.length };
}

/**
 * The metrics a hierarchical task reports beyond the fine ones, named as training's evaluation names them: every
 * configured metric at the coarse level (`coarse_<metric>`) and per-class precision, recall and F1 at both levels
 * (`fine_f1_<class>`, `coarse_recall_<class>`, ...), so predict's numbers and the run's compare key by key.
 */
function levelMetrics(metrics: ReadonlyArray<{ name: string; metric: Metric }>, fine: MetricInput, coarse: MetricInput, classNames: readonly string[], coarseNames: readonly string[]): Record<string, MetricValue> {
  const out: Record<string, MetricValue> = {};
  for (const [name, value] of Object.entries(computeMetrics([...metrics], coarse))) out[`coarse_${name}`] = value;
  Object.assign(out, perClassMetrics(levelReport({ labels: fine.labels, probs: fine.probs, classNames }), 'fine_'));
  Object.assign(out, perClassMetrics(levelReport({ labels: coarse.labels, probs: coarse.probs, classNames: coarseNames }), 'coarse_'));
  return out;
}

/** hierarchy.json of a prediction: each level's confusion matrix and per-class scores, over all rows and per fold. */
function hierarchyReport(rows: readonly PredictRow[], classNames: readonly string[], hierarchy: LabelHierarchy): Record<string, unknown> {
  const levels = (part: readonly PredictRow[]): { fine: LevelReport; coarse: LevelReport } => ({
    fine: levelReport({ labels: part.map((r) => r.label), probs: part.map((r) => r.probs), classNames }),
    coarse: levelReport({ labels: part.map((r) => r.coarse?.label ?? -1), probs: part.map((r) => r.coarse?.probs ?? []), classNames: hierarchy.coarseNames }),
  });
  const folds = [...new Set(rows.map((r) => r.fold))];
  return {
    hierarchy: { coarseNames: hierarchy.coarseNames, fineToCoarse: Object.fromEntries(classNames.map((name, f) => [name, hierarchy.coarseNames[hierarchy.fineToCoarse[f] as number] ?? null])) },
    confusionRows: 'true class', confusionColumns: 'predicted class (argmax)',
    pooled: levels(rows),
    folds: folds.map((fold) => ({ fold, ...levels(rows.filter((r) => r.fold === fold)) })),
  };
}

/** The patch side at level 0 for a slide's heatmap: given, recorded in its file, or the coordinate grid's step. */
function patchSizeOf(scores: SlideInstanceScores, recorded: number | undefined, given: number | undefined): number {
  if (given !== undefined) return given;
  if (recorded !== undefined) return recorded;
  const coords = scores.coords;
  if (!coords) return 1;
  const xs = [...new Set(Array.from({ length: coords.length / 2 }, (_, i) => coords[2 * i] as number))].sort((a, b) => a - b);
  let step = Infinity;
  for (let i = 1; i < xs.length; i += 1) step = Math.min(step, (xs[i] as number) - (xs[i - 1] as number));
  return Number.isFinite(step) && step > 0 ? step : 1;
}

function safeName(text: string): string {
  return text.replace(/[^A-Za-z0-9_.-]+/g, '_');
}

async function writeHeatmaps(
  dir: string, scores: Map<string, SlideInstanceScores>, rows: readonly PredictRow[], run: TrainedRun, source: BagSource | undefined, options: NonNullable<PredictOptions['heatmaps']>,
  registry: Registry, logger: Logger,
): Promise<number> {
  let written = 0;
  const predicted = new Map(rows.map((r) => [r.slideId, r]));
  const opener = options.slides !== undefined
    ? await registry.create(await registry.resolve('slide-reader', { name: options.slideReader ?? 'openslide' }, { key: '--slide-reader' }), { logger })
    : undefined;
  for (const [slideId, slide] of scores) {
    const slideFile = options.slides !== undefined ? SLIDE_EXTENSIONS.map((ext) => path.join(options.slides as string, `${slideId}${ext}`)).find((f) => existsSync(f)) : undefined;
    if (options.slides !== undefined && !slideFile) logger.warn(`${slideId}: no slide file in ${options.slides} (looked for ${SLIDE_EXTENSIONS.join(', ')}), so its heatmap has no thumbnail.`);
    const reader = slideFile && opener ? await opener.open(slideFile) : undefined;
    try {
      const row = predicted.get(slideId);
      written += await writeSlideHeatmaps(dir, slideId, slide, reader, { fine: row?.prediction, coarse: row?.coarse?.prediction }, run, source, options);
    } finally {
      await reader?.close();
    }
  }
  return written;
}

/** Every output of one slide: scores CSV, GeoJSON, heatmap PNG(s) and the top-k montage. */
async function writeSlideHeatmaps(
  dir: string, slideId: string, slide: SlideInstanceScores, reader: SlideReader | undefined, prediction: { readonly fine: number | undefined; readonly coarse: number | undefined },
  run: TrainedRun, source: BagSource | undefined, options: NonNullable<PredictOptions['heatmaps']>,
): Promise<number> {
  const k = slide.scores.length;
  const branchNames = k === run.classNames.length ? run.classNames : Array.from({ length: k }, (_, i) => `branch${i}`);
  // Class-wise attention: the table and GeoJSON's `score` is the predicted class's branch; every branch gets its PNG.
  const drawn = k > 1 ? Math.min(k - 1, prediction.fine ?? 0) : 0;
  // A hierarchical model's coarse-level attention: one more column and PNG per coarse class (`coarse_<class>`).
  const coarseRows = slide.coarseScores ?? [];
  const coarseNames = run.dims.hierarchy?.coarseNames;
  const coarseBranchNames = coarseNames && coarseNames.length === coarseRows.length ? coarseNames : coarseRows.map((_, i) => `branch${i}`);
  const columns = [...slide.scores, ...coarseRows];
  const columnNames = [...branchNames, ...coarseBranchNames.map((name) => `coarse_${name}`)];
  const coarseDrawn = Math.min(coarseRows.length - 1, prediction.coarse ?? 0);
  const file = source ? (source as Partial<{ fileOf(id: string): string }>).fileOf?.call(source, slideId) : undefined;
  const identity = file ? await readFeatureFileIdentity(file) : undefined;
  const patchSize = patchSizeOf(slide, identity ? recordedPatchSize(identity) : undefined, options.patchSize);
  const base = path.join(dir, safeName(slideId));
  await writeText(`${base}.scores.csv`, instanceScoresCsv(slide.coords, columns, columnNames, patchSize, drawn));
  if (slide.coords) {
    await writeText(`${base}.geojson`, JSON.stringify(instanceScoresGeoJson(slideId, slide.coords, columns, columnNames, patchSize, drawn)));
    const thumbnailFile = options.thumbnails ? [`${slideId}.png`, `${slideId}.jpg`].map((n) => path.join(options.thumbnails as string, n)).find((f) => existsSync(f)) : undefined;
    const fromSlide = reader && !thumbnailFile ? await readSlideThumbnail(reader, options.options.maxSize) : undefined;
    const thumbnail = thumbnailFile ?? fromSlide;
    // With the slide, the canvas is the whole scan (level 0), not only the patches' extent.
    const level0 = reader?.levels[0];
    const canvas: HeatmapCanvas = { ...(thumbnail ? { thumbnail } : {}), ...(level0 ? { width0: level0.width, height0: level0.height } : {}) };
    for (let branch = 0; branch < k; branch += 1) {
      const png = k > 1 ? `${base}.heatmap.${safeName(branchNames[branch] as string)}.png` : `${base}.heatmap.png`;
      await writeHeatmapPng(png, { coords: slide.coords, scores: slide.scores[branch] as Float32Array, patchSize }, canvas, options.options);
    }
    for (let branch = 0; branch < coarseRows.length; branch += 1) {
      const png = `${base}.heatmap.coarse.${safeName(coarseBranchNames[branch] as string)}.png`;
      await writeHeatmapPng(png, { coords: slide.coords, scores: coarseRows[branch] as Float32Array, patchSize }, canvas, options.options);
    }
  }
  await writeMontage(`${base}.topk.png`, topK(slide.scores[drawn] as Float32Array, options.topK), slide, reader, patchSize);
  // The coarse montage follows the predicted coarse class's attention.
  if (coarseRows.length > 0) await writeMontage(`${base}.topk.coarse.png`, topK(coarseRows[coarseDrawn] as Float32Array, options.topK), slide, reader, patchSize);
  return 1;
}

/** The top-k montage: tiles cut from the slide at the patches' coordinates, or the bag's thumbnails; nothing without either. */
async function writeMontage(file: string, top: readonly number[], slide: SlideInstanceScores, reader: SlideReader | undefined, patchSize: number): Promise<void> {
  if (reader && slide.coords) {
    const coords = slide.coords;
    const tiles = [];
    for (const i of top) tiles.push(await readPatchTile(reader, coords[2 * i] as number, coords[2 * i + 1] as number, patchSize, MONTAGE_TILE));
    await writeMontagePng(file, tiles, { tile: MONTAGE_TILE });
  } else if (slide.thumbs) {
    await writeMontagePng(file, top.map((i) => thumbnailPatch(slide.thumbs as Uint8Array, i)));
  }
}

/** Side of a montage tile in pixels. */
const MONTAGE_TILE = 128;

/** Per fold: the slides it predicts (a split of the run, or every slide of the cohort). */
function slidesFor(run: TrainedRun, slides: readonly SlideRecord[], split: PredictOptions['split']): (fold: number) => SlideRecord[] {
  if (split === undefined) return () => [...slides];
  const byId = new Map(slides.map((s) => [s.slideId, s]));
  return (fold) => {
    const entry = run.splits?.find((f) => f.index === fold);
    if (!entry) throw new DataError('no-splits', `${run.runDir}: no splits for fold ${fold} (splits/splits.json).`, { hint: 'Predict without --split, or pass a complete run folder.' });
    return entry[split].map((id) => byId.get(id)).filter((s): s is SlideRecord => s !== undefined);
  };
}

/** Youden threshold per fold from its validation split (the run's own data), averaged over the folds. */
export async function validationThreshold(run: TrainedRun, own: BagSource, metrics: ReadonlyArray<{ name: string; metric: Metric }>, logger: Logger): Promise<number> {
  if (run.dims.numClasses !== 2) throw new ConfigError('bad-option', `--threshold youden: Youden's J needs a binary task; the run has ${run.dims.numClasses} classes.`, { hint: 'Drop --threshold (multi-class predictions take the argmax).' });
  const { slides } = await validateSource(own, { onBadSlide: 'skip', logger });
  const perFold = await predictSlides(run, { source: own, slidesOf: slidesFor(run, slides, 'val'), metrics });
  const thresholds = perFold.map((f) => youdenThreshold(f.predictions.map((p) => p.label), f.predictions.map((p) => p.probs[1] as number))).filter((t): t is number => t !== undefined);
  if (thresholds.length === 0) {
    throw new DataError('no-validation', `${run.runDir}: no fold has a validation split with both classes, so Youden's threshold is undefined.`, { hint: 'Use the default threshold (0.5), or a run trained with a validation split (split.valFraction > 0).' });
  }
  return thresholds.reduce((a, b) => a + b, 0) / thresholds.length;
}


/**
 * The trained run a prediction uses: the run (or sweep job) folder resolved, the run's backend initialised before any
 * model tensor exists, then every requested fold loaded.
 */
export async function openTrainedRun(options: Pick<PredictOptions, 'runDir' | 'job' | 'fold' | 'registry' | 'logger' | 'cwd' | 'env'>): Promise<TrainedRun> {
  const { registry, logger } = options;
  const runDir = resolveRunDir(options.runDir, options.cwd, options.job);
  // The run's backend is set before any model tensor exists (loading the run builds the models).
  const runConfig = path.join(runDir, RUN_CONFIG_FILE);
  if (existsSync(runConfig)) {
    const resolved = await loadExperiment(runConfig, [], { registry, cwd: options.cwd, env: options.env }).catch(() => undefined); // loadTrainedRun reports a bad config
    if (resolved) await initRuntime(resolved.config.runtime, { logger });
  }
  const run = await loadTrainedRun(runDir, {
    registry, cwd: options.cwd, env: options.env, logger, ...(options.fold !== undefined ? { folds: [options.fold] } : {}),
  });
  return run;
}

export async function runPredict(options: PredictOptions): Promise<PredictResult> {
  const { registry, logger } = options;
  const started = Date.now();
  const run = await openTrainedRun(options);
  const sources: BagSource[] = [];
  try {
    const cohort = await openCohort(options.data, run, { registry, cwd: options.cwd, logger });
    sources.push(cohort.source);
    if (options.split && !cohort.own) throw new ConfigError('bad-option', `--split ${options.split} applies to the run's own dataset, not to --data ${options.data}.`, { hint: 'Drop --split to score every slide of the cohort.' });
    let ownSource: BagSource | undefined = cohort.own ? cohort.source : undefined;
    const openOwn = async (): Promise<BagSource> => {
      if (!ownSource) {
        ownSource = (await openCohort(undefined, run, { registry, cwd: options.cwd, logger })).source;
        sources.push(ownSource);
      }
      return ownSource;
    };
    // Every check runs before the first forward pass.
    await checkCohort(cohort, run, async () => firstFileIdentity(await openOwn()));
    const { slides } = await validateSource(cohort.source, { onBadSlide: run.resolved.config.data.onBadSlide, logger });
    const numClasses = run.dims.numClasses;
    const metrics = run.resolved.slots.metrics.map((slot) => ({ name: slot.name, metric: registry.create(slot, { numClasses }) as Metric }));

    const threshold = options.threshold.rule === 'youden' ? await validationThreshold(run, await openOwn(), metrics, logger) : options.threshold.value;
    const perFold: FoldPredictions[] = await predictSlides(run, {
      source: cohort.source, slidesOf: slidesFor(run, slides, options.split), metrics, instanceScores: options.heatmaps !== undefined,
      onFold: (fold, n) => logger.info(`fold ${fold}: predicting ${n} slides`),
    });
    return await reportPredictions({
      run, perFold, separate: options.split !== undefined || perFold.length === 1, threshold, metrics, source: cohort.source, cohortLabel: cohort.label,
      ...(options.split ? { mode: `each fold on its ${options.split} split` } : {}), runName: `predict-${safeName(path.basename(options.data ?? 'own-data'))}`,
      params: options.split ? { split: options.split } : {}, started, options,
    });
  } finally {
    for (const source of sources) await source.close?.();
    run.dispose();
  }
}

/** Tracker run ids of the training folds (fold-<k>/runs.json), to link the prediction run to them. */
async function trainingRunIds(run: TrainedRun): Promise<string[]> {
  const ids: string[] = [];
  for (const fold of run.folds) {
    const file = path.join(run.runDir, `fold-${fold.fold}`, 'runs.json');
    if (!existsSync(file)) continue;
    const parsed = JSON.parse(await readFile(file, 'utf8')) as { fold?: { runId?: string } };
    if (parsed.fold?.runId) ids.push(parsed.fold.runId);
  }
  return ids;
}

export { DEFAULT_HEATMAP_OPTIONS };

/** What `reportPredictions` writes from: per-fold predictions of a trained run on a cohort (feature files or slides). */
export interface PredictionReport {
  readonly run: TrainedRun;
  readonly perFold: readonly FoldPredictions[];
  /** Rows per fold (each fold scored separately, or one fold) instead of the ensemble mean. */
  readonly separate: boolean;
  readonly threshold: number;
  readonly metrics: ReadonlyArray<{ name: string; metric: Metric }>;
  /** The bag source, when the slides came from feature files (heatmaps read the recorded patch size). */
  readonly source?: BagSource;
  readonly cohortLabel: string;
  /** metrics.json's `mode` when not the default (fold k / ensemble). */
  readonly mode?: string;
  readonly runName: string;
  /** MLflow tag milkit.level (default predict). */
  readonly level?: string;
  readonly params: Readonly<Record<string, string>>;
  /** Written into metrics.json beside the metrics. */
  readonly summaryExtra?: Readonly<Record<string, unknown>>;
  /** Further MLflow metrics (full key) and artifact files of the same tracker run. */
  readonly extraMetrics?: ReadonlyArray<{ readonly key: string; readonly value: number; readonly step?: number }>;
  readonly extraArtifacts?: readonly string[];
  readonly started: number;
  readonly options: Pick<PredictOptions, 'outDir' | 'bootstrap' | 'heatmaps' | 'track' | 'createTracker' | 'registry' | 'logger'> & { readonly threshold: PredictOptions['threshold']; readonly data?: string };
}

/**
 * The outputs every prediction writes, whatever produced the per-fold predictions: predictions.csv, metrics.json
 * with patient-bootstrap CIs, roc.png, heatmaps, and a tracker run linked to the training run (docs/predict.md#outputs).
 */
export async function reportPredictions(report: PredictionReport): Promise<PredictResult> {
  const { run, perFold, separate, threshold, metrics, options, started } = report;
  const { registry, logger } = options;
  const numClasses = run.dims.numClasses;
  const hierarchy = run.dims.hierarchy;
  // The coarse level's predicted class is its argmax (as training's evaluation); the threshold is a fine-level rule.
  const coarseOf = (c: { label: number; probs: readonly number[] } | undefined): PredictRow['coarse'] =>
    c ? { label: c.label, probs: c.probs, prediction: c.probs.indexOf(Math.max(...c.probs)) } : undefined;
  const rows: PredictRow[] = separate
    ? perFold.flatMap((f) => f.predictions.map((p) => {
        const coarse = coarseOf(p.coarse);
        return { slideId: p.slideId, caseId: p.caseId, label: p.label, probs: p.probs, prediction: predictClass(p.probs, threshold), fold: String(f.fold), ...(coarse ? { coarse } : {}) };
      }))
    : ensembleProbabilities(perFold).map((p) => {
        const coarse = coarseOf(p.coarse);
        return { slideId: p.slideId, caseId: p.caseId, label: p.label, probs: p.probs, prediction: predictClass(p.probs, threshold), fold: 'ensemble', ...(coarse ? { coarse } : {}) };
      });
  const input: MetricInput = { labels: rows.map((r) => r.label), probs: rows.map((r) => r.probs), numClasses };
  const coarseInput = coarseInputOf(rows, hierarchy);
  const withThreshold = (part: readonly PredictRow[], m: Record<string, MetricValue>): Record<string, MetricValue> => (numClasses === 2 ? { ...m, ...thresholdMetrics(part) } : m);
  // Metrics, their CIs, metrics.json and the ROC figure need labels: a cohort without them gets predictions.csv only.
  const labelled = rows.every(isLabelled);
  if (!labelled) logger.info(`${report.cohortLabel}: the slides have no labels, so only predictions are written (no metrics.json, no ROC figure).`);
  const allMetrics = labelled
    ? withThreshold(rows, {
        ...computeMetrics(metrics, input),
        ...(coarseInput && hierarchy ? levelMetrics(metrics, input, coarseInput, run.classNames, hierarchy.coarseNames) : {}),
      })
    : {};
  const foldMetrics = Object.fromEntries(labelled && separate ? perFold.map((f) => [String(f.fold), withThreshold(rows.filter((r) => r.fold === String(f.fold)), f.metrics)]) : []);
  const bootstrapRng = new Rng(`predict-bootstrap/${run.resolved.config.seed}`);
  const caseIds = rows.map((r) => r.caseId);
  // One stream per metric name (caseBootstrap forks by name), so the coarse intervals leave the fine ones unchanged.
  const intervals = labelled && options.bootstrap > 0
    ? {
        ...caseBootstrap(metrics, input, caseIds, options.bootstrap, bootstrapRng),
        ...(coarseInput ? caseBootstrap(metrics.map((m) => ({ name: `coarse_${m.name}`, metric: m.metric })), coarseInput, caseIds, options.bootstrap, bootstrapRng) : {}),
      }
    : {};

  await mkdir(options.outDir, { recursive: true });
  const predictionsFile = path.join(options.outDir, 'predictions.csv');
  await writeFile(predictionsFile, predictionsCsvText(rows, run.classNames, coarseInput ? hierarchy?.coarseNames : undefined));
  const hierarchyFile = path.join(options.outDir, 'hierarchy.json');
  if (labelled && coarseInput && hierarchy) await writeFile(hierarchyFile, `${JSON.stringify(hierarchyReport(rows, run.classNames, hierarchy), null, 2)}\n`);
  const rocFile = path.join(options.outDir, 'roc.png');
  let roc = false;
  if (labelled) try {
    const series = rocSeries(input, run.classNames);
    if (series.length > 0) {
      await writePng(curveSpec(`ROC · ${path.basename(run.runDir)} on ${report.cohortLabel}`, 'False positive rate', 'True positive rate', series, true), rocFile);
      roc = true;
    }
  } catch (error) {
    logger.warn(`could not draw the ROC figure: ${renderError(error, false)}`);
  }
  const coarseRocFile = path.join(options.outDir, 'roc.coarse.png');
  let coarseRoc = false;
  if (labelled && coarseInput && hierarchy) {
    try {
      const series = rocSeries(coarseInput, hierarchy.coarseNames);
      if (series.length > 0) {
        await writePng(curveSpec(`ROC (coarse level) · ${path.basename(run.runDir)} on ${report.cohortLabel}`, 'False positive rate', 'True positive rate', series, true), coarseRocFile);
        coarseRoc = true;
      }
    } catch (error) {
      logger.warn(`could not draw the coarse-level ROC figure: ${renderError(error, false)}`);
    }
  }
  let heatmapSlides = 0;
  if (options.heatmaps) {
    if (!run.folds.some((f) => f.model.capabilities.instanceScores)) {
      logger.warn(`aggregator "${run.resolved.slots.aggregator.name}" declares no instance scores, so there are no heatmaps (milkit plugins aggregator lists the capability).`);
    } else {
      const scores = separate ? new Map(perFold.flatMap((f) => [...f.instanceScores])) : ensembleInstanceScores(perFold);
      heatmapSlides = await writeHeatmaps(path.join(options.outDir, 'heatmaps'), scores, rows, run, report.source, options.heatmaps, registry, logger);
    }
  }
  const summaryFile = path.join(options.outDir, 'metrics.json');
  const summary = {
    run: run.runDir, cohort: report.cohortLabel, folds: run.folds.map((f) => f.fold), mode: report.mode ?? (separate ? `fold ${run.folds[0]?.fold}` : 'ensemble (mean probability over folds)'), ...(report.summaryExtra ?? {}),
    threshold: { rule: options.threshold.rule, value: threshold }, slides: rows.length, metrics: allMetrics, foldMetrics,
    bootstrap: options.bootstrap > 0 ? { level: 0.95, resamples: options.bootstrap, method: 'percentile bootstrap over patients (cases)', intervals } : undefined,
  };
  if (labelled) await writeFile(summaryFile, `${JSON.stringify(summary, null, 2)}\n`);

  let runId: string | undefined;
  const tracker = options.track ? await options.createTracker?.(run) : undefined;
  if (tracker) {
    const config = run.resolved.config;
    const trainingRuns = await trainingRunIds(run);
    runId = await tracker.startRun({
      experimentName: config.tracking.experimentName ?? config.name,
      runName: report.runName,
      tags: {
        'milkit.level': report.level ?? 'predict', 'milkit.predict.trainingRunDir': run.runDir, 'milkit.predict.trainingConfigHash': run.resolved.configHash,
        ...(trainingRuns.length ? { 'milkit.predict.trainingRuns': trainingRuns.join(',') } : {}), 'milkit.predict.cohort': report.cohortLabel,
      },
    });
    await tracker.logParams(runId, { folds: run.folds.map((f) => f.fold).join(','), threshold_rule: options.threshold.rule, threshold: String(threshold), ...report.params });
    const now = Date.now();
    await tracker.logMetrics(runId, [
      ...Object.entries(allMetrics).filter((e): e is [string, { value: number }] => e[1].value !== null).map(([key, v]) => ({ key: `predict/${key}`, value: v.value, step: 0, timestamp: now })),
      ...Object.entries(intervals).flatMap(([key, ci]) => (ci ? [{ key: `predict/${key}_ci_low`, value: ci.low, step: 0, timestamp: now }, { key: `predict/${key}_ci_high`, value: ci.high, step: 0, timestamp: now }] : [])),
      { key: 'predict/seconds', value: (Date.now() - started) / 1000, step: 0, timestamp: now },
      ...(report.extraMetrics ?? []).map((m) => ({ key: m.key, value: m.value, step: m.step ?? 0, timestamp: now })),
    ]);
    await tracker.logArtifact(runId, predictionsFile);
    if (labelled) await tracker.logArtifact(runId, summaryFile);
    if (roc) await tracker.logArtifact(runId, rocFile);
    if (coarseRoc) await tracker.logArtifact(runId, coarseRocFile);
    if (labelled && coarseInput) await tracker.logArtifact(runId, hierarchyFile);
    if (heatmapSlides > 0) await tracker.logArtifact(runId, path.join(options.outDir, 'heatmaps'), 'heatmaps');
    for (const file of report.extraArtifacts ?? []) await tracker.logArtifact(runId, file);
    await tracker.endRun(runId, 'FINISHED');
    await tracker.flush();
  }
  return { outDir: options.outDir, rows, threshold, metrics: allMetrics, foldMetrics, intervals, heatmapSlides, ...(runId ? { runId } : {}) };
}
