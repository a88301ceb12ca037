import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { averagePrecision, binaryAuc, confusionMatrix, argmaxRows, midranks, prCurve, rocCurve } from '../../../src/core/eval/classification.js';

interface Case {
  name: string;
  numClasses: number;
  labels: number[];
  probs: number[][];
  expected: {
    confusion: number[][];
    roc?: { fpr: number[]; tpr: number[]; thresholds: Array<number | null> };
    pr?: { precision: number[]; recall: number[]; thresholds: number[] };
    averagePrecision?: number;
  };
}
const fixture = JSON.parse(readFileSync(new URL('../../reference/fixtures/metrics.json', import.meta.url), 'utf8')) as { cases: Case[] };

function expectAllClose(actual: readonly number[], expected: readonly number[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => expect(a).toBeCloseTo(expected[i] as number, 12));
}

describe('core/eval/classification', () => {
  const binary = fixture.cases.filter((c) => c.expected.roc !== undefined);

  it('has binary curve cases to compare', () => {
    expect(binary.length).toBeGreaterThanOrEqual(10);
  });

  it.each(binary.map((c) => [c.name, c] as const))('roc and pr curves match scikit-learn on %s', (_, c) => {
    const isPositive = c.labels.map((y) => y === 1);
    const scores = c.probs.map((p) => p[1] as number);
    const roc = rocCurve(isPositive, scores);
    expectAllClose(roc.fpr, c.expected.roc?.fpr ?? []);
    expectAllClose(roc.tpr, c.expected.roc?.tpr ?? []);
    expect(roc.thresholds.map((t) => (Number.isFinite(t) ? t : null)).slice(1)).toEqual((c.expected.roc?.thresholds ?? []).slice(1));
    const pr = prCurve(isPositive, scores);
    expectAllClose(pr.precision, c.expected.pr?.precision ?? []);
    expectAllClose(pr.recall, c.expected.pr?.recall ?? []);
    expectAllClose(pr.thresholds, c.expected.pr?.thresholds ?? []);
    expect(averagePrecision(pr)).toBeCloseTo(c.expected.averagePrecision as number, 12);
  });

  it.each(fixture.cases.map((c) => [c.name, c] as const))('confusion matrix matches scikit-learn on %s', (_, c) => {
    expect(confusionMatrix(c.labels, argmaxRows(c.probs), c.numClasses)).toEqual(c.expected.confusion);
  });

  it('gives tied values their average rank', () => {
    expect(Array.from(midranks([3, 1, 3, 2, 3]))).toEqual([4, 1, 4, 2, 4]);
  });

  it('computes AUC by hand on a tiny tied example', () => {
    // Pairs (pos, neg): (0.8, 0.2)=1, (0.8, 0.5)=1, (0.5, 0.2)=1, (0.5, 0.5)=0.5 → 3.5 / 4.
    expect(binaryAuc([true, true, false, false], [0.8, 0.5, 0.2, 0.5])).toBe(0.875);
    expect(binaryAuc([true, true], [0.1, 0.2])).toBeNull();
  });

  it('breaks argmax ties towards the lower class index', () => {
    expect(argmaxRows([[0.5, 0.5], [0.2, 0.4, 0.4]])).toEqual([0, 1]);
  });
});
