import { describe, expect, it } from 'vitest';
import { correctedResampledTTest } from '../../../src/core/stats/corrected-t-test.js';
import { holmAdjust, significanceMark } from '../../../src/core/stats/multiple-testing.js';

describe('stats/correctedResampledTTest', () => {
  // 3 folds × 2 repeats of 48 slides, no validation part: n_test = 16, n_train = 32, so n_test/n_train = 1/2.
  // Differences (row − baseline) in units of 0.01: 2, −1, 3, 0, 1, 5.
  //   J = 6, Σd = 10 → d̄ = 5/3
  //   Σd² = 4 + 1 + 9 + 0 + 1 + 25 = 40 → SS = 40 − 6·(5/3)² = 70/3 → s² = SS/5 = 14/3
  //   corrected variance = (1/J + n_test/n_train)·s² = (1/6 + 1/2)·14/3 = 28/9 → SE = √28/3
  //   t = d̄/SE = 5/√28 = 0.944911182523068, df = 5
  //   p = 2·P(T₅ ≤ −0.9449…) = 0.388091719448002 (R: 2*pt(-5/sqrt(28), 5))
  //   CI half-width = t₅,₀.₉₇₅·SE = 2.57058183563631·√28/3 (·0.01) = 0.0453408017455573
  const differences = [0.02, -0.01, 0.03, 0.0, 0.01, 0.05];

  it('matches the hand-computed statistic on a fixed fold table', () => {
    const result = correctedResampledTTest({ differences, testTrainRatio: 16 / 32 });
    expect(result.resamples).toBe(6);
    expect(result.df).toBe(5);
    expect(result.effect).toBeCloseTo(0.05 / 3, 14);
    expect(result.variance).toBeCloseTo((14 / 3) * 1e-4, 14);
    expect(result.standardError).toBeCloseTo(Math.sqrt(28) / 300, 14);
    expect(result.t).toBeCloseTo(0.944911182523068, 12);
    expect(result.p).toBeCloseTo(0.388091719448002, 10);
    expect(result.ci?.[0]).toBeCloseTo(0.05 / 3 - 0.0453408017455573, 10);
    expect(result.ci?.[1]).toBeCloseTo(0.05 / 3 + 0.0453408017455573, 10);
  });

  it('is more conservative than the uncorrected paired t-test', () => {
    // Uncorrected: SE = √(s²/J) = √(14/18)·0.01, t = 1.889822…, p = 0.117386795146293 (R).
    const uncorrected = correctedResampledTTest({ differences, testTrainRatio: 0 });
    expect(uncorrected.p).toBeCloseTo(0.117386795146293, 10);
    expect(correctedResampledTTest({ differences, testTrainRatio: 0.5 }).p as number).toBeGreaterThan(uncorrected.p as number);
  });

  it('reports no p-value with a single resample, and p = 0 for identical non-zero differences', () => {
    const single = correctedResampledTTest({ differences: [0.1], testTrainRatio: 0.5 });
    expect(single).toMatchObject({ resamples: 1, effect: 0.1, p: null, ci: null });
    expect(correctedResampledTTest({ differences: [0.25, 0.25, 0.25], testTrainRatio: 0.5 }).p).toBe(0);
    expect(correctedResampledTTest({ differences: [0, 0, 0], testTrainRatio: 0.5 }).p).toBe(1);
  });
});

describe('stats/holmAdjust', () => {
  it('multiplies the k-th smallest p by (m − k + 1) and keeps the adjusted values monotone', () => {
    // m = 4: sorted 0.01, 0.02, 0.03, 0.5 → 0.04, max(0.04, 0.06) = 0.06, max(0.06, 0.06) = 0.06, min(1, 0.5) = 0.5
    expect(holmAdjust([0.03, 0.5, 0.01, 0.02]).map((p) => Number(p?.toFixed(12)))).toEqual([0.06, 0.5, 0.04, 0.06]);
  });

  it('leaves untested rows null and does not count them', () => {
    expect(holmAdjust([null, 0.02, 0.04])).toEqual([null, 0.04, 0.04]);
  });

  it('caps adjusted values at 1', () => {
    expect(holmAdjust([0.6, 0.7])).toEqual([1, 1]);
  });
});

describe('stats/significanceMark', () => {
  it.each([
    [0.02, 0.01, '▲'],
    [-0.02, 0.01, '▼'],
    [0.02, 0.2, '≈'],
    [0.02, 0.05, '≈'],
    [0.02, null, null],
  ] as const)('effect %s with adjusted p %s gives %s', (effect, p, mark) => {
    expect(significanceMark(effect, p)).toBe(mark);
  });

  it('takes α from the caller', () => {
    expect(significanceMark(0.02, 0.08, 0.1)).toBe('▲');
  });
});
