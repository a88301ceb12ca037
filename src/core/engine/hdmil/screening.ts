// The screened forward pass of a two-stage model (docs/methods/hdmil.md#inference-modes): a pre-screener reads the low-resolution
// thumbnails, only the instances some branch keeps are "read" (their features gathered), and the stage-1 model
// classifies them with its per-branch selection. Per-stage wall-clock times are measured around each step.
import * as tf from '@tensorflow/tfjs';
import { DataError, PluginError } from '../../errors.js';
import { THUMB_SIDE } from '../../data/synthetic.js';
import type { BagData } from '../../../registry/contracts/data.js';
import type { ModelOutput } from '../../../registry/contracts/loss.js';
import type { AggregatorCapabilities, Aggregator, Bag, ForwardIO, Prescreener } from '../../../registry/contracts/model.js';
import type { PrescreenerCapabilities } from '../../../registry/kinds.js';

/** The trained stage-1 model as the engine composes it (`MilModel` has this shape). */
export interface StageOneModel {
  readonly aggregator: Aggregator;
  readonly capabilities: AggregatorCapabilities;
  forward(bag: Bag, io: ForwardIO): ModelOutput;
  setTraining(training: boolean): unknown;
}

/** A pre-screener instance with the capabilities its definition declares. */
export interface ScreeningStage {
  readonly prescreener: Prescreener;
  readonly capabilities: PrescreenerCapabilities;
}

/** Wall-clock milliseconds of one slide's stages (keys become `time/<stage>_ms`). */
export interface StageTimes {
  /** Thumbnail tensor + pre-screener forward + mask read-back (0 without a pre-screener). */
  readonly prescreen: number;
  /** Building the feature tensor of the instances that are read (all of them without a pre-screener). */
  readonly read: number;
  /** Stage-1 model forward and probability read-back. */
  readonly aggregate: number;
  readonly total: number;
}

/** One slide through the pipeline. */
export interface SlidePass {
  /** [C] class logits. */
  readonly logits: number[];
  /** Instances in the slide. */
  readonly instances: number;
  /** Fraction of instances the pre-screener keeps in any branch (undefined without one). */
  readonly prescreenerKept?: number;
  /** Full pass only: fraction of instances the model's own gates keep in any branch (from `extras.gateMask`). */
  readonly aggregatorKept?: number;
  readonly times: StageTimes;
}

/** Thumbnails of a bag as a float tensor in [0, 1] (the Bag contract), or a clear error when the data has none. */
export function thumbsTensor(data: BagData, consumer: string): tf.Tensor4D {
  if (!data.thumbs) {
    throw new DataError('missing-thumbnails', `slide ${data.slideId}: ${consumer} needs 16×16 thumbnails, but the dataset provides none.`, {
      hint: 'Use a dataset with thumbnails (synthetic datasets: thumbs on; files: a thumbs array aligned with the features), or set model.prescreener: none.',
    });
  }
  const scaled = new Float32Array(data.thumbs.length);
  for (let i = 0; i < scaled.length; i += 1) scaled[i] = (data.thumbs[i] as number) / 255;
  return tf.tensor4d(scaled, [data.n, THUMB_SIDE, THUMB_SIDE, 3]);
}

/** Throws unless the stage can be trained and screened with: branch scores, an imitation loss, aggregator gates. */
export function checkScreeningStage(stage: ScreeningStage, model: StageOneModel, forTraining: boolean): void {
  if (!stage.prescreener.branchScores) {
    throw new PluginError('prescreener-without-branch-scores', 'model.prescreener: this pre-screener gives no per-branch scores (branchScores), which the screened pipeline needs.', {
      hint: 'Implement branchScores in the pre-screener plugin, or set model.prescreener: none.',
    });
  }
  if (!forTraining) return;
  if (!stage.capabilities.trainable || !stage.prescreener.imitationLoss) {
    throw new PluginError('prescreener-not-trainable', 'model.prescreener: this pre-screener is not trainable (capability trainable / imitationLoss missing), so it has no stage to train.', {
      hint: 'Skip the pre-screener stage for it, or use a trainable pre-screener such as lipn.',
    });
  }
  if (!model.capabilities.gateLogits || !model.aggregator.gateLogits) {
    throw new PluginError('aggregator-without-gates', 'model.aggregator: a trainable pre-screener learns the aggregator\'s per-branch instance gates, but this aggregator exposes none (capability gateLogits).', {
      hint: 'Use an aggregator with instance gates (dmin), or set model.prescreener: none.',
    });
  }
}

/** Fraction of rows of a 0/1 [N, K] host mask kept by any branch. */
export function unionFraction(mask: ArrayLike<number>, rows: number, branches: number): number {
  if (rows === 0) return 0;
  let kept = 0;
  for (let n = 0; n < rows; n += 1) {
    for (let k = 0; k < branches; k += 1) {
      if ((mask[n * branches + k] as number) > 0) {
        kept += 1;
        break;
      }
    }
  }
  return kept / rows;
}

/**
 * Produces the [rows × D] features of the instances that are read (`rows` in slide order; null = all). The default
 * copies precomputed rows; a pipeline that reads and embeds patches at full resolution passes its own, so the
 * `read` stage times what screening saves.
 */
export type InstanceReader = (data: BagData, rows: readonly number[] | null) => Float32Array;

/** The default reader: precomputed feature rows. */
export const precomputedFeatures: InstanceReader = (data, rows) => {
  if (rows === null) return data.features;
  const out = new Float32Array(rows.length * data.d);
  rows.forEach((row, i) => out.set(data.features.subarray(row * data.d, (row + 1) * data.d), i * data.d));
  return out;
};

function aggregatorKeptFraction(output: ModelOutput): number | undefined {
  const mask = output.extras?.gateMask;
  if (!mask || mask.rank !== 2) return undefined;
  const [rows = 0, branches = 0] = mask.shape;
  return unionFraction(mask.dataSync(), rows, branches);
}

/** HDMIL† (and every one-stage model): the stage-1 model in eval mode on all instances. */
export function fullPass(model: StageOneModel, data: BagData, io: ForwardIO, readInstances: InstanceReader = precomputedFeatures): SlidePass {
  const start = performance.now();
  const features = tf.tensor2d(readInstances(data, null), [data.n, data.d]); // [N, D]
  features.dataSync(); // materialise on the backend inside the read stage
  const read = performance.now();
  const output = model.forward({ slideId: data.slideId, features }, io);
  const logits = Array.from(output.logits.dataSync()); // [C]
  const done = performance.now();
  const aggregatorKept = aggregatorKeptFraction(output);
  tf.dispose([features, output as unknown as tf.TensorContainer]);
  return {
    logits,
    instances: data.n,
    ...(aggregatorKept !== undefined ? { aggregatorKept } : {}),
    times: { prescreen: 0, read: read - start, aggregate: done - read, total: done - start },
  };
}

/**
 * HDMIL (docs/methods/hdmil.md#inference-modes): per-branch keep masks from the pre-screener, features read for their union only, and the model
 * run on those rows — with the per-branch mask when the aggregator honours it (`branchKeepMask`), otherwise on
 * the union. When no instance is kept, aggregators with per-branch masks get one row with an all-zero mask
 * (every branch empty: the zero embedding of docs/methods/hdmil.md#dmin-inference); others get the single best-scored instance.
 */
export function screenedPass(model: StageOneModel, stage: ScreeningStage, data: BagData, io: ForwardIO, readInstances: InstanceReader = precomputedFeatures): SlidePass {
  const branchScores = stage.prescreener.branchScores;
  if (!branchScores) throw new PluginError('prescreener-without-branch-scores', 'model.prescreener: no branchScores.', { hint: 'Set model.prescreener: none.' });
  const start = performance.now();
  const thumbs = thumbsTensor(data, 'the pre-screener');
  const scoreTensor = tf.tidy(() => branchScores.call(stage.prescreener, thumbs, io)); // [N, K]
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

  const branchMask = model.capabilities.branchKeepMask;
  const rows = kept.length > 0 ? kept : [best];
  const mask = new Float32Array(rows.length * branches);
  if (kept.length > 0) rows.forEach((row, i) => {
    for (let k = 0; k < branches; k += 1) mask[i * branches + k] = (scores[row * branches + k] as number) > 0 ? 1 : 0;
  });
  const features = tf.tensor2d(readInstances(data, rows), [rows.length, data.d]); // [M, D]  only the instances read
  const keepMask = branchMask ? tf.tensor2d(mask, [rows.length, branches]) : undefined; // [M, K]
  features.dataSync();
  const read = performance.now();

  const output = model.forward({ slideId: data.slideId, features, ...(keepMask ? { keepMask } : {}) }, io);
  const logits = Array.from(output.logits.dataSync()); // [C]
  const done = performance.now();
  tf.dispose([features, ...(keepMask ? [keepMask] : []), output as unknown as tf.TensorContainer]);
  return {
    logits,
    instances: data.n,
    prescreenerKept: data.n > 0 ? kept.length / data.n : 0,
    times: { prescreen: screened - start, read: read - screened, aggregate: done - read, total: done - start },
  };
}

/** Softmax of host logits (float64). */
export function softmaxHost(logits: readonly number[]): number[] {
  const max = Math.max(...logits);
  const exps = logits.map((z) => Math.exp(z - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

/** Cross-entropy -log softmax(z)_y of host logits (float64, log-sum-exp). */
export function crossEntropyHost(logits: readonly number[], label: number): number {
  const max = Math.max(...logits);
  const logSum = max + Math.log(logits.reduce((a, z) => a + Math.exp(z - max), 0));
  return logSum - (logits[label] as number);
}
