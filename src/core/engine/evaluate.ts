// Evaluation of the composed model over a list of slides: probabilities, bag loss (the active loss slots),
// slide metrics, per-slide pipeline times, kept-instance rates and, where the data has instance ground truth
// and the model gives instance scores over every instance, the instance-level metric of the attention. A
// model that screens (its pre-screener trained by a stage) is evaluated through the screened pass.
import * as tf from '@tensorflow/tfjs';
import { isLabelled, type BagData, type BagSource, type SlideRecord } from '../../registry/contracts/data.js';
import type { Metric, MetricValue } from '../../registry/contracts/metric.js';
import type { Rng } from '../runtime/random.js';
import { buildViews } from '../data/bags.js';
import { computeMetrics } from '../eval/metrics.js';
import { coarseProbabilities } from '../data/labels.js';
import { levelReport, perClassMetrics } from '../eval/levels.js';
import type { LossSchedule, MilModel } from './model.js';
import type { MemoryBudget } from './memory-budget.js';
import type { LabelHierarchy } from '../../registry/contracts/data.js';
import { HIERARCHY_EXTRAS } from '../../registry/contracts/model.js';
import { fullPass, screenedPass, type InstanceReader, type PassOptions, type SlidePass, type StageTimes } from './screening.js';

export interface SlidePrediction {
  readonly slideId: string;
  readonly caseId: string;
  readonly label: number;
  readonly probs: readonly number[];
  readonly prediction: number;
  /** Coarse level of a hierarchical task: the coarse label and coarse-class probabilities. */
  readonly coarse?: { readonly label: number; readonly probs: readonly number[]; readonly prediction: number };
}

export interface EvaluationResult {
  readonly predictions: SlidePrediction[];
  /** Mean bag loss (weighted total of the active losses). */
  readonly loss: number;
  readonly metrics: Record<string, MetricValue>;
  /** Instance-level metric of the attention against instance ground truth, when both exist. */
  readonly instanceAuc?: MetricValue;
  /** Wall-clock milliseconds of the whole pipeline per slide (loading excluded). */
  readonly msPerSlide: number;
  /** Mean milliseconds per slide of each pipeline stage (prescreen, read, aggregate, total). */
  readonly stageMs: StageTimes;
  /** Mean kept-instance fractions: by the pre-screener (screened) and by the aggregator's own gates (full pass). */
  readonly kept: { readonly prescreener?: number; readonly aggregator?: number };
  /** True when the screened pipeline was evaluated. */
  readonly screened: boolean;
}

export interface EvaluateOptions {
  readonly model: MilModel;
  readonly source: BagSource;
  readonly slides: readonly SlideRecord[];
  readonly numClasses: number;
  readonly metrics: ReadonlyArray<{ readonly name: string; readonly metric: Metric }>;
  readonly rng: Rng;
  /** Binary metric (from the registry, `eval.instanceMetric`) for the instance-level attention check; omitted → not computed. */
  readonly instanceMetric?: Metric;
  /** Bag views the model's forward reads (the aggregator's `needsViews`); the screened pass reads thumbnails itself. */
  readonly views?: readonly string[];
  /** Run the first slide once untimed before measuring (kernel set-up, caches); default false. */
  readonly warmup?: boolean;
  /** How instance features are read (timed as the `read` stage); default: precomputed feature rows. */
  readonly read?: InstanceReader;
  /**
   * Called once per evaluated slide (not for the warm-up pass) while its output is alive, e.g. to copy instance
   * scores for heatmaps (`milkit predict`); the output is disposed after it returns.
   */
  readonly onSlide?: (slide: SlideRecord, data: BagData, pass: SlidePass) => void;
  /** Checks each bag against the memory limit before its forward pass (docs/runtime.md#memory-budget). */
  readonly memoryBudget?: MemoryBudget;
  /** Training epoch of a validation pass (scheduled losses); absent at test. */
  readonly schedule?: LossSchedule;
  /**
   * Add the model's batch-level loss terms (`computeBatch`, e.g. SupCon) to the loss, over groups of bags formed as
   * training steps form them: the slides in an order drawn from `rng` (pass one stream for every epoch, so each
   * validation pass scores the same groups), cut into groups of `bagsPerGroup` (the last may be smaller).
   * Ignored when the model has no such terms or a slide has no label.
   */
  readonly batchTerms?: { readonly bagsPerGroup: number; readonly rng: Rng };
}

/**
 * The evaluation order when batch terms are computed: slides shuffled by `rng` and cut into groups of
 * `bagsPerGroup`, as an epoch order is cut into steps; undefined when there are no batch terms to compute.
 */
function batchGroupsOf(options: EvaluateOptions): SlideRecord[][] | undefined {
  const { batchTerms, slides, model } = options;
  if (!batchTerms || !model.hasBatchLosses() || !slides.every(isLabelled)) return undefined;
  const order = batchTerms.rng.shuffle([...slides]);
  const size = Math.max(1, batchTerms.bagsPerGroup);
  return Array.from({ length: Math.ceil(order.length / size) }, (_, g) => order.slice(g * size, (g + 1) * size));
}

function coarsePrediction(hierarchy: LabelHierarchy, label: number, probs: readonly number[]): NonNullable<SlidePrediction['coarse']> {
  return { label: hierarchy.fineToCoarse[label] ?? -1, probs, prediction: probs.indexOf(Math.max(...probs)) };
}

function mean(values: readonly number[]): number | undefined {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined;
}

/** Runs the model in eval mode over `slides`. One host sync per slide (its probabilities). */
export async function evaluate(options: EvaluateOptions): Promise<EvaluationResult> {
  const { model, source, slides, numClasses } = options;
  const hierarchy = model.hierarchy;
  model.setTraining(false);
  const passOptions: PassOptions = {
    io: { training: false, rng: options.rng },
    views: options.views ?? [],
    makeViews: buildViews,
    ...(options.read ? { read: options.read } : {}),
  };
  const pass = (data: Awaited<ReturnType<BagSource['load']>>): SlidePass => (model.screening ? screenedPass(model, data, passOptions) : fullPass(model, data, passOptions));
  const first = slides[0];
  if (options.warmup === true && first) {
    const data = await source.load(first.slideId);
    await options.memoryBudget?.check(data, 'eval', `slide ${first.slideId}`);
    tf.dispose(pass(data).output as unknown as tf.TensorContainer);
  }

  const predictions: SlidePrediction[] = [];
  const instanceScores: number[] = [];
  const instanceTruth: number[] = [];
  const times: StageTimes[] = [];
  const prescreenerKept: number[] = [];
  const aggregatorKept: number[] = [];
  let lossSum = 0;
  // With batch terms the slides go group by group, and a group's outputs live until its batch term is computed
  // (as a training step's do); predictions are put back in the slides' order at the end.
  const groups = batchGroupsOf(options);
  const lastOfGroup = new Set(groups?.map((group) => group[group.length - 1] as SlideRecord));
  let groupOutputs: Array<{ readonly output: SlidePass['output']; readonly label: number }> = [];
  let batchSum = 0;
  // A forward or loss that throws part-way through a group must not strand the group's outputs held so far (the
  // caller may go on: a sweep worker runs its next job in the same process).
  const disposeHeld = (): void => {
    for (const { output } of groupOutputs) tf.dispose(output as unknown as tf.TensorContainer);
    groupOutputs = [];
  };
  try {
    for (const slide of groups ? groups.flat() : slides) {
      const data = await source.load(slide.slideId);
      await options.memoryBudget?.check(data, 'eval', `slide ${slide.slideId}`);
      const result = pass(data);
      if (groups) groupOutputs.push({ output: result.output, label: slide.label });
      try {
        options.onSlide?.(slide, data, result);
        const { probs, loss, attention, coarseFromModel } = tf.tidy(() => {
          const out = result.output;
          // An unlabelled slide (a prediction cohort without labels) has no loss; its probabilities are unaffected.
          const total = isLabelled(slide) ? model.losses(out, slide.label, numClasses, options.schedule).total : undefined;
          const p = tf.softmax(out.logits).dataSync(); // [C]
          // A hierarchical aggregator's own coarse head; other models' coarse probabilities are their fine ones summed.
          const coarseLogits = hierarchy ? out.extras?.[HIERARCHY_EXTRAS.coarseLogits] : undefined;
          const coarseP = coarseLogits ? Array.from(tf.softmax(coarseLogits).dataSync()) : undefined;
          // Instance AUC reads the attention of the class it is about: with class-wise attention (one row per class) the
          // row of the slide's true class, whose instances the ground truth marks; otherwise the last row (a single
          // attention row, or the positive branch). Binary class-wise models read class 1's row on tumour slides either
          // way; a multi-class or hierarchical one no longer reads the last class's row for every slide.
          const rows = out.instanceScores?.shape[0] ?? 0;
          const row = rows === numClasses && slide.label >= 0 && slide.label < rows ? slide.label : rows - 1;
          const scores = result.allInstances && out.instanceScores ? out.instanceScores.slice([row, 0], [1, -1]).dataSync() : undefined;
          return { probs: Array.from(p), loss: total?.dataSync()[0] ?? Number.NaN, attention: scores ? Float32Array.from(scores) : undefined, coarseFromModel: coarseP };
        });
        if (groups && lastOfGroup.has(slide)) {
          const outputs = groupOutputs;
          batchSum += tf.tidy(() => model.batchLosses(outputs.map((o) => o.output), outputs.map((o) => o.label), numClasses, options.schedule).total.dataSync()[0] ?? Number.NaN);
          disposeHeld();
        }
        times.push(result.times);
        if (result.prescreenerKept !== undefined) prescreenerKept.push(result.prescreenerKept);
        if (result.aggregatorKept !== undefined) aggregatorKept.push(result.aggregatorKept);
        lossSum += loss;
        const prediction = probs.indexOf(Math.max(...probs));
        const coarse = hierarchy ? coarsePrediction(hierarchy, slide.label, coarseFromModel ?? coarseProbabilities(probs, hierarchy.fineToCoarse, hierarchy.coarseNames.length)) : undefined;
        predictions.push({ slideId: slide.slideId, caseId: slide.caseId, label: slide.label, probs, prediction, ...(coarse ? { coarse } : {}) });
        // Instance AUC pools the instances of the slides whose ground truth marks any instance (tumour slides; in a
        // hierarchical or subtyping task every class's bags): a slide without marked instances has nothing to find.
        if (attention && data.instanceLabels && data.instanceLabels.includes(1)) {
          for (let i = 0; i < attention.length; i += 1) {
            instanceScores.push(attention[i] as number);
            instanceTruth.push(data.instanceLabels[i] as number);
          }
        }
      } finally {
        // Without groups a slide's outputs are its own to free; with groups they are freed with the group (above).
        if (!groups) tf.dispose(result.output as unknown as tf.TensorContainer);
      }
    }
  } finally {
    disposeHeld();
  }
  if (groups) {
    const position = new Map(slides.map((slide, i) => [slide.slideId, i]));
    predictions.sort((a, b) => (position.get(a.slideId) as number) - (position.get(b.slideId) as number));
  }
  // Metrics need every slide's label: a cohort predicted without labels gets none.
  const labelled = slides.every(isLabelled);
  const metrics = labelled ? computeMetrics([...options.metrics], { labels: predictions.map((p) => p.label), probs: predictions.map((p) => p.probs), numClasses }) : {};
  // Hierarchical tasks: every configured metric again at the coarse level (`coarse_<metric>`), and per-class
  // precision, recall and F1 at both levels (`fine_f1_<class>`, `coarse_recall_<class>`, ...).
  if (labelled && hierarchy && predictions.length > 0) {
    const coarseInput = { labels: predictions.map((p) => p.coarse?.label ?? -1), probs: predictions.map((p) => [...(p.coarse?.probs ?? [])]), numClasses: hierarchy.coarseNames.length };
    for (const [name, value] of Object.entries(computeMetrics([...options.metrics], coarseInput))) metrics[`coarse_${name}`] = value;
    Object.assign(metrics, perClassMetrics(levelReport({ labels: predictions.map((p) => p.label), probs: predictions.map((p) => p.probs), classNames: source.classNames }), 'fine_'));
    Object.assign(metrics, perClassMetrics(levelReport({ ...coarseInput, classNames: hierarchy.coarseNames }), 'coarse_'));
  }
  const stageMean = (key: keyof StageTimes): number => mean(times.map((t) => t[key])) ?? 0;
  const keptPrescreener = mean(prescreenerKept);
  const keptAggregator = mean(aggregatorKept);
  return {
    predictions,
    // The mean bag loss, plus the mean batch term per group: a training step's loss, averaged as train/loss is.
    loss: slides.length ? lossSum / slides.length + (groups ? batchSum / groups.length : 0) : Number.NaN,
    metrics,
    msPerSlide: stageMean('total'),
    stageMs: { prescreen: stageMean('prescreen'), read: stageMean('read'), aggregate: stageMean('aggregate'), total: stageMean('total') },
    kept: { ...(keptPrescreener !== undefined ? { prescreener: keptPrescreener } : {}), ...(keptAggregator !== undefined ? { aggregator: keptAggregator } : {}) },
    screened: model.screening,
    ...(instanceTruth.length && options.instanceMetric
      ? { instanceAuc: options.instanceMetric.compute({ labels: instanceTruth, probs: instanceScores.map((s) => [1 - s, s]), numClasses: 2 }) }
      : {}),
  };
}
