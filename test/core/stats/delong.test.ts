import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { binaryAuc } from '../../../src/core/eval/classification.js';
import { delongPairedTest } from '../../../src/core/stats/delong.js';

interface DelongCase {
  name: string;
  labels: number[];
  scoresA: number[];
  scoresB: number[];
  aucA: number;
  aucB: number;
  z: number;
  p: number;
  ciLow: number;
  ciHigh: number;
}
const fixture = JSON.parse(readFileSync(new URL('../../reference/fixtures/delong.json', import.meta.url), 'utf8')) as { cases: DelongCase[] };

describe('stats/delongPairedTest', () => {
  it.each(fixture.cases)('equals pROC roc.test(method = "delong", paired = TRUE) on $name', (c) => {
    const isPositive = c.labels.map((y) => y === 1);
    // pROC tests roc1 − roc2; ours is B − A, so pass pROC's roc2 as A and roc1 as B to keep the sign.
    const result = delongPairedTest(isPositive, c.scoresB, c.scoresA);
    expect(Math.abs(result.aucB - c.aucA)).toBeLessThan(1e-12);
    expect(Math.abs(result.aucA - c.aucB)).toBeLessThan(1e-12);
    expect(Math.abs(result.z - c.z)).toBeLessThan(1e-6);
    expect(Math.abs(result.p - c.p)).toBeLessThan(1e-6);
    expect(Math.abs(result.ci[0] - c.ciLow)).toBeLessThan(1e-6);
    expect(Math.abs(result.ci[1] - c.ciHigh)).toBeLessThan(1e-6);
  });

  it('has tied scores in every fixture case (the midrank path is exercised)', () => {
    for (const c of fixture.cases.slice(0, 2)) expect(new Set(c.scoresA).size).toBeLessThan(c.scoresA.length);
  });

  it('agrees with the Mann-Whitney AUC', () => {
    const c = fixture.cases[0] as DelongCase;
    const isPositive = c.labels.map((y) => y === 1);
    expect(delongPairedTest(isPositive, c.scoresA, c.scoresB).aucA).toBeCloseTo(binaryAuc(isPositive, c.scoresA) as number, 14);
  });

  it('gives p = 1 and no z when both models rank every slide alike', () => {
    const labels = [false, false, true, true, false, true];
    const scores = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9];
    const result = delongPairedTest(labels, scores, scores.map((s) => s * 2));
    expect(result.difference).toBe(0);
    expect(result.p).toBe(1);
    expect(Number.isNaN(result.z)).toBe(true);
  });

  it('rejects a class with fewer than two slides, naming the counts', () => {
    expect(() => delongPairedTest([true, false, false], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])).toThrowErrorMatchingInlineSnapshot(`[DataError: DeLong's test needs at least 2 positive and 2 negative slides (got 1 and 2).]`);
  });
});
