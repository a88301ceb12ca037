// Metric aggregation: run the configured metric plugins on one fold's predictions, summarise folds as
// mean ± sample std (ddof = 1), and percentile bootstrap confidence intervals (seeded resamples of slides).
import type { Metric, MetricInput, MetricValue } from '../../registry/contracts/metric.js';
import { NumericsError } from '../errors.js';
import type { Rng } from '../runtime/random.js';

/** Every metric on one input, keyed by name; a metric that throws propagates (never turned into a number). */
export function computeMetrics(metrics: ReadonlyArray<{ name: string; metric: Metric }>, input: MetricInput): Record<string, MetricValue> {
  checkInput(input);
  const out: Record<string, MetricValue> = {};
  for (const { name, metric } of metrics) out[name] = metric.compute(input);
  return out;
}

function checkInput(input: MetricInput): void {
  if (input.labels.length !== input.probs.length) {
    throw new NumericsError('metric-input-length', `metric input has ${input.labels.length} labels but ${input.probs.length} probability rows.`, { hint: 'Every slide needs a label and a probability row.' });
  }
  input.probs.forEach((row, i) => {
    if (row.length !== input.numClasses) {
      throw new NumericsError('metric-input-width', `probability row ${i} has ${row.length} entries, expected ${input.numClasses} classes.`, { hint: 'Rows must hold one probability per class.' });
    }
    if (row.some((p) => !Number.isFinite(p))) {
      throw new NumericsError('metric-input-non-finite', `probability row ${i} holds a non-finite value (${row.join(', ')}).`, { hint: 'The model produced NaN/Inf; check the loss and learning rate.' });
    }
  });
}

export interface FoldSummary {
  /** Mean over folds where the metric is defined; null when none is. */
  mean: number | null;
  /** Sample standard deviation (ddof = 1) over those folds; null when fewer than two. */
  std: number | null;
  /** Number of folds where the metric is defined. */
  n: number;
}

/** Mean and sample std (ddof = 1) per metric across folds, skipping folds where it is undefined. */
export function summarizeFolds(perFold: ReadonlyArray<Readonly<Record<string, MetricValue>>>): Record<string, FoldSummary> {
  const names = [...new Set(perFold.flatMap((f) => Object.keys(f)))];
  const out: Record<string, FoldSummary> = {};
  for (const name of names) {
    const values = perFold.map((f) => f[name]?.value).filter((v): v is number => typeof v === 'number');
    const n = values.length;
    const mean = n === 0 ? null : values.reduce((a, b) => a + b, 0) / n;
    const std = n < 2 || mean === null ? null : Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
    out[name] = { mean, std, n };
  }
  return out;
}

/** Linear-interpolation quantile of sorted values (numpy's default method). */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] as number;
  return a + (pos - lo) * ((sorted[hi] as number) - a);
}

export interface BootstrapInterval {
  /** Lower and upper percentile bounds of the resampled metric. */
  readonly low: number;
  readonly high: number;
  readonly level: number;
  /** Resamples drawn. */
  readonly resamples: number;
  /** Resamples where the metric was undefined (e.g. a single-class draw for AUC); left out of the quantiles. */
  readonly undefinedResamples: number;
}

export interface BootstrapOptions {
  /** Number of resamples (1,000 by default). */
  readonly resamples?: number;
  /** Coverage of the interval (0.95 by default). */
  readonly level?: number;
  readonly rng: Rng;
}

/**
 * Percentile bootstrap: resample slides with replacement, recompute the metric, take the (1±level)/2
 * quantiles. Null when the input is empty or the metric is undefined on every resample.
 */
export function bootstrapCI(metric: Metric, input: MetricInput, opts: BootstrapOptions): BootstrapInterval | null {
  const resamples = opts.resamples ?? 1000;
  const level = opts.level ?? 0.95;
  const n = input.labels.length;
  if (n === 0) return null;
  const values: number[] = [];
  let undefinedResamples = 0;
  const labels = new Array<number>(n);
  const probs = new Array<readonly number[]>(n);
  for (let r = 0; r < resamples; r += 1) {
    for (let i = 0; i < n; i += 1) {
      const j = opts.rng.int(n);
      labels[i] = input.labels[j] as number;
      probs[i] = input.probs[j] as readonly number[];
    }
    const v = metric.compute({ labels, probs, numClasses: input.numClasses });
    if (v.value === null) undefinedResamples += 1;
    else values.push(v.value);
  }
  if (values.length === 0) return null;
  values.sort((a, b) => a - b);
  const alpha = (1 - level) / 2;
  return { low: quantileSorted(values, alpha), high: quantileSorted(values, 1 - alpha), level, resamples, undefinedResamples };
}

/**
 * Bootstrap intervals of several metrics on one input. Each metric gets its own stream
 * (`rng.fork(name)`), so adding a metric never changes another's interval.
 */
export function bootstrapMetrics(
  metrics: ReadonlyArray<{ name: string; metric: Metric }>,
  input: MetricInput,
  opts: { resamples: number; rng: Rng; level?: number },
): Record<string, BootstrapInterval | null> {
  const out: Record<string, BootstrapInterval | null> = {};
  for (const { name, metric } of metrics) out[name] = bootstrapCI(metric, input, { resamples: opts.resamples, rng: opts.rng.fork(name), ...(opts.level === undefined ? {} : { level: opts.level }) });
  return out;
}
