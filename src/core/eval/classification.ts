// Classification arithmetic shared by the metric plugins and the plots: argmax predictions, confusion
// matrices, rank-based ROC-AUC with tie handling, ROC and precision-recall curves (scikit-learn semantics).

/** Index of the largest probability per row; the first one wins a tie (numpy argmax). */
export function argmaxRows(probs: readonly (readonly number[])[]): number[] {
  return probs.map((row) => {
    let best = 0;
    for (let c = 1; c < row.length; c += 1) if ((row[c] as number) > (row[best] as number)) best = c;
    return best;
  });
}

/** C×C counts, rows = true class, columns = predicted class. */
export function confusionMatrix(labels: readonly number[], predictions: readonly number[], numClasses: number): number[][] {
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  labels.forEach((y, i) => {
    const p = predictions[i] as number;
    const row = m[y];
    if (row !== undefined && p >= 0 && p < numClasses) row[p] = (row[p] as number) + 1;
  });
  return m;
}

/** Midranks (1-based, ties share their average rank) of `values`. */
export function midranks(values: readonly number[]): Float64Array {
  const order = values.map((v, i) => ({ v, i })).sort((a, b) => a.v - b.v);
  const ranks = new Float64Array(values.length);
  let start = 0;
  while (start < order.length) {
    let end = start;
    while (end + 1 < order.length && (order[end + 1] as { v: number }).v === (order[start] as { v: number }).v) end += 1;
    const rank = (start + end) / 2 + 1;
    for (let j = start; j <= end; j += 1) ranks[(order[j] as { i: number }).i] = rank;
    start = end + 1;
  }
  return ranks;
}

/**
 * Area under the ROC curve of scores for positives (`isPositive`) vs the rest, by the Mann-Whitney U
 * statistic with midranks: equals the trapezoidal ROC area with ties (scikit-learn roc_auc_score).
 * Null when one of the two groups is empty.
 */
export function binaryAuc(isPositive: readonly boolean[], scores: readonly number[]): number | null {
  const nPos = isPositive.filter(Boolean).length;
  const nNeg = isPositive.length - nPos;
  if (nPos === 0 || nNeg === 0) return null;
  const ranks = midranks(scores);
  let rankSum = 0;
  isPositive.forEach((p, i) => {
    if (p) rankSum += ranks[i] as number;
  });
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** Cumulative true/false positives at each distinct score, highest score first (scikit-learn _binary_clf_curve). */
function thresholdCounts(isPositive: readonly boolean[], scores: readonly number[]): { tps: number[]; fps: number[]; thresholds: number[] } {
  const order = scores.map((s, i) => ({ s, p: isPositive[i] === true })).sort((a, b) => b.s - a.s);
  const tps: number[] = [];
  const fps: number[] = [];
  const thresholds: number[] = [];
  let tp = 0;
  let fp = 0;
  order.forEach((o, i) => {
    if (o.p) tp += 1;
    else fp += 1;
    if (i + 1 < order.length && (order[i + 1] as { s: number }).s === o.s) return;
    tps.push(tp);
    fps.push(fp);
    thresholds.push(o.s);
  });
  return { tps, fps, thresholds };
}

export interface RocCurve {
  /** Starts at (0, 0), ends at (1, 1); one point per distinct score threshold. */
  readonly fpr: number[];
  readonly tpr: number[];
  /** Score threshold of each point (the first is +Infinity). */
  readonly thresholds: number[];
}

/** ROC points at every distinct score, highest first (scikit-learn roc_curve with drop_intermediate=false). */
export function rocCurve(isPositive: readonly boolean[], scores: readonly number[]): RocCurve {
  const { tps, fps, thresholds } = thresholdCounts(isPositive, scores);
  const nPos = tps[tps.length - 1] ?? 0;
  const nNeg = fps[fps.length - 1] ?? 0;
  return {
    fpr: [0, ...fps.map((f) => (nNeg === 0 ? Number.NaN : f / nNeg))],
    tpr: [0, ...tps.map((t) => (nPos === 0 ? Number.NaN : t / nPos))],
    thresholds: [Number.POSITIVE_INFINITY, ...thresholds],
  };
}

export interface PrCurve {
  /** Recall decreasing to 0 (scikit-learn precision_recall_curve order). */
  readonly recall: number[];
  readonly precision: number[];
  readonly thresholds: number[];
}

/** Precision-recall points at every distinct score (scikit-learn 1.2 precision_recall_curve). */
export function prCurve(isPositive: readonly boolean[], scores: readonly number[]): PrCurve {
  const { tps, fps, thresholds } = thresholdCounts(isPositive, scores);
  const nPos = tps[tps.length - 1] ?? 0;
  const precision = tps.map((t, i) => (t + (fps[i] as number) === 0 ? 0 : t / (t + (fps[i] as number))));
  // With no positives scikit-learn sets recall to 1 everywhere (and warns); we keep that convention.
  const recall = tps.map((t) => (nPos === 0 ? 1 : t / nPos));
  // Listed by increasing threshold, so recall decreases; the closing point is (recall 0, precision 1).
  return { recall: [...recall.reverse(), 0], precision: [...precision.reverse(), 1], thresholds: thresholds.reverse() };
}

/** Average precision: Σ (R_n − R_{n−1}) P_n (scikit-learn average_precision_score, no interpolation). */
export function averagePrecision(curve: PrCurve): number {
  let ap = 0;
  for (let i = 0; i + 1 < curve.recall.length; i += 1) ap += ((curve.recall[i] as number) - (curve.recall[i + 1] as number)) * (curve.precision[i] as number);
  return ap;
}

/** Classes that occur among the true labels or the predictions, ascending (scikit-learn's default label set). */
export function presentClasses(labels: readonly number[], predictions: readonly number[]): number[] {
  return [...new Set([...labels, ...predictions])].sort((a, b) => a - b);
}

export interface ClassCounts {
  readonly tp: number;
  readonly fp: number;
  readonly fn: number;
}

/** One-vs-rest true positives, false positives and false negatives of class `c`. */
export function classCounts(matrix: readonly (readonly number[])[], c: number): ClassCounts {
  const tp = matrix[c]?.[c] ?? 0;
  const rowSum = (matrix[c] ?? []).reduce((a, b) => a + b, 0);
  const colSum = matrix.reduce((a, row) => a + (row[c] ?? 0), 0);
  return { tp, fp: colSum - tp, fn: rowSum - tp };
}

/**
 * Cohen's kappa κ = 1 − Σ w∘O / Σ w∘E over classes 0..C−1, with E the outer product of the marginals / n and
 * w = 1 − I (none), |i − j| (linear) or (i − j)² (quadratic). Null when Σ w∘E = 0 (no disagreement possible).
 */
export function cohenKappa(labels: readonly number[], predictions: readonly number[], numClasses: number, weights: 'none' | 'linear' | 'quadratic'): number | null {
  const n = labels.length;
  if (n === 0) return null;
  const o = confusionMatrix(labels, predictions, numClasses);
  const rows = o.map((r) => r.reduce((a, b) => a + b, 0));
  const cols = o[0]?.map((_, j) => o.reduce((a, r) => a + (r[j] as number), 0)) ?? [];
  let observed = 0;
  let expected = 0;
  for (let i = 0; i < numClasses; i += 1) {
    for (let j = 0; j < numClasses; j += 1) {
      const w = weights === 'none' ? (i === j ? 0 : 1) : weights === 'linear' ? Math.abs(i - j) : (i - j) ** 2;
      observed += w * (o[i]?.[j] as number);
      expected += (w * (rows[i] as number) * (cols[j] as number)) / n;
    }
  }
  return expected === 0 ? null : 1 - observed / expected;
}
