// Evaluation of a model over a list of slides: probabilities, bag loss, slide metrics and, where the data
// has instance ground truth and the model gives instance scores, the instance-level AUC of the attention.
import * as tf from '@tensorflow/tfjs';
import type { BagSource, SlideRecord } from '../../registry/contracts/data.js';
import type { Metric, MetricValue } from '../../registry/contracts/metric.js';
import type { Rng } from '../runtime/random.js';
import { bagToTensors } from '../data/bags.js';
import { disposeBag } from './bag-tensors.js';
import { computeMetrics } from '../eval/metrics.js';
import type { MilModel } from './model.js';

export interface SlidePrediction {
  readonly slideId: string;
  readonly caseId: string;
  readonly label: number;
  readonly probs: readonly number[];
  readonly prediction: number;
}

export interface EvaluationResult {
  readonly predictions: SlidePrediction[];
  /** Mean bag loss (weighted total of the configured losses). */
  readonly loss: number;
  readonly metrics: Record<string, MetricValue>;
  /** Instance-level AUC of the attention against instance ground truth, when both exist. */
  readonly instanceAuc?: MetricValue;
  /** Wall-clock milliseconds of forward passes per slide (loading excluded). */
  readonly msPerSlide: number;
}

export interface EvaluateOptions {
  readonly model: MilModel;
  readonly source: BagSource;
  readonly slides: readonly SlideRecord[];
  readonly numClasses: number;
  readonly metrics: ReadonlyArray<{ readonly name: string; readonly metric: Metric }>;
  readonly rng: Rng;
  /** Binary AUC metric (from the registry) for the instance-level attention check; omitted → not computed. */
  readonly instanceMetric?: Metric;
}

/** Runs the model in eval mode over `slides`. One host sync per slide (its probabilities). */
export async function evaluate(options: EvaluateOptions): Promise<EvaluationResult> {
  const { model, source, slides, numClasses } = options;
  model.setTraining(false);
  const predictions: SlidePrediction[] = [];
  const instanceScores: number[] = [];
  const instanceTruth: number[] = [];
  let lossSum = 0;
  let forwardMs = 0;
  for (const slide of slides) {
    const data = await source.load(slide.slideId);
    const bag = bagToTensors(data, { withThumbs: model.capabilities.needsThumbs });
    const started = performance.now();
    const { probs, loss, attention } = tf.tidy(() => {
      const out = model.forward(bag, { training: false, rng: options.rng });
      const { total } = model.losses(out, slide.label, numClasses);
      const p = tf.softmax(out.logits).dataSync(); // [C]
      // Attention of the predicted-positive branch (last column for per-class attention), for instance AUC.
      const scores = out.instanceScores ? out.instanceScores.slice([out.instanceScores.shape[0] - 1, 0], [1, -1]).dataSync() : undefined;
      return { probs: Array.from(p), loss: total.dataSync()[0] ?? Number.NaN, attention: scores ? Float32Array.from(scores) : undefined };
    });
    forwardMs += performance.now() - started;
    disposeBag(bag);
    lossSum += loss;
    const prediction = probs.indexOf(Math.max(...probs));
    predictions.push({ slideId: slide.slideId, caseId: slide.caseId, label: slide.label, probs, prediction });
    // Instance AUC is only defined within positive slides' instances (where tumour instances exist).
    if (attention && data.instanceLabels && slide.label > 0) {
      for (let i = 0; i < attention.length; i += 1) {
        instanceScores.push(attention[i] as number);
        instanceTruth.push(data.instanceLabels[i] as number);
      }
    }
  }
  const metrics = computeMetrics([...options.metrics], { labels: predictions.map((p) => p.label), probs: predictions.map((p) => p.probs), numClasses });
  const result: EvaluationResult = {
    predictions,
    loss: slides.length ? lossSum / slides.length : Number.NaN,
    metrics,
    msPerSlide: slides.length ? forwardMs / slides.length : 0,
    ...(instanceTruth.length && options.instanceMetric
      ? { instanceAuc: options.instanceMetric.compute({ labels: instanceTruth, probs: instanceScores.map((s) => [1 - s, s]), numClasses: 2 }) }
      : {}),
  };
  return result;
}
