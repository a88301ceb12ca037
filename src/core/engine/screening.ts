// One slide through the composed model at inference, timed per pipeline stage: the full pass (every instance
// read and aggregated; HDMIL† and every one-stage model) and the screened pass of a model with a trained
// pre-screener (HDMIL, docs/methods/hdmil.md#inference-modes: the pre-screener reads the thumbnails, only the instances some branch keeps are
// read, and the aggregator classifies them with its per-branch selection). Generic over plugins: it reads
// capabilities (`branchKeepMask`) and the pre-screener contract (`branchScores`), never plugin names.
import * as tf from '@tensorflow/tfjs';
import { DataError, PluginError } from '../errors.js';
import { thumbsToTensor } from '../data/bags.js';
import type { BagData } from '../../registry/contracts/data.js';
import type { ModelOutput } from '../../registry/contracts/loss.js';
import { BAG_VIEWS, type Bag, type ForwardIO } from '../../registry/contracts/model.js';
import { unionFraction } from '../nn/keep-rate.js';
import type { MilModel } from './model.js';

/** Wall-clock milliseconds of one slide's pipeline stages (keys become `time_<stage>_ms`). */
export interface StageTimes {
  /** Thumbnail tensor + pre-screener forward + mask read-back (0 without screening). */
  readonly prescreen: number;
  /** Producing the feature rows that are read (all of them without screening). */
  readonly read: number;
  /** Model forward and logits read-back. */
  readonly aggregate: number;
  readonly total: number;
}

/**
 * Produces the [rows × D] features of the instances that are read (`rows` in slide order; null = all). The default
 * copies precomputed rows; a pipeline that crops and embeds patches at full resolution (a slide reader) passes its
 * own, so the `read` stage times what screening saves.
 */
export type InstanceReader = (data: BagData, rows: readonly number[] | null) => Float32Array;

/** The default reader: precomputed feature rows. */
export const precomputedFeatures: InstanceReader = (data, rows) => {
  if (rows === null) return data.features;
  const out = new Float32Array(rows.length * data.d);
  rows.forEach((row, i) => out.set(data.features.subarray(row * data.d, (row + 1) * data.d), i * data.d));
  return out;
};

/** One slide through the pipeline; `output` is the caller's to dispose. */
export interface SlidePass {
  readonly output: ModelOutput;
  /** Fraction of instances the pre-screener keeps in any branch (screened pass only). */
  readonly prescreenerKept?: number;
  /** Full pass: fraction of instances the model's own gates keep in any branch (from `extras.gateMask`). */
  readonly aggregatorKept?: number;
  /** True when the output covers every instance in slide order (instance-level scores are comparable). */
  readonly allInstances: boolean;
  readonly times: StageTimes;
}

export interface PassOptions {
  readonly io: ForwardIO;
  /** Views the model's parts need (besides the screened pass's own thumbnails and mask). */
  readonly views: readonly string[];
  readonly read?: InstanceReader;
  /** Builds the named views for `rows` (null = all) of the bag. */
  readonly makeViews: (data: BagData, names: readonly string[], rows: readonly number[] | null) => Record<string, tf.Tensor>;
}

function aggregatorKeptFraction(output: ModelOutput): number | undefined {
  const mask = output.extras?.gateMask;
  if (!mask || mask.rank !== 2) return undefined;
  const [rows = 0, branches = 0] = mask.shape;
  return unionFraction(mask.dataSync(), rows, branches);
}

/** Every instance read and aggregated. */
export function fullPass(model: MilModel, data: BagData, options: PassOptions): SlidePass {
  const read = options.read ?? precomputedFeatures;
  const start = performance.now();
  const features = tf.tensor2d(read(data, null), [data.n, data.d]); // [N, D]
  const views = options.makeViews(data, options.views, null);
  features.dataSync(); // materialise on the backend inside the read stage
  const readDone = performance.now();
  const bag: Bag = { slideId: data.slideId, features, views };
  const output = model.forward(bag, options.io);
  output.logits.dataSync(); // [1, C]
  const done = performance.now();
  tf.dispose([features, ...Object.values(views)]);
  const aggregatorKept = aggregatorKeptFraction(output);
  return {
    output,
    allInstances: true,
    ...(aggregatorKept !== undefined ? { aggregatorKept } : {}),
    times: { prescreen: 0, read: readDone - start, aggregate: done - readDone, total: done - start },
  };
}

/** What the pre-screener decided for one slide: per-branch scores and the instances some branch keeps. */
export interface PrescreenDecision {
  /** [N, K] pre-screener scores (kept where > 0). */
  readonly scores: Float32Array;
  readonly branches: number;
  /** Instances kept by any branch, ascending (slide order). */
  readonly kept: readonly number[];
  /** The best-scored instance (read alone when nothing is kept). */
  readonly best: number;
  readonly n: number;
}

/**
 * The pre-screener on a slide's [N, 16, 16, 3] thumbnails (HDMIL's LIPN step, docs/methods/hdmil.md#inference-modes):
 * which instances to read. Needs nothing but the thumbnails, so a slide pipeline can call it before any patch is
 * read at full resolution.
 */
export function prescreen(model: MilModel, slideId: string, thumbs: Uint8Array | undefined, n: number, io: ForwardIO): PrescreenDecision {
  const prescreener = model.prescreener;
  const branchScores = prescreener?.branchScores;
  if (!prescreener || !branchScores) {
    throw new PluginError('prescreener-without-branch-scores', 'model.prescreener: the screened pipeline needs a pre-screener with per-branch scores (branchScores).', {
      hint: 'Implement branchScores in the pre-screener plugin, or do not train it in a stage.',
    });
  }
  if (!thumbs) {
    throw new DataError('missing-thumbnails', `slide ${slideId}: the pre-screener needs 16×16 thumbnails, but the dataset provides none.`, {
      hint: 'Use a dataset with thumbnails (synthetic datasets: thumbs on; files: a thumbs array aligned with the features), or set model.prescreener: none.',
    });
  }
  const thumbTensor = thumbsToTensor(thumbs, n);
  const prescreenIo = model.partIo('prescreener', io);
  const scoreTensor = tf.tidy(() => branchScores.call(prescreener, thumbTensor, prescreenIo)); // [N, K]
  const [, branches = 1] = scoreTensor.shape;
  const scores = scoreTensor.dataSync() as Float32Array;
  tf.dispose([thumbTensor, scoreTensor]);
  const kept: number[] = [];
  let best = 0;
  let bestScore = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i += 1) {
    let any = false;
    for (let k = 0; k < branches; k += 1) {
      const s = scores[i * branches + k] as number;
      if (s > 0) any = true;
      if (s > bestScore) {
        bestScore = s;
        best = i;
      }
    }
    if (any) kept.push(i);
  }
  return { scores, branches, kept, best, n };
}

/**
 * The rows the screened model reads (the kept ones, or the best-scored one alone when none is kept) and their
 * per-branch [rows, K] keep mask (all zero when nothing is kept: every branch empty).
 */
export function screenedRows(decision: PrescreenDecision): { readonly rows: readonly number[]; readonly mask: Float32Array } {
  const { kept, best, branches, scores } = decision;
  const rows = kept.length > 0 ? kept : [best];
  const mask = new Float32Array(rows.length * branches);
  if (kept.length > 0) rows.forEach((row, i) => {
    for (let k = 0; k < branches; k += 1) mask[i * branches + k] = (scores[row * branches + k] as number) > 0 ? 1 : 0;
  });
  return { rows, mask };
}

/**
 * The model on the screened rows only: `features` are those rows' [rows × D] features, the per-branch mask goes in
 * as the `keepMask` view when the aggregator honours it (`branchKeepMask`), otherwise the model sees the union.
 * Returns the output (the caller's to dispose) and the milliseconds of building the inputs and of the forward pass.
 */
export function classifyScreened(
  model: MilModel, data: BagData, decision: PrescreenDecision, features: Float32Array, options: Omit<PassOptions, 'read'>,
): { readonly output: ModelOutput; readonly inputMs: number; readonly forwardMs: number } {
  const start = performance.now();
  const { rows, mask } = screenedRows(decision);
  const featureTensor = tf.tensor2d(features, [rows.length, data.d]); // [M, D]  only the instances read
  const views = options.makeViews(data, options.views.filter((name) => name !== BAG_VIEWS.keepMask), rows);
  if (model.capabilities.branchKeepMask) views[BAG_VIEWS.keepMask] = tf.tensor2d(mask, [rows.length, decision.branches]); // [M, K]
  featureTensor.dataSync();
  const inputDone = performance.now();
  const output = model.forward({ slideId: data.slideId, features: featureTensor, views }, options.io);
  output.logits.dataSync(); // [1, C]
  const done = performance.now();
  tf.dispose([featureTensor, ...Object.values(views)]);
  return { output, inputMs: inputDone - start, forwardMs: done - inputDone };
}

/**
 * HDMIL (docs/methods/hdmil.md#inference-modes): per-branch keep masks from the pre-screener, features read for their union only, and the model
 * run on those rows — with the per-branch mask as the `keepMask` view when the aggregator honours it
 * (`branchKeepMask`), otherwise on the union. When no instance is kept, aggregators with per-branch masks get one
 * row with an all-zero mask (every branch empty: the zero embedding of docs/methods/hdmil.md#dmin-inference); others get the best-scored instance.
 */
export function screenedPass(model: MilModel, data: BagData, options: PassOptions): SlidePass {
  const read = options.read ?? precomputedFeatures;
  const start = performance.now();
  const decision = prescreen(model, data.slideId, data.thumbs, data.n, options.io);
  const screened = performance.now();
  const { rows } = screenedRows(decision);
  const features = read(data, rows);
  const readMs = performance.now() - screened;
  const { output, inputMs, forwardMs } = classifyScreened(model, data, decision, features, options);
  const done = performance.now();
  return {
    output,
    allInstances: false,
    prescreenerKept: data.n > 0 ? decision.kept.length / data.n : 0,
    // Building the feature tensor belongs to the read stage, as in the full pass.
    times: { prescreen: screened - start, read: readMs + inputMs, aggregate: forwardMs, total: done - start },
  };
}
