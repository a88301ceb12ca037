// One row's metric with a confidence interval, from its out-of-fold test predictions: the number a reader of an
// ablation table wants next to "mean ± std over folds". The folds' test predictions of one repeat are pooled (each
// slide is tested once per repeat) and the metric is bootstrapped over patients; with repeats the median over
// repeats is reported, as for the DeLong test and the paired bootstrap (docs/sweeps.md#is-a-difference-real-statistics).
import type { Metric } from '../../registry/contracts/metric.js';
import type { Rng } from '../runtime/random.js';
import { atLevel, pool, type FoldPredictionSet, type FoldRecord } from './compare.js';
import { caseBootstrap, drawCaseResamples, slidesByCase, type CaseBootstrap } from './paired-bootstrap.js';
import { median } from './repeats.js';

export interface CellInterval {
  /** Median over units of the metric on the pooled predictions. */
  readonly value: number;
  /** Median over units of each percentile bound. */
  readonly ci: readonly [number, number];
  /** Units the median is over: repeats, or folds when test sets overlap across folds. */
  readonly units: number;
  /** Planned folds, and folds whose predictions entered the pool. */
  readonly plannedFolds: number;
  readonly pooledFolds: number;
  readonly resamples: number;
  /** Resamples left out because the metric was undefined on them, summed over units. */
  readonly undefinedResamples: number;
}

export interface CellIntervalOptions {
  readonly resamples: number;
  readonly confidence?: number;
  readonly rng: Rng;
  /** The label level the metric is computed at (`coarse`; see resolveMetric); default the flat predictions. */
  readonly level?: string;
}

/** The prediction sets a row's interval is computed on: per repeat the pooled folds, or each fold when a slide is tested twice. */
export function pooledPredictionUnits(folds: ReadonlyArray<FoldRecord | null>): FoldPredictionSet[] {
  const byRepeat = new Map<number, FoldPredictionSet[]>();
  for (const fold of folds) {
    if (fold?.predictions === undefined) continue;
    byRepeat.set(fold.repeat, [...(byRepeat.get(fold.repeat) ?? []), fold.predictions]);
  }
  const units: FoldPredictionSet[] = [];
  for (const repeat of [...byRepeat.keys()].sort((a, b) => a - b)) {
    const sets = byRepeat.get(repeat) as FoldPredictionSet[];
    const ids = sets.flatMap((s) => s.slideIds);
    // Monte-Carlo or official-test splits reuse test slides across folds: pooling would count a slide twice.
    if (new Set(ids).size !== ids.length) units.push(...sets);
    else units.push(pool(sets));
  }
  return units;
}

/**
 * The metric of one row on its pooled out-of-fold predictions with a percentile bootstrap interval over patients.
 * Each unit draws its resamples from `rng.fork('unit-<u>')`, so the interval is the same on every re-run. Null when
 * no fold has predictions or the metric is undefined everywhere.
 */
export function cellInterval(folds: ReadonlyArray<FoldRecord | null>, metric: Metric, options: CellIntervalOptions): CellInterval | null {
  const units = pooledPredictionUnits(folds).flatMap((unit) => {
    const set = atLevel(unit, options.level);
    return set ? [set] : [];
  });
  const results: CaseBootstrap[] = [];
  units.forEach((unit, u) => {
    const draws = drawCaseResamples(slidesByCase(unit.caseIds).length, options.resamples, options.rng.fork(`unit-${u}`));
    const result = caseBootstrap(unit, metric, draws, options.confidence ?? 0.95);
    if (result) results.push(result);
  });
  if (results.length === 0) return null;
  return {
    value: median(results.map((r) => r.value)),
    ci: [median(results.map((r) => r.ci[0])), median(results.map((r) => r.ci[1]))],
    units: results.length,
    plannedFolds: folds.length,
    pooledFolds: folds.filter((f) => f?.predictions !== undefined).length,
    resamples: options.resamples,
    undefinedResamples: results.reduce((a, r) => a + r.undefinedResamples, 0),
  };
}
