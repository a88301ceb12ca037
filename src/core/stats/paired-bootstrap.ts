// Paired bootstrap of a metric difference between two models scored on the same slides. Patients (cases) are
// resampled with replacement and carry all their slides, so slides of one patient never count as independent.
// Any metric works (AUC, accuracy, kappa; binary or multi-class): it is recomputed on each resample.
import type { Metric, MetricInput } from '../../registry/contracts/metric.js';
import { quantileSorted } from '../eval/metrics.js';
import type { Rng } from '../runtime/random.js';

export interface PairedPredictions {
  /** Case id of each slide (the resampling unit). */
  readonly caseIds: readonly string[];
  readonly labels: readonly number[];
  /** Class probabilities of the baseline model A, one row per slide. */
  readonly probsA: ReadonlyArray<readonly number[]>;
  /** Class probabilities of the compared model B, same slides in the same order. */
  readonly probsB: ReadonlyArray<readonly number[]>;
  readonly numClasses: number;
}

export interface PairedBootstrap {
  /** metric(B) − metric(A) on all slides. */
  readonly difference: number;
  /** Percentile interval of the resampled differences. */
  readonly ci: readonly [number, number];
  /**
   * Two-sided bootstrap p-value: p = min(1, 2·(1 + min(#{d* ≤ 0}, #{d* ≥ 0})) / (B' + 1)), with B' the resamples
   * where both metrics are defined (the share of resampled differences on the far side of 0, doubled, with the
   * +1 correction that keeps p > 0).
   */
  readonly p: number;
  readonly resamples: number;
  /** Resamples where either metric was undefined (e.g. one class drawn for AUC); left out. */
  readonly undefinedResamples: number;
}

/** The slide indices of each case, cases in order of first appearance. */
export function slidesByCase(caseIds: readonly string[]): number[][] {
  const groups = new Map<string, number[]>();
  caseIds.forEach((id, i) => {
    const group = groups.get(id);
    if (group === undefined) groups.set(id, [i]);
    else group.push(i);
  });
  return [...groups.values()];
}

/** `count` resamples of `cases` case indices drawn with replacement from `rng` (row r = resample r). */
export function drawCaseResamples(cases: number, count: number, rng: Rng): number[][] {
  return Array.from({ length: count }, () => Array.from({ length: cases }, () => rng.int(cases)));
}

function subset(input: PairedPredictions, probs: ReadonlyArray<readonly number[]>, slides: readonly number[]): MetricInput {
  return { labels: slides.map((i) => input.labels[i] as number), probs: slides.map((i) => probs[i] as readonly number[]), numClasses: input.numClasses };
}

/**
 * The paired bootstrap of metric(B) − metric(A). `resamples` holds case indices (into slidesByCase order), so
 * callers and reference scripts can replay exactly the same draws. Null when the metric is undefined on all
 * slides or on every resample.
 */
export function pairedBootstrap(input: PairedPredictions, metric: Metric, resamples: ReadonlyArray<readonly number[]>, confidence = 0.95): PairedBootstrap | null {
  const groups = slidesByCase(input.caseIds);
  const all = groups.flat();
  const observedA = metric.compute(subset(input, input.probsA, all)).value;
  const observedB = metric.compute(subset(input, input.probsB, all)).value;
  if (observedA === null || observedB === null) return null;
  const differences: number[] = [];
  let undefinedResamples = 0;
  for (const draw of resamples) {
    const slides = draw.flatMap((c) => groups[c] ?? []);
    const a = metric.compute(subset(input, input.probsA, slides)).value;
    const b = metric.compute(subset(input, input.probsB, slides)).value;
    if (a === null || b === null) undefinedResamples += 1;
    else differences.push(b - a);
  }
  if (differences.length === 0) return null;
  differences.sort((x, y) => x - y);
  const below = differences.filter((d) => d <= 0).length;
  const above = differences.filter((d) => d >= 0).length;
  const p = Math.min(1, (2 * (1 + Math.min(below, above))) / (differences.length + 1));
  const tail = (1 - confidence) / 2;
  return {
    difference: observedB - observedA,
    ci: [quantileSorted(differences, tail), quantileSorted(differences, 1 - tail)],
    p,
    resamples: resamples.length,
    undefinedResamples,
  };
}

export interface CaseBootstrap {
  /** metric on all slides. */
  readonly value: number;
  /** Percentile interval of the resampled metric. */
  readonly ci: readonly [number, number];
  readonly resamples: number;
  /** Resamples where the metric was undefined (e.g. one class drawn for AUC); left out. */
  readonly undefinedResamples: number;
}

/**
 * The percentile bootstrap of one model's metric over patients: each resample (case indices, as for
 * pairedBootstrap) carries all slides of its cases. Null when the metric is undefined on all slides or on every resample.
 */
export function caseBootstrap(input: { caseIds: readonly string[]; labels: readonly number[]; probs: ReadonlyArray<readonly number[]>; numClasses: number }, metric: Metric, resamples: ReadonlyArray<readonly number[]>, confidence = 0.95): CaseBootstrap | null {
  const groups = slidesByCase(input.caseIds);
  const pick = (slides: readonly number[]): MetricInput => ({ labels: slides.map((i) => input.labels[i] as number), probs: slides.map((i) => input.probs[i] as readonly number[]), numClasses: input.numClasses });
  const observed = metric.compute(pick(groups.flat())).value;
  if (observed === null) return null;
  const values: number[] = [];
  let undefinedResamples = 0;
  for (const draw of resamples) {
    const value = metric.compute(pick(draw.flatMap((c) => groups[c] ?? []))).value;
    if (value === null) undefinedResamples += 1;
    else values.push(value);
  }
  if (values.length === 0) return null;
  values.sort((x, y) => x - y);
  const tail = (1 - confidence) / 2;
  return { value: observed, ci: [quantileSorted(values, tail), quantileSorted(values, 1 - tail)], resamples: resamples.length, undefinedResamples };
}
