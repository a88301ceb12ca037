// `milkit infer`: a trained run scores whole-slide images directly, in one of HDMIL's two inference modes
// (docs/predict.md#inference-on-slides, docs/methods/hdmil.md#inference-modes):
//   all       (HDMIL†): tissue → patch grid → every patch cropped at the target magnification → embedded → model;
//   screened  (HDMIL):  tissue → patch grid → the 1.25× level read once and cut into 16×16 thumbnails → the
//             pre-screener → only the patches it keeps cropped and embedded → the model on those.
// Patches the pre-screener drops are never read at the target magnification. Every stage is timed per slide
// (Table 2 of the HDMIL paper: LIPN, Crop, Fea, DMIN, plus tissue detection and the total) into timing.csv, the
// printed table and the tracker run; predictions, metrics, ROC and heatmaps are predict's own outputs.
import { existsSync } from 'node:fs';
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import * as tf from '@tensorflow/tfjs';
import { ConfigError, DataError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metric } from '../../registry/contracts/metric.js';
import type { BagData, SlideRecord } from '../../registry/contracts/data.js';
import { buildViews } from '../data/bags.js';
import { computeMetrics } from '../eval/metrics.js';
import { sameIdentity, type FeatureExtractor, type FeatureExtractorIdentity } from '../extract/extractor.js';
import { readFeatureFileAttributes, type FeatureFileAttributes } from '../extract/feature-file.js';
import { patchGeometry, readPatches, type PatchingOptions } from '../extract/pipeline.js';
import { createExtractTools, listSlides, type PluginRef, type SlideEntry } from '../extract/run.js';
import { tissuePatchGrid } from '../slides/patch-grid.js';
import { readPatchThumbnails } from '../slides/patch-thumbnails.js';
import type { SlideOpener, SlideReader } from '../slides/reader.js';
import type { TissueDetector } from '../slides/tissue.js';
import type { SlidePrediction } from './evaluate.js';
import { openCohort } from './predict-cohort.js';
import { openTrainedRun, reportPredictions, validationThreshold, type PredictOptions, type PredictResult } from './predict-run.js';
import type { FoldPredictions, SlideInstanceScores, TrainedRun } from './predict.js';
import { classifyScreened, fullPass, prescreen, screenedRows, type PrescreenDecision } from './screening.js';

export type InferMode = 'all' | 'screened';

/** Side of HDMIL's low-resolution thumbnails (a 256-px 20× patch at 1.25×). */
const THUMB_SIDE = 16;

export interface InferOptions extends Omit<PredictOptions, 'data' | 'split'> {
  /** Slide files, folders of slides, or slide tables (slide_id, slide_file, optional case_id and label). */
  readonly slides: readonly string[];
  readonly mode: InferMode;
  readonly reader: PluginRef;
  readonly detector: PluginRef;
  /** The encoder; default: the training cohort's, when it needs no model file. */
  readonly extractor?: PluginRef;
  /** Patch side and magnification; default: what the training cohort's feature files record, else 256 px at 20×. */
  readonly patching?: Partial<Omit<PatchingOptions, 'thumbs'>>;
  /** Wraps every opened slide (tests count the regions read through it). */
  readonly wrapReader?: (reader: SlideReader) => SlideReader;
}

/** Wall-clock milliseconds of one slide's stages (HDMIL's Table 2 plus tissue detection), and what was read. */
export interface SlideTiming {
  readonly slideId: string;
  readonly tissue: number;
  /** Thumbnails read from the 1.25× level + the pre-screener (0 in mode all). */
  readonly lipn: number;
  /** Reading the patches at the target magnification. */
  readonly crop: number;
  /** Embedding them. */
  readonly fea: number;
  /** The model (DMIN) on the embedded patches, every fold. */
  readonly dmin: number;
  readonly total: number;
  /** Patches on tissue, and how many were read at the target magnification. */
  readonly patches: number;
  readonly read: number;
}

export const TIMING_STAGES = ['tissue', 'lipn', 'crop', 'fea', 'dmin', 'total'] as const;

export interface InferResult extends PredictResult {
  readonly mode: InferMode;
  readonly timing: readonly SlideTiming[];
  /** Mean milliseconds per slide of each stage. */
  readonly meanTiming: Readonly<Record<(typeof TIMING_STAGES)[number], number>>;
  /** Mean fraction of tissue patches read at the target magnification. */
  readonly keptFraction: number;
  /** The Table 2 layout, as printed. */
  readonly table: string;
}

interface InferSlide extends SlideEntry {
  readonly caseId: string;
  /** Class index, or -1 when the slide table gives no label. */
  readonly label: number;
}

/** Slides with their case and label (from slide tables that have them; the run's label map gives the index). */
async function inferSlides(inputs: readonly string[], run: TrainedRun, cwd: string): Promise<InferSlide[]> {
  const slides = await listSlides(inputs, cwd);
  const labelMap = run.resolved.config.data.labels ?? Object.fromEntries(run.classNames.map((name, index) => [name, index]));
  const rows = new Map<string, { caseId?: string; label?: string; table: string }>();
  for (const input of inputs) {
    const table = path.resolve(cwd, input);
    if (path.extname(table).toLowerCase() !== '.csv') continue;
    const parsed = parseCsv(await readFile(table, 'utf8'), { columns: true, skip_empty_lines: true, trim: true }) as Array<Record<string, string>>;
    for (const row of parsed) {
      if (row.slide_id !== undefined) rows.set(row.slide_id, { ...(row.case_id ? { caseId: row.case_id } : {}), ...(row.label !== undefined && row.label !== '' ? { label: row.label } : {}), table });
    }
  }
  return slides.map((slide) => {
    const row = rows.get(slide.slideId);
    let label = -1;
    if (row?.label !== undefined) {
      const index = (labelMap as Record<string, number>)[row.label];
      if (index === undefined) {
        throw new DataError('class-set-mismatch', `slide ${slide.slideId}: label "${row.label}" is not a class the model was trained on (${run.classNames.join(', ')}).`, {
          where: { file: row.table }, hint: 'Label the slides with the training classes, or leave the label column empty to predict without metrics.',
        });
      }
      label = index;
    }
    return { ...slide, caseId: row?.caseId ?? slide.slideId, label };
  });
}

/** Attributes of the first feature file of the run's own training data, when it is a folder of extracted files. */
async function trainingFileAttributes(run: TrainedRun, options: InferOptions): Promise<FeatureFileAttributes | undefined> {
  let cohort;
  try {
    cohort = await openCohort(undefined, run, { registry: options.registry, cwd: options.cwd, logger: options.logger });
  } catch {
    return undefined; // the training data is not at hand: nothing to compare with
  }
  try {
    const first = cohort.source.slides[0];
    const fileOf = (cohort.source as Partial<{ fileOf(id: string): string }>).fileOf;
    const file = first && typeof fileOf === 'function' ? fileOf.call(cohort.source, first.slideId) : undefined;
    if (!file || !existsSync(file) || !/\.h5$/i.test(file)) return undefined;
    return await readFeatureFileAttributes(file).catch(() => undefined);
  } finally {
    await cohort.source.close?.();
  }
}

function describeIdentity(identity: FeatureExtractorIdentity): string {
  return `${identity.name}, ${identity.dim}-d, ${identity.inputSize} px${identity.modelSha256 ? `, model sha256 ${identity.modelSha256.slice(0, 12)}` : ''}`;
}

/**
 * Everything that can be refused before any slide is read or any model runs: the mode against the run (a screened
 * mode needs a trained pre-screener), the extractor's width and identity against the training cohort's.
 */
async function prepare(run: TrainedRun, options: InferOptions): Promise<{ opener: SlideOpener; detector: TissueDetector; extractor: FeatureExtractor; patching: PatchingOptions }> {
  if (options.mode === 'screened') {
    const unscreened = run.folds.filter((f) => !f.model.screening || !f.model.prescreener);
    if (unscreened.length > 0) {
      const name = run.resolved.slots.prescreener?.name ?? 'none';
      throw new ConfigError('no-prescreener', `--mode screened: the run in ${run.runDir} has no trained pre-screener (model.prescreener: ${name}${name === 'none' ? '' : ', but no stage trains it'}), so nothing decides which patches to skip.`, {
        hint: 'Use --mode all (every tissue patch is read and embedded), or infer with a run whose stages train a pre-screener (experiments/hdmil.yaml).',
      });
    }
  }
  const training = await trainingFileAttributes(run, options);
  let extractorRef = options.extractor;
  if (!extractorRef) {
    const trainedWith = training?.extractor;
    const short = trainedWith?.name.replace(/^feature-extractor\//, '');
    if (!trainedWith || trainedWith.modelSha256 !== '') {
      throw new ConfigError('extractor-required', trainedWith
        ? `the run was trained on features of ${describeIdentity(trainedWith)}; infer needs that model file to embed the patches.`
        : 'the run\'s training features do not record their extractor, so infer cannot choose one.', {
        hint: trainedWith ? `Pass --extractor ${short} --extractor-set model=<the .onnx file with sha256 ${trainedWith.modelSha256.slice(0, 12)}…>.` : 'Pass --extractor (and --extractor-set model=...) naming the encoder the training features came from.',
      });
    }
    extractorRef = { name: short as string };
  }
  const patching: PatchingOptions = {
    patchSize: options.patching?.patchSize ?? training?.patchSize ?? 256,
    magnification: options.patching?.magnification ?? (training?.targetMagnification || 20),
    thumbs: options.mode === 'screened',
    ...(options.patching?.mpp !== undefined ? { mpp: options.patching.mpp } : {}),
    ...(options.patching?.baseMagnification !== undefined ? { baseMagnification: options.patching.baseMagnification } : {}),
    ...(options.patching?.baseMpp !== undefined ? { baseMpp: options.patching.baseMpp } : {}),
  };
  const tools = await createExtractTools(options.registry, { reader: options.reader, detector: options.detector, extractor: extractorRef, cwd: options.cwd }, options.logger);
  const identity = tools.extractor.identity;
  try {
    if (identity.dim !== run.dims.inputDim) {
      throw new DataError('feature-dim-mismatch', `the extractor (${describeIdentity(identity)}) gives ${identity.dim}-d features, but the model in ${run.runDir} was trained on ${run.dims.inputDim}-d features.`, {
        hint: `Pass the encoder the model was trained on (${run.dims.inputDim}-d) with --extractor / --extractor-set.`,
      });
    }
    if (training && !sameIdentity(training.extractor, identity)) {
      throw new DataError('extractor-mismatch', `the extractor (${describeIdentity(identity)}) is not the one the training features came from (${describeIdentity(training.extractor)}).`, {
        hint: 'Pass the training cohort\'s encoder (same model file, input size and normalisation), or infer with a model trained on this encoder\'s features.',
      });
    }
  } catch (error) {
    await tools.extractor.close();
    throw error;
  }
  return { opener: tools.opener, detector: tools.detector, extractor: tools.extractor, patching };
}

/** Level-0 corners of `rows` of a [N, 2] grid. */
function pickCoords(coords: Int32Array, rows: readonly number[]): Int32Array {
  const out = new Int32Array(rows.length * 2);
  rows.forEach((row, i) => {
    out[2 * i] = coords[2 * row] as number;
    out[2 * i + 1] = coords[2 * row + 1] as number;
  });
  return out;
}

/** Features of `rows` (a subset of `read`, both ascending) from the [read × D] features of the rows read. */
function gatherFeatures(features: Float32Array, d: number, read: readonly number[], rows: readonly number[]): Float32Array {
  const position = new Map(read.map((row, i) => [row, i]));
  const out = new Float32Array(rows.length * d);
  rows.forEach((row, i) => {
    const at = position.get(row) as number;
    out.set(features.subarray(at * d, (at + 1) * d), i * d);
  });
  return out;
}

/** Crops (`crop` ms) and embeds (`fea` ms) the patches at `coords`, batch by batch, one stage at a time so each is timed on its own. */
async function cropAndEmbed(reader: SlideReader, coords: Int32Array, geometry: ReturnType<typeof patchGeometry>, extractor: FeatureExtractor): Promise<{ features: Float32Array; crop: number; fea: number }> {
  const n = coords.length / 2;
  const dim = extractor.identity.dim;
  const features = new Float32Array(n * dim);
  const batchSize = Math.max(1, extractor.batchSize);
  let crop = 0;
  let fea = 0;
  for (let start = 0; start < n; start += batchSize) {
    const end = Math.min(n, start + batchSize);
    const t0 = performance.now();
    const batch = await readPatches(reader, coords, start, end, geometry);
    const t1 = performance.now();
    const rows = await extractor.embed(batch);
    fea += performance.now() - t1;
    crop += t1 - t0;
    if (rows.length !== batch.count * dim) {
      throw new DataError('bad-extractor-output', `the extractor returned ${rows.length} numbers for ${batch.count} patches of width ${dim}.`, { where: { file: reader.file } });
    }
    features.set(rows, start * dim);
  }
  return { features, crop, fea };
}

/** Row i of [K, M] instance scores as K rows. */
function scoreRows(scores: tf.Tensor): Float32Array[] {
  const values = scores.dataSync() as Float32Array;
  const [k = 0, m = 0] = scores.shape;
  return Array.from({ length: k }, (_, row) => values.slice(row * m, (row + 1) * m));
}

/**
 * One warm-up pass per fold on a small bag of zeros and one extractor batch, untimed: the first call of a kernel
 * pays for its set-up (weights uploaded, XNNPACK/ONNX plans), which would otherwise land on the first slide.
 */
async function warmUp(run: TrainedRun, mode: InferMode, extractor: FeatureExtractor): Promise<void> {
  const n = 8;
  const d = run.dims.inputDim;
  const data: BagData = { slideId: 'warm-up', n, d, features: new Float32Array(n * d), thumbs: new Uint8Array(n * THUMB_SIDE * THUMB_SIDE * 3).fill(200), coords: new Float32Array(n * 2) };
  for (const fold of run.folds) {
    const io = { training: false, rng: fold.testRng() };
    const passOptions = { io, views: fold.model.capabilities.needsViews, makeViews: buildViews };
    if (mode === 'screened') {
      const decision = prescreen(fold.model, data.slideId, data.thumbs, n, io);
      const { rows } = screenedRows(decision);
      tf.dispose(classifyScreened(fold.model, data, decision, gatherFeatures(data.features, d, Array.from({ length: n }, (_, i) => i), rows), passOptions).output as unknown as tf.TensorContainer);
    } else {
      tf.dispose(fullPass(fold.model, data, passOptions).output as unknown as tf.TensorContainer);
    }
  }
  const side = Math.max(1, extractor.identity.inputSize);
  await extractor.embed({ count: 1, side, rgb: new Uint8Array(side * side * 3).fill(200) });
}

interface SlideOutcome {
  readonly timing: SlideTiming;
  /** Per fold: probabilities and, when asked, instance scores of the patches the model saw. */
  readonly folds: ReadonlyArray<{ readonly probs: number[]; readonly scores?: SlideInstanceScores }>;
}

async function inferSlide(
  run: TrainedRun, slide: InferSlide, mode: InferMode, tools: { opener: SlideOpener; detector: TissueDetector; extractor: FeatureExtractor; patching: PatchingOptions },
  options: InferOptions,
): Promise<SlideOutcome> {
  const opened = await tools.opener.open(slide.file);
  const reader = options.wrapReader ? options.wrapReader(opened) : opened;
  try {
    const start = performance.now();
    const geometry = patchGeometry(reader, tools.patching);
    const tissue = await tools.detector.detect(reader);
    const base = reader.levels[0] as { width: number; height: number };
    const coords = tissuePatchGrid(tissue, { patchSize: geometry.patchSizeLevel0, step: geometry.patchSizeLevel0, width: base.width, height: base.height });
    const n = coords.length / 2;
    const tissueDone = performance.now();

    // LIPN: the low-resolution level once, then every fold's pre-screener; the union of what they keep is read.
    const decisions: PrescreenDecision[] = [];
    let thumbs: Uint8Array | undefined;
    let readRows: number[] = Array.from({ length: n }, (_, i) => i);
    if (mode === 'screened') {
      if (geometry.patchSizeLevel0 % THUMB_SIDE !== 0) {
        throw new DataError('bad-patch-size', `level-0 patch side ${geometry.patchSizeLevel0} is not a multiple of ${THUMB_SIDE}, so the pre-screener's thumbnails cannot be cut.`, {
          where: { file: slide.file }, hint: 'Use a patch size and magnification whose level-0 side divides by 16 (256 px at 20×), or --mode all.',
        });
      }
      thumbs = await readPatchThumbnails(reader, coords, { patchSize: geometry.patchSizeLevel0, side: THUMB_SIDE });
      const union = new Set<number>();
      for (const fold of run.folds) {
        const decision = prescreen(fold.model, slide.slideId, thumbs, n, { training: false, rng: fold.testRng() });
        decisions.push(decision);
        for (const row of screenedRows(decision).rows) union.add(row);
      }
      readRows = [...union].sort((a, b) => a - b);
    }
    const lipnDone = performance.now();

    const { features, crop, fea } = await cropAndEmbed(reader, pickCoords(coords, readRows), geometry, tools.extractor);
    const d = tools.extractor.identity.dim;
    const coordsF = Float32Array.from(coords);
    const dminStart = performance.now();
    const folds: Array<{ probs: number[]; scores?: SlideInstanceScores }> = [];
    run.folds.forEach((fold, index) => {
      const io = { training: false, rng: fold.testRng() };
      const passOptions = { io, views: fold.model.capabilities.needsViews, makeViews: buildViews };
      let output;
      let seen: readonly number[];
      if (mode === 'screened') {
        const decision = decisions[index] as PrescreenDecision;
        seen = screenedRows(decision).rows;
        const data: BagData = { slideId: slide.slideId, n, d, features: new Float32Array(0), coords: coordsF, ...(thumbs ? { thumbs } : {}) };
        output = classifyScreened(fold.model, data, decision, gatherFeatures(features, d, readRows, seen), passOptions).output;
      } else {
        seen = readRows;
        output = fullPass(fold.model, { slideId: slide.slideId, n, d, features, coords: coordsF }, passOptions).output;
      }
      try {
        const probs = Array.from(tf.tidy(() => tf.softmax(output.logits).dataSync())); // [C]
        const instance = options.heatmaps && fold.model.capabilities.instanceScores && output.instanceScores && output.instanceScores.shape[1] === seen.length
          ? { slideId: slide.slideId, scores: scoreRows(output.instanceScores), coords: Float32Array.from(pickCoords(coords, seen)) }
          : undefined;
        folds.push({ probs, ...(instance ? { scores: instance } : {}) });
      } finally {
        tf.dispose(output as unknown as tf.TensorContainer);
      }
    });
    const done = performance.now();
    return {
      timing: { slideId: slide.slideId, tissue: tissueDone - start, lipn: lipnDone - tissueDone, crop, fea, dmin: done - dminStart, total: done - start, patches: n, read: readRows.length },
      folds,
    };
  } finally {
    await reader.close();
  }
}

/** Mean of each stage over the slides. */
function meanTimes(timing: readonly SlideTiming[]): Record<(typeof TIMING_STAGES)[number], number> {
  const out = {} as Record<(typeof TIMING_STAGES)[number], number>;
  for (const stage of TIMING_STAGES) out[stage] = timing.length ? timing.reduce((a, t) => a + t[stage], 0) / timing.length : 0;
  return out;
}

/** Seconds with two decimals. */
const seconds = (ms: number): string => (ms / 1000).toFixed(2);

/** The per-slide and mean stage times in the layout of HDMIL's Table 2 (seconds per slide), as printed. */
export function timingTable(mode: InferMode, timing: readonly SlideTiming[]): string {
  const label = mode === 'screened' ? 'HDMIL (screened)' : 'HDMIL† (all patches)';
  const header = '| slide | Tissue | LIPN | Crop | Fea | DMIN | Total (s) | patches read |';
  const rule = '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |';
  const row = (name: string, t: Pick<SlideTiming, 'tissue' | 'lipn' | 'crop' | 'fea' | 'dmin' | 'total'>, read: string): string =>
    `| ${name} | ${seconds(t.tissue)} | ${mode === 'screened' ? seconds(t.lipn) : '—'} | ${seconds(t.crop)} | ${seconds(t.fea)} | ${seconds(t.dmin)} | ${seconds(t.total)} | ${read} |`;
  const mean = meanTimes(timing);
  const read = timing.reduce((a, t) => a + t.read, 0);
  const patches = timing.reduce((a, t) => a + t.patches, 0);
  const kept = keptFractionOf(timing);
  return [
    `${label}: seconds per slide`,
    header, rule,
    ...timing.map((t) => row(t.slideId, t, `${t.read} / ${t.patches}`)),
    row(`**mean** (${timing.length} slides)`, mean, `${read} / ${patches} (${(100 * kept).toFixed(1)} %)`),
  ].join('\n');
}

/** Mean over slides of the fraction of tissue patches read at the target magnification. */
function keptFractionOf(timing: readonly SlideTiming[]): number {
  const fractions = timing.filter((t) => t.patches > 0).map((t) => t.read / t.patches);
  return fractions.length ? fractions.reduce((a, b) => a + b, 0) / fractions.length : 0;
}

function timingCsv(timing: readonly SlideTiming[]): string {
  const mean = meanTimes(timing);
  const row = (id: string, t: Record<(typeof TIMING_STAGES)[number], number>, patches: number, read: number, kept: number): string[] =>
    [id, ...TIMING_STAGES.map((s) => (t[s] / 1000).toFixed(4)), String(patches), String(read), kept.toFixed(4)];
  return stringify([
    ['slide_id', ...TIMING_STAGES.map((s) => `${s}_s`), 'patches', 'patches_read', 'kept_fraction'],
    ...timing.map((t) => row(t.slideId, t, t.patches, t.read, t.patches > 0 ? t.read / t.patches : 0)),
    row('mean', mean, timing.reduce((a, t) => a + t.patches, 0) / Math.max(1, timing.length), timing.reduce((a, t) => a + t.read, 0) / Math.max(1, timing.length), keptFractionOf(timing)),
  ]);
}

export async function runInfer(options: InferOptions): Promise<InferResult> {
  const { registry, logger } = options;
  const started = Date.now();
  const run = await openTrainedRun(options);
  let tools: Awaited<ReturnType<typeof prepare>> | undefined;
  try {
    const slides = await inferSlides(options.slides, run, options.cwd);
    tools = await prepare(run, options);
    const numClasses = run.dims.numClasses;
    const labelled = slides.every((s) => s.label >= 0);
    const metrics = labelled ? run.resolved.slots.metrics.map((slot) => ({ name: slot.name, metric: registry.create(slot, { numClasses }) as Metric })) : [];
    let threshold = options.threshold.value;
    if (options.threshold.rule === 'youden') {
      const own = await openCohort(undefined, run, { registry, cwd: options.cwd, logger });
      try {
        threshold = await validationThreshold(run, own.source, metrics, logger);
      } finally {
        await own.source.close?.();
      }
    }
    for (const fold of run.folds) fold.model.setTraining(false);
    await warmUp(run, options.mode, tools.extractor);

    const timing: SlideTiming[] = [];
    const perFold = run.folds.map(() => ({ predictions: [] as SlidePrediction[], scores: new Map<string, SlideInstanceScores>() }));
    for (const [i, slide] of slides.entries()) {
      const outcome = await inferSlide(run, slide, options.mode, tools, options);
      timing.push(outcome.timing);
      outcome.folds.forEach((f, k) => {
        const target = perFold[k] as (typeof perFold)[number];
        target.predictions.push({ slideId: slide.slideId, caseId: slide.caseId, label: slide.label, probs: f.probs, prediction: f.probs.indexOf(Math.max(...f.probs)) });
        if (f.scores) target.scores.set(slide.slideId, f.scores);
      });
      const t = outcome.timing;
      logger.info(`${slide.slideId} (${i + 1}/${slides.length}): ${t.read}/${t.patches} patches read, total ${seconds(t.total)} s (tissue ${seconds(t.tissue)}, LIPN ${seconds(t.lipn)}, crop ${seconds(t.crop)}, fea ${seconds(t.fea)}, DMIN ${seconds(t.dmin)})`);
    }
    const folds: FoldPredictions[] = run.folds.map((fold, k) => {
      const { predictions, scores } = perFold[k] as (typeof perFold)[number];
      const foldMetrics = labelled ? computeMetrics(metrics, { labels: predictions.map((p) => p.label), probs: predictions.map((p) => p.probs), numClasses }) : {};
      return { fold: fold.fold, predictions, metrics: foldMetrics, instanceScores: scores };
    });

    await mkdir(options.outDir, { recursive: true });
    const timingFile = path.join(options.outDir, 'timing.csv');
    await writeFile(timingFile, timingCsv(timing));
    const mean = meanTimes(timing);
    const keptFraction = keptFractionOf(timing);
    const table = timingTable(options.mode, timing);
    const report = await reportPredictions({
      run, perFold: folds, separate: folds.length === 1, threshold, metrics, cohortLabel: options.slides.join(' '),
      runName: `infer-${options.mode}-${path.basename(options.slides[0] ?? 'slides').replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9_.-]+/g, '_')}`, level: 'infer',
      params: { mode: options.mode, extractor: tools.extractor.identity.name, patch_size: String(tools.patching.patchSize), magnification: String(tools.patching.magnification) },
      summaryExtra: { inferMode: options.mode, labelled, timing: { secondsPerSlide: Object.fromEntries(TIMING_STAGES.map((s) => [s, mean[s] / 1000])), keptFraction } },
      extraMetrics: [
        ...TIMING_STAGES.map((stage) => ({ key: `infer/time_${stage}_s`, value: mean[stage] / 1000 })),
        { key: 'infer/kept_fraction', value: keptFraction },
        ...timing.flatMap((t, step) => TIMING_STAGES.map((stage) => ({ key: `infer/slide_time_${stage}_s`, value: t[stage] / 1000, step }))),
      ],
      extraArtifacts: [timingFile], started,
      options: { ...options, bootstrap: labelled ? options.bootstrap : 0 },
    });
    return { ...report, mode: options.mode, timing, meanTiming: mean, keptFraction, table };
  } finally {
    await tools?.extractor.close();
    run.dispose();
  }
}
