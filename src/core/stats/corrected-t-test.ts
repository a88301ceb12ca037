// The corrected resampled t-test of Nadeau & Bengio (2003, Machine Learning 52:239–281): paired per-fold
// differences of a metric over J = folds × repeats resamples, with the variance inflated by n_test/n_train
// because the resamples share training data (the plain paired t-test then rejects far too often).
import { studentTQuantile, studentTTwoSidedP } from './distributions.js';

export interface CorrectedTTestInput {
  /** Paired per-resample differences d_j = metric(row) − metric(baseline), j = 1..J. */
  readonly differences: readonly number[];
  /** n_test / n_train of the resamples (the mean over resamples when their sizes differ). */
  readonly testTrainRatio: number;
  /** Confidence level of the interval (default 0.95). */
  readonly confidence?: number;
}

export interface CorrectedTTest {
  /** J, the number of paired resamples. */
  readonly resamples: number;
  /** Mean difference d̄ (the effect). */
  readonly effect: number;
  /** Sample variance of the differences (n − 1 denominator); null with J < 2. */
  readonly variance: number | null;
  /** Corrected standard error √((1/J + n_test/n_train) · s²); null with J < 2. */
  readonly standardError: number | null;
  readonly t: number | null;
  /** J − 1. */
  readonly df: number;
  /** Two-sided p-value; null with J < 2 (no variance to test against). */
  readonly p: number | null;
  /** d̄ ± t_{J−1, (1+confidence)/2} · standardError; null with J < 2. */
  readonly ci: readonly [number, number] | null;
}

/** The corrected resampled t-test of the mean difference against 0. */
export function correctedResampledTTest(input: CorrectedTTestInput): CorrectedTTest {
  const d = input.differences;
  const J = d.length;
  const confidence = input.confidence ?? 0.95;
  if (J === 0) return { resamples: 0, effect: Number.NaN, variance: null, standardError: null, t: null, df: 0, p: null, ci: null };
  const effect = d.reduce((a, b) => a + b, 0) / J;
  if (J < 2) return { resamples: J, effect, variance: null, standardError: null, t: null, df: 0, p: null, ci: null };
  const variance = d.reduce((a, v) => a + (v - effect) ** 2, 0) / (J - 1);
  const standardError = Math.sqrt((1 / J + input.testTrainRatio) * variance);
  const df = J - 1;
  // Identical differences: no spread, so any non-zero mean is as certain as the data can make it.
  const t = standardError === 0 ? (effect === 0 ? 0 : Math.sign(effect) * Infinity) : effect / standardError;
  const p = studentTTwoSidedP(t, df);
  const half = studentTQuantile((1 + confidence) / 2, df) * standardError;
  return { resamples: J, effect, variance, standardError, t, df, p, ci: [effect - half, effect + half] };
}
