import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { normalCdf, normalQuantile, studentTCdf, studentTQuantile, studentTTwoSidedP } from '../../../src/core/stats/distributions.js';

interface Fixture {
  t: Array<{ df: number; t: number; cdf: number; twoSided: number }>;
  tQuantile: Array<{ df: number; p: number; q: number }>;
  normal: Array<{ z: number; cdf: number }>;
  normalQuantile: Array<{ p: number; q: number }>;
}
const fixture = JSON.parse(readFileSync(new URL('../../reference/fixtures/distributions.json', import.meta.url), 'utf8')) as Fixture;

/** |a − b| within atol + rtol·|b|, so tiny tail probabilities are compared relatively. */
function close(actual: number, expected: number, rtol: number, atol = 1e-15): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(atol + rtol * Math.abs(expected));
}

describe('stats/distributions (against R pt, qt, pnorm, qnorm)', () => {
  it.each(fixture.t)('Student t CDF and two-sided p at df=$df, t=$t', ({ df, t, cdf, twoSided }) => {
    close(studentTCdf(t, df), cdf, 1e-10);
    close(studentTTwoSidedP(t, df), twoSided, 1e-10);
  });

  it.each(fixture.tQuantile)('Student t quantile at df=$df, p=$p', ({ df, p, q }) => {
    close(studentTQuantile(p, df), q, 1e-9, 1e-12);
  });

  it.each(fixture.normal)('normal CDF at z=$z', ({ z, cdf }) => {
    close(normalCdf(z), cdf, 1e-12, 1e-300);
  });

  it.each(fixture.normalQuantile)('normal quantile at p=$p', ({ p, q }) => {
    close(normalQuantile(p), q, 1e-12, 1e-14);
  });

  it('is symmetric and saturates at the ends', () => {
    expect(studentTCdf(0, 5)).toBe(0.5);
    expect(studentTQuantile(0.5, 3)).toBe(0);
    expect(studentTQuantile(1, 3)).toBe(Infinity);
    expect(studentTTwoSidedP(Infinity, 3)).toBe(0);
    expect(studentTCdf(1.3, 7) + studentTCdf(-1.3, 7)).toBeCloseTo(1, 14);
  });
});
