// DeLong's test for two correlated ROC AUCs measured on the same slides (DeLong, DeLong & Clarke-Pearson,
// Biometrics 1988), computed with the O(n log n) midrank algorithm of Sun & Xu (IEEE SPL 2014): structural
// components from three midrank vectors per classifier, ties counting one half as in the Mann-Whitney kernel.
// Checked against pROC's roc.test(method = "delong", paired = TRUE): test/reference/delong.R.
import { DataError } from '../errors.js';
import { midranks } from '../eval/classification.js';
import { normalQuantile, normalTwoSidedP } from './distributions.js';

export interface DelongTest {
  readonly aucA: number;
  readonly aucB: number;
  /** AUC_B − AUC_A (row minus baseline when A is the baseline). */
  readonly difference: number;
  /** √Var(AUC_B − AUC_A) from the structural components. */
  readonly standardError: number;
  /** difference / standardError; NaN when the variance is 0 (identical rankings). */
  readonly z: number;
  /** Two-sided normal p-value; 1 when both classifiers rank every pair the same way. */
  readonly p: number;
  readonly ci: readonly [number, number];
  readonly positives: number;
  readonly negatives: number;
}

interface Components {
  readonly auc: number;
  /** V10: per positive, the fraction of negatives it outranks (ties ½). */
  readonly v10: Float64Array;
  /** V01: per negative, the fraction of positives that outrank it (ties ½). */
  readonly v01: Float64Array;
}

function components(isPositive: readonly boolean[], scores: readonly number[]): Components {
  const positives = scores.filter((_, i) => isPositive[i]);
  const negatives = scores.filter((_, i) => !isPositive[i]);
  const m = positives.length;
  const n = negatives.length;
  const all = midranks([...positives, ...negatives]);
  const withinPositives = midranks(positives);
  const withinNegatives = midranks(negatives);
  const v10 = new Float64Array(m);
  const v01 = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < m; i += 1) {
    // Rank among all minus rank among positives = negatives below (ties count ½).
    v10[i] = ((all[i] as number) - (withinPositives[i] as number)) / n;
    sum += v10[i] as number;
  }
  for (let j = 0; j < n; j += 1) v01[j] = 1 - ((all[m + j] as number) - (withinNegatives[j] as number)) / m;
  return { auc: sum / m, v10, v01 };
}

/** Sample covariance (n − 1 denominator) of two equally long vectors. */
function covariance(x: Float64Array, y: Float64Array): number {
  const k = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < k; i += 1) {
    mx += x[i] as number;
    my += y[i] as number;
  }
  mx /= k;
  my /= k;
  let s = 0;
  for (let i = 0; i < k; i += 1) s += ((x[i] as number) - mx) * ((y[i] as number) - my);
  return s / (k - 1);
}

/**
 * Paired DeLong test of AUC_B − AUC_A for binary labels and two score vectors over the same slides.
 * Needs at least two positives and two negatives (the component variances have n − 1 denominators).
 */
export function delongPairedTest(isPositive: readonly boolean[], scoresA: readonly number[], scoresB: readonly number[], confidence = 0.95): DelongTest {
  if (scoresA.length !== isPositive.length || scoresB.length !== isPositive.length) {
    throw new DataError('delong-length', `DeLong's test needs one score per slide from each model (labels ${isPositive.length}, A ${scoresA.length}, B ${scoresB.length}).`, {
      hint: 'Compare predictions on the same slides only.',
    });
  }
  const m = isPositive.filter(Boolean).length;
  const n = isPositive.length - m;
  if (m < 2 || n < 2) {
    throw new DataError('delong-too-few', `DeLong's test needs at least 2 positive and 2 negative slides (got ${m} and ${n}).`, { hint: 'Pool the predictions of more folds.' });
  }
  const a = components(isPositive, scoresA);
  const b = components(isPositive, scoresB);
  const variance = (covariance(a.v10, a.v10) + covariance(b.v10, b.v10) - 2 * covariance(a.v10, b.v10)) / m
    + (covariance(a.v01, a.v01) + covariance(b.v01, b.v01) - 2 * covariance(a.v01, b.v01)) / n;
  const difference = b.auc - a.auc;
  // Rounding can leave a tiny negative variance when the two rankings agree on every pair.
  const standardError = Math.sqrt(Math.max(0, variance));
  const z = standardError > 0 ? difference / standardError : Number.NaN;
  const p = standardError > 0 ? normalTwoSidedP(z) : difference === 0 ? 1 : 0;
  const half = normalQuantile((1 + confidence) / 2) * standardError;
  return { aucA: a.auc, aucB: b.auc, difference, standardError, z, p, ci: [difference - half, difference + half], positives: m, negatives: n };
}
