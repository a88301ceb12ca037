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

/**
 * HDMIL (docs/methods/hdmil.md#inference-modes): per-branch keep masks from the pre-screener, features read for their union only, and the model
 * run on those rows — with the per-branch mask as the `keepMask` view when the aggregator honours it
 * (`branchKeepMask`), otherwise on the union. When no instance is kept, aggregators with per-branch masks get one
 * row with an all-zero mask (every branch empty: the zero embedding of docs/methods/hdmil.md#dmin-inference); others get the best-scored instance.
 */
export function screenedPass(model: MilModel, data: BagData, options: PassOptions): SlidePass {
  const prescreener = model.prescreener;
  const branchScores = prescreener?.branchScores;
  if (!prescreener || !branchScores) {
    throw new PluginError('prescreener-without-branch-scores', 'model.prescreener: the screened pipeline needs a pre-screener with per-branch scores (branchScores).', {
      hint: 'Implement branchScores in the pre-screener plugin, or do not train it in a stage.',
    });
  }
  const read = options.read ?? precomputedFeatures;
  const start = performance.now();
  if (!data.thumbs) {
    throw new DataError('missing-thumbnails', `slide ${data.slideId}: the pre-screener needs 16×16 thumbnails, but the dataset provides none.`, {
      hint: 'Use a dataset with thumbnails (synthetic datasets: thumbs on; files: a thumbs array aligned with the features), or set model.prescreener: none.',
    });
  }
  const thumbs = thumbsToTensor(data.thumbs, data.n);
  const prescreenIo = model.partIo('prescreener', options.io);
  const scoreTensor = tf.tidy(() => branchScores.call(prescreener, thumbs, prescreenIo)); // [N, K]
  const [, branches = 1] = scoreTensor.shape;
  const scores = scoreTensor.dataSync();
  tf.dispose([thumbs, scoreTensor]);
  const kept: number[] = [];
  let best = 0;
  let bestScore = Number.NEGATIVE_INFINITY;
  for (let n = 0; n < data.n; n += 1) {
    let any = false;
    for (let k = 0; k < branches; k += 1) {
      const s = scores[n * branches + k] as number;
      if (s > 0) any = true;
      if (s > bestScore) {
        bestScore = s;
        best = n;
      }
    }
    if (any) kept.push(n);
  }
  const screened = performance.now();

  const rows = kept.length > 0 ? kept : [best];
  const mask = new Float32Array(rows.length * branches);
  if (kept.length > 0) rows.forEach((row, i) => {
    for (let k = 0; k < branches; k += 1) mask[i * branches + k] = (scores[row * branches + k] as number) > 0 ? 1 : 0;
  });
  const features = tf.tensor2d(read(data, rows), [rows.length, data.d]); // [M, D]  only the instances read
  const views = options.makeViews(data, options.views.filter((name) => name !== BAG_VIEWS.keepMask), rows);
  if (model.capabilities.branchKeepMask) views[BAG_VIEWS.keepMask] = tf.tensor2d(mask, [rows.length, branches]); // [M, K]
  features.dataSync();
  const readDone = performance.now();

  const output = model.forward({ slideId: data.slideId, features, views }, options.io);
  output.logits.dataSync(); // [1, C]
  const done = performance.now();
  tf.dispose([features, ...Object.values(views)]);
  return {
    output,
    allInstances: false,
    prescreenerKept: data.n > 0 ? kept.length / data.n : 0,
    times: { prescreen: screened - start, read: readDone - screened, aggregate: done - readDone, total: done - start },
  };
}
