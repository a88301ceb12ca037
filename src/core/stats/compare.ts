// "Is this difference real?": each row of an ablation table against a baseline row, fold by fold. The
// corrected resampled t-test on paired fold metrics (Holm-adjusted across rows) decides the ▲/▼/≈ mark;
// DeLong's test (binary AUC) and a case-level paired bootstrap on the pooled out-of-fold predictions are
// shown beside it. Folds are paired only when both rows finished them on the same test slides.
import type { Metric } from '../../registry/contracts/metric.js';
import { ConfigError, DataError } from '../errors.js';
import { didYouMean } from '../util/suggest.js';
import type { Rng } from '../runtime/random.js';
import { correctedResampledTTest, type CorrectedTTest } from './corrected-t-test.js';
import { delongPairedTest, type DelongTest } from './delong.js';
import { holmAdjust, significanceMark, type SignificanceMark } from './multiple-testing.js';
import { drawCaseResamples, pairedBootstrap, slidesByCase, type PairedBootstrap } from './paired-bootstrap.js';
import { median } from './repeats.js';

/** Test-set predictions of one fold. */
export interface FoldPredictionSet {
  readonly slideIds: readonly string[];
  readonly caseIds: readonly string[];
  readonly labels: readonly number[];
  readonly probs: ReadonlyArray<readonly number[]>;
  readonly numClasses: number;
  /**
   * The same slides' predictions at other label levels, by level name (`coarse` for hierarchical tasks); a fold
   * metric `<level>_<metric>` is `<metric>` on that level ([resolveMetric]).
   */
  readonly levels?: Readonly<Record<string, FoldPredictionSet>>;
}

/** Where a fold metric is recomputed from predictions: on the flat predictions or on one of their levels. */
export interface MetricTarget {
  /** Undefined for the flat predictions. */
  readonly level?: string;
  /** The metric plugin's name (the fold metric's name without the level prefix). */
  readonly name: string;
  readonly numClasses: number;
}

/**
 * Which predictions and plugin a fold metric is recomputed with: the metric itself on the flat predictions when
 * `hasMetric` knows it, else `<level>_<metric>` → `<metric>` on that level's predictions. Any metric a run reports
 * at a level resolves this way, so no level metric is named here. Undefined when nothing computes it.
 */
export function resolveMetric(metric: string, set: FoldPredictionSet, hasMetric: (name: string, numClasses: number) => boolean): MetricTarget | undefined {
  if (hasMetric(metric, set.numClasses)) return { name: metric, numClasses: set.numClasses };
  for (const [level, sub] of Object.entries(set.levels ?? {})) {
    const prefix = `${level}_`;
    if (metric.startsWith(prefix) && hasMetric(metric.slice(prefix.length), sub.numClasses)) return { level, name: metric.slice(prefix.length), numClasses: sub.numClasses };
  }
  return undefined;
}

/** The predictions of one level (the set itself for the flat level); undefined when the set lacks the level. */
export function atLevel(set: FoldPredictionSet, level: string | undefined): FoldPredictionSet | undefined {
  return level === undefined ? set : set.levels?.[level];
}

/** What one finished fold of a row contributes. */
export interface FoldRecord {
  /** Fold index within the row (repeat · folds + fold). */
  readonly index: number;
  readonly repeat: number;
  readonly metrics: Readonly<Record<string, number | null>>;
  readonly predictions?: FoldPredictionSet;
  /** Partition sizes in slides, when the split is known. */
  readonly nTrain?: number;
  readonly nTest?: number;
  /** The fold's validation slides equal its test slides (model selection saw the test set). */
  readonly valIsTest?: boolean;
  /** The fold has no validation slides. */
  readonly noVal?: boolean;
}

export interface RowRecord {
  readonly label: string;
  /** Rows compare only within their group (a dataset of the sweep); the baseline is chosen per group. */
  readonly group?: string;
  /** One entry per planned fold, in fold order; null when the fold failed or has no result. */
  readonly folds: ReadonlyArray<FoldRecord | null>;
}

export interface CompareOptions {
  readonly metrics: readonly string[];
  /** Label of the baseline row (default: the first row of each group). */
  readonly baseline?: string;
  /** Significance level of the marks (after Holm). */
  readonly alpha?: number;
  /** Confidence level of every interval. */
  readonly confidence?: number;
  /** Metric plugins by name and class count, for the bootstrap; a metric without one gets no bootstrap. */
  readonly metricFor?: (name: string, numClasses: number) => Metric | undefined;
  /** Metric names whose binary-AUC DeLong test applies (default: `auc`), at any level (`coarse_auc` on a binary coarse level). */
  readonly aucMetrics?: readonly string[];
  /** Bootstrap resamples per unit (0 = off). */
  readonly bootstrapResamples?: number;
  readonly rng: Rng;
}

/** The median over units (repeats, or folds when test sets overlap) of a test's numbers. */
export interface MedianTest {
  readonly difference: number;
  readonly ci: readonly [number, number];
  readonly p: number;
  /** Number of units (per-repeat pooled prediction sets) the median is over. */
  readonly units: number;
  /** DeLong only: median z. */
  readonly z?: number;
}

export interface MetricComparison {
  readonly metric: string;
  /** Folds paired for the t-test. */
  readonly pairedFolds: number;
  readonly tTest: CorrectedTTest | null;
  /** Holm-adjusted p across the rows of the group. */
  readonly adjustedP: number | null;
  readonly mark: SignificanceMark | null;
  readonly delong: MedianTest | null;
  readonly bootstrap: MedianTest | null;
}

export interface RowComparison {
  readonly label: string;
  readonly group?: string;
  readonly baseline: string;
  readonly isBaseline: boolean;
  readonly metrics: readonly MetricComparison[];
  /** Problems that made folds unpaired or results less trustworthy, one sentence each. */
  readonly flags: readonly string[];
}

export interface ComparisonResult {
  readonly rows: readonly RowComparison[];
  readonly alpha: number;
  readonly confidence: number;
  readonly bootstrapResamples: number;
  /** Table-wide warnings (e.g. validation = test). */
  readonly warnings: readonly string[];
}

function sameSlides(a: FoldPredictionSet, b: FoldPredictionSet): boolean {
  if (a.slideIds.length !== b.slideIds.length) return false;
  const x = [...a.slideIds].sort();
  const y = [...b.slideIds].sort();
  return x.every((id, i) => id === y[i]);
}

interface Pair {
  readonly base: FoldRecord;
  readonly row: FoldRecord;
}

/** Folds both rows finished on the same test slides, and flags for the rest. */
function pairFolds(baseline: RowRecord, row: RowRecord): { pairs: Pair[]; flags: string[] } {
  const pairs: Pair[] = [];
  const failed: number[] = [];
  const different: number[] = [];
  let unverified = 0;
  const count = Math.max(baseline.folds.length, row.folds.length);
  for (let f = 0; f < count; f += 1) {
    const base = baseline.folds[f] ?? null;
    const mine = row.folds[f] ?? null;
    if (base === null || mine === null) {
      failed.push(f);
      continue;
    }
    if (base.predictions && mine.predictions) {
      if (!sameSlides(base.predictions, mine.predictions)) {
        different.push(f);
        continue;
      }
    } else unverified += 1;
    pairs.push({ base, row: mine });
  }
  const flags: string[] = [];
  if (baseline.folds.length !== row.folds.length) flags.push(`${baseline.label} has ${baseline.folds.length} folds, ${row.label} has ${row.folds.length}; only common fold indices are paired`);
  if (failed.length > 0) flags.push(`fold(s) ${failed.join(', ')} failed or are missing in this row or the baseline and are left out of the tests`);
  if (different.length > 0) flags.push(`fold(s) ${different.join(', ')} were evaluated on different slides than the baseline and are not paired`);
  if (unverified > 0) flags.push(`${unverified} fold(s) have no predictions, so their test slides could not be checked against the baseline`);
  return { pairs, flags };
}

/** The pooled prediction sets the DeLong test and the bootstrap run on: one per repeat, or one per fold when test sets overlap. */
function predictionUnits(pairs: readonly Pair[]): Array<{ base: FoldPredictionSet; row: FoldPredictionSet }> {
  const withPredictions = pairs.filter((p): p is { base: FoldRecord & { predictions: FoldPredictionSet }; row: FoldRecord & { predictions: FoldPredictionSet } } => p.base.predictions !== undefined && p.row.predictions !== undefined);
  const byRepeat = new Map<number, typeof withPredictions>();
  for (const pair of withPredictions) byRepeat.set(pair.base.repeat, [...(byRepeat.get(pair.base.repeat) ?? []), pair]);
  const units: Array<{ base: FoldPredictionSet; row: FoldPredictionSet }> = [];
  for (const group of byRepeat.values()) {
    const ids = group.flatMap((p) => p.base.predictions.slideIds);
    if (new Set(ids).size !== ids.length) {
      // Monte-Carlo or official-test splits reuse test slides across folds: pooling would count a slide twice.
      for (const p of group) units.push({ base: p.base.predictions, row: alignTo(p.base.predictions, p.row.predictions) });
      continue;
    }
    const base = pool(group.map((p) => p.base.predictions));
    units.push({ base, row: alignTo(base, pool(group.map((p) => p.row.predictions))) });
  }
  return units;
}

/** One prediction set holding every set's slides, in order (the pooled out-of-fold predictions of a repeat). */
export function pool(sets: readonly FoldPredictionSet[]): FoldPredictionSet {
  // A level is pooled only when every set has it, so a pooled level never covers fewer slides than the flat set.
  const levelNames = [...new Set(sets.flatMap((s) => Object.keys(s.levels ?? {})))].filter((l) => sets.every((s) => s.levels?.[l] !== undefined));
  const levels = Object.fromEntries(levelNames.map((l) => [l, pool(sets.map((s) => s.levels?.[l] as FoldPredictionSet))]));
  return {
    slideIds: sets.flatMap((s) => s.slideIds),
    caseIds: sets.flatMap((s) => s.caseIds),
    labels: sets.flatMap((s) => s.labels),
    probs: sets.flatMap((s) => s.probs),
    numClasses: sets[0]?.numClasses ?? 0,
    ...(levelNames.length > 0 ? { levels } : {}),
  };
}

/** `set` reordered to the slide order of `reference` (same slides, checked by pairFolds). */
function alignTo(reference: FoldPredictionSet, set: FoldPredictionSet): FoldPredictionSet {
  const at = new Map(set.slideIds.map((id, i) => [id, i] as const));
  const order = reference.slideIds.map((id) => at.get(id) as number);
  const reorder = (s: FoldPredictionSet): FoldPredictionSet => ({
    slideIds: order.map((i) => s.slideIds[i] as string),
    caseIds: order.map((i) => s.caseIds[i] as string),
    labels: order.map((i) => s.labels[i] as number),
    probs: order.map((i) => s.probs[i] as readonly number[]),
    numClasses: s.numClasses,
    ...(s.levels ? { levels: Object.fromEntries(Object.entries(s.levels).map(([l, sub]) => [l, reorder(sub)])) } : {}),
  });
  return reorder(set);
}

function medianOf(tests: ReadonlyArray<{ difference: number; ci: readonly [number, number]; p: number; z?: number }>): MedianTest | null {
  if (tests.length === 0) return null;
  const zs = tests.map((t) => t.z).filter((z): z is number => z !== undefined && Number.isFinite(z));
  return {
    difference: median(tests.map((t) => t.difference)),
    ci: [median(tests.map((t) => t.ci[0])), median(tests.map((t) => t.ci[1]))],
    p: median(tests.map((t) => t.p)),
    units: tests.length,
    ...(tests.some((t) => t.z !== undefined) ? { z: zs.length > 0 ? median(zs) : Number.NaN } : {}),
  };
}

function compareMetric(metric: string, pairs: readonly Pair[], units: ReturnType<typeof predictionUnits>, options: CompareOptions, rng: Rng, flags: string[]): Omit<MetricComparison, 'adjustedP' | 'mark'> {
  const confidence = options.confidence ?? 0.95;
  const usable = pairs.filter((p) => typeof p.base.metrics[metric] === 'number' && typeof p.row.metrics[metric] === 'number'
    && Number.isFinite(p.base.metrics[metric]) && Number.isFinite(p.row.metrics[metric]));
  const differences = usable.map((p) => (p.row.metrics[metric] as number) - (p.base.metrics[metric] as number));
  const ratios = usable.map((p) => (p.row.nTest !== undefined && p.row.nTrain !== undefined && p.row.nTrain > 0 ? p.row.nTest / p.row.nTrain : Number.NaN));
  let tTest: CorrectedTTest | null = null;
  if (differences.length > 0) {
    const unknown = ratios.filter((r) => Number.isNaN(r)).length;
    const flag = `the split sizes of ${unknown} fold(s) are unknown, so the corrected t-test is not run`;
    if (unknown > 0 && !flags.includes(flag)) flags.push(flag);
    // No test without n_test/n_train: the uncorrected test would overstate significance.
    if (unknown === 0) tTest = correctedResampledTTest({ differences, testTrainRatio: ratios.reduce((a, b) => a + b, 0) / ratios.length, confidence });
  }
  // The DeLong test and the bootstrap recompute the metric from predictions, at the level the metric names.
  const target = units[0] === undefined ? undefined : resolveMetric(metric, units[0].base, (name, k) => options.metricFor?.(name, k) !== undefined || (options.aucMetrics ?? ['auc']).includes(name));
  const levelUnits = units.flatMap((u) => {
    const base = atLevel(u.base, target?.level);
    const row = atLevel(u.row, target?.level);
    return base && row ? [{ base, row }] : [];
  });
  const complete = target !== undefined && levelUnits.length === units.length && units.length > 0;
  const isBinary = levelUnits.every((u) => u.base.numClasses === 2);
  let delong: MedianTest | null = null;
  if (complete && (options.aucMetrics ?? ['auc']).includes(target.name) && isBinary) {
    const tests: DelongTest[] = [];
    for (const unit of levelUnits) {
      try {
        const isPositive = unit.base.labels.map((y) => y === 1);
        tests.push(delongPairedTest(isPositive, unit.base.probs.map((p) => p[1] as number), unit.row.probs.map((p) => p[1] as number), confidence));
      } catch (error) {
        // Too few slides of a class is a property of the data, reported; anything else is a bug and propagates.
        if (!(error instanceof DataError)) throw error;
        flags.push(`${metric}: DeLong skipped on one prediction set (${error.message})`);
      }
    }
    delong = medianOf(tests);
  }
  let bootstrap: MedianTest | null = null;
  const plugin = complete ? options.metricFor?.(target.name, target.numClasses) : undefined;
  const resamples = options.bootstrapResamples ?? 1000;
  if (plugin && resamples > 0) {
    const tests: PairedBootstrap[] = [];
    levelUnits.forEach((unit, u) => {
      const draws = drawCaseResamples(slidesByCase(unit.base.caseIds).length, resamples, rng.fork(`${metric}/unit-${u}`));
      const result = pairedBootstrap({ caseIds: unit.base.caseIds, labels: unit.base.labels, probsA: unit.base.probs, probsB: unit.row.probs, numClasses: unit.base.numClasses }, plugin, draws, confidence);
      if (result) tests.push(result);
    });
    bootstrap = medianOf(tests);
  }
  return { metric, pairedFolds: differences.length, tTest, delong, bootstrap };
}

/** Every row against the baseline of its group, for each metric; Holm runs over the rows of a group per metric. */
export function compareWithBaseline(rows: readonly RowRecord[], options: CompareOptions): ComparisonResult {
  if (options.baseline !== undefined && !rows.some((r) => r.label === options.baseline)) {
    throw new ConfigError('unknown-baseline', `baseline row "${options.baseline}" is not a row of the table.${didYouMean(options.baseline, [...new Set(rows.map((r) => r.label))])}`, {
      where: { key: 'baseline' }, hint: `Rows: ${[...new Set(rows.map((r) => r.label))].join(', ')}.`,
    });
  }
  const alpha = options.alpha ?? 0.05;
  const confidence = options.confidence ?? 0.95;
  const groups = [...new Set(rows.map((r) => r.group ?? ''))];
  const out: RowComparison[] = [];
  const warnings: string[] = [];
  for (const row of rows) {
    const valIsTest = row.folds.filter((f) => f?.valIsTest === true).length;
    const where = `${row.label}${row.group ? ` (${row.group})` : ''}`;
    if (valIsTest > 0) warnings.push(`${where}: in ${valIsTest} fold(s) the validation set is the test set, so model selection saw the test slides and every number of that row is optimistic`);
    const noVal = row.folds.filter((f) => f?.noVal === true).length;
    if (noVal > 0) warnings.push(`${where}: ${noVal} fold(s) have no validation set; make sure early stopping and model selection did not fall back to the test slides`);
  }
  for (const group of groups) {
    const members = rows.filter((r) => (r.group ?? '') === group);
    const baseline = options.baseline === undefined ? members[0] : members.find((r) => r.label === options.baseline);
    if (!baseline) {
      warnings.push(`${group ? `${group}: ` : ''}no row "${options.baseline ?? ''}" to compare with; its rows are not tested`);
      continue;
    }
    const compared = members.map((row) => {
      if (row === baseline) return { row, flags: [] as string[], metrics: [] as Array<Omit<MetricComparison, 'adjustedP' | 'mark'>> };
      const { pairs, flags } = pairFolds(baseline, row);
      const units = predictionUnits(pairs);
      const rng = options.rng.fork(`${group}/${row.label}`);
      return { row, flags, metrics: options.metrics.map((m) => compareMetric(m, pairs, units, options, rng, flags)) };
    });
    const adjusted = new Map<string, (number | null)[]>();
    for (const [j, metric] of options.metrics.entries()) {
      adjusted.set(metric, holmAdjust(compared.map((c) => (c.row === baseline ? null : (c.metrics[j]?.tTest?.p ?? null)))));
    }
    compared.forEach((c, i) => {
      out.push({
        label: c.row.label,
        ...(c.row.group !== undefined ? { group: c.row.group } : {}),
        baseline: baseline.label,
        isBaseline: c.row === baseline,
        flags: c.flags,
        metrics: c.metrics.map((m) => {
          const adjustedP = adjusted.get(m.metric)?.[i] ?? null;
          return { ...m, adjustedP, mark: m.tTest ? significanceMark(m.tTest.effect, adjustedP, alpha) : null };
        }),
      });
    });
  }
  return { rows: out, alpha, confidence, bootstrapResamples: options.bootstrapResamples ?? 1000, warnings };
}
