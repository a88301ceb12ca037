// The two inference modes of a model with a pre-screener stage (docs/methods/hdmil.md#inference-modes): "all-instances" (HDMIL†:
// the stage-1 model on every instance) and "screened" (HDMIL: pre-screener keep-mask, then the stage-1 model on
// the kept instances only), evaluated over a list of slides with metrics, kept-instance rates and per-stage
// time per slide.
import type { BagSource, SlideRecord } from '../../../registry/contracts/data.js';
import type { Metric, MetricValue } from '../../../registry/contracts/metric.js';
import type { Rng } from '../../runtime/random.js';
import { computeMetrics } from '../../eval/metrics.js';
import {
  checkScreeningStage,
  crossEntropyHost,
  fullPass,
  precomputedFeatures,
  screenedPass,
  softmaxHost,
  type InstanceReader,
  type ScreeningStage,
  type SlidePass,
  type StageOneModel,
  type StageTimes,
} from './screening.js';

export type InferenceMode = 'all-instances' | 'screened';

export interface InferenceOptions {
  readonly mode: InferenceMode;
  readonly model: StageOneModel;
  /** Required for `screened`. */
  readonly stage?: ScreeningStage;
  readonly source: BagSource;
  readonly slides: readonly SlideRecord[];
  readonly numClasses: number;
  readonly metrics?: ReadonlyArray<{ readonly name: string; readonly metric: Metric }>;
  readonly rng: Rng;
  /** Run the first slide once untimed before measuring (kernel set-up, caches); default true. */
  readonly warmup?: boolean;
  /** How instances are read (timed as the `read` stage); default: precomputed feature rows. */
  readonly read?: InstanceReader;
}

export interface SlideInference {
  readonly slideId: string;
  readonly caseId: string;
  readonly label: number;
  readonly probs: readonly number[];
  readonly prediction: number;
  readonly instances: number;
  readonly prescreenerKept?: number;
  readonly aggregatorKept?: number;
  readonly times: StageTimes;
}

export interface InferenceResult {
  readonly mode: InferenceMode;
  readonly predictions: SlideInference[];
  /** Mean cross-entropy of the final logits (HDMIL's stage-2 validation loss). */
  readonly loss: number;
  readonly metrics: Record<string, MetricValue>;
  /** Mean over slides of the kept-instance fractions (absent when no slide reports one). */
  readonly kept: { readonly prescreener?: number; readonly aggregator?: number };
  /** Mean milliseconds per slide for each stage. */
  readonly msPerSlide: StageTimes;
}

function mean(values: readonly number[]): number | undefined {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined;
}

/** Evaluates `slides` in one inference mode. The models are switched to eval mode. */
export async function runInference(options: InferenceOptions): Promise<InferenceResult> {
  const { model, stage, mode } = options;
  if (mode === 'screened') {
    if (!stage) throw new RangeError('runInference: the screened mode needs a pre-screener stage');
    checkScreeningStage(stage, model, false);
    stage.prescreener.setTraining(false);
  }
  model.setTraining(false);
  const io = { training: false, rng: options.rng };
  const read = options.read ?? precomputedFeatures;
  const pass = (data: Awaited<ReturnType<BagSource['load']>>): SlidePass =>
    mode === 'screened' && stage ? screenedPass(model, stage, data, io, read) : fullPass(model, data, io, read);

  const first = options.slides[0];
  if ((options.warmup ?? true) && first) pass(await options.source.load(first.slideId));

  const predictions: SlideInference[] = [];
  let lossSum = 0;
  for (const slide of options.slides) {
    const data = await options.source.load(slide.slideId);
    const result = pass(data);
    const probs = softmaxHost(result.logits);
    lossSum += crossEntropyHost(result.logits, slide.label);
    predictions.push({
      slideId: slide.slideId,
      caseId: slide.caseId,
      label: slide.label,
      probs,
      prediction: probs.indexOf(Math.max(...probs)),
      instances: result.instances,
      ...(result.prescreenerKept !== undefined ? { prescreenerKept: result.prescreenerKept } : {}),
      ...(result.aggregatorKept !== undefined ? { aggregatorKept: result.aggregatorKept } : {}),
      times: result.times,
    });
  }
  const metrics = options.metrics && predictions.length
    ? computeMetrics([...options.metrics], { labels: predictions.map((p) => p.label), probs: predictions.map((p) => p.probs), numClasses: options.numClasses })
    : {};
  const prescreenerKept = mean(predictions.flatMap((p) => (p.prescreenerKept === undefined ? [] : [p.prescreenerKept])));
  const aggregatorKept = mean(predictions.flatMap((p) => (p.aggregatorKept === undefined ? [] : [p.aggregatorKept])));
  const stageMean = (key: keyof StageTimes): number => mean(predictions.map((p) => p.times[key])) ?? 0;
  return {
    mode,
    predictions,
    loss: predictions.length ? lossSum / predictions.length : Number.NaN,
    metrics,
    kept: { ...(prescreenerKept !== undefined ? { prescreener: prescreenerKept } : {}), ...(aggregatorKept !== undefined ? { aggregator: aggregatorKept } : {}) },
    msPerSlide: { prescreen: stageMean('prescreen'), read: stageMean('read'), aggregate: stageMean('aggregate'), total: stageMean('total') },
  };
}

/**
 * Flat metric record of an inference result under `<prefix>/…` (e.g. `test`, `test_all`): metric values,
 * `<prefix>/loss`, `<prefix>/kept_prescreener`, `<prefix>/kept_aggregator`, and `time/<stage>_ms` suffixed by
 * `suffix` when given (`time/prescreen_ms`, `time/aggregate_ms_all`).
 */
export function inferenceMetrics(result: InferenceResult, prefix: string, timeSuffix = ''): Record<string, number | null> {
  const out: Record<string, number | null> = { [`${prefix}/loss`]: result.loss };
  for (const [name, value] of Object.entries(result.metrics)) out[`${prefix}/${name}`] = value.value;
  if (result.kept.prescreener !== undefined) out[`${prefix}/kept_prescreener`] = result.kept.prescreener;
  if (result.kept.aggregator !== undefined) out[`${prefix}/kept_aggregator`] = result.kept.aggregator;
  for (const [stage, ms] of Object.entries(result.msPerSlide)) out[`time/${stage}_ms${timeSuffix}`] = ms;
  return out;
}
