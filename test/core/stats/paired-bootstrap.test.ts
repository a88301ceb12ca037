import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { caseBootstrap, drawCaseResamples, pairedBootstrap, slidesByCase } from '../../../src/core/stats/paired-bootstrap.js';
import { Registry, type Metric } from '../../../src/registry/index.js';

interface InputCase {
  name: string;
  metric: string;
  numClasses: number;
  seed: string;
  caseIds: string[];
  labels: number[];
  probsA: number[][];
  probsB: number[][];
  resamples: number[][];
}
interface Expected {
  name: string;
  difference: number;
  ciLow: number;
  ciHigh: number;
  p: number;
  undefinedResamples: number;
  /** Model B alone on the same resamples. */
  single: { value: number; ciLow: number; ciHigh: number; undefinedResamples: number };
}
const input = JSON.parse(readFileSync(new URL('../../reference/fixtures/paired-bootstrap-input.json', import.meta.url), 'utf8')) as { confidence: number; cases: InputCase[] };
const expected = JSON.parse(readFileSync(new URL('../../reference/fixtures/paired-bootstrap.json', import.meta.url), 'utf8')) as { results: Expected[] };

const registry = new Registry(builtinManifest());
const metrics = new Map<string, Metric>();
beforeAll(async () => {
  for (const c of input.cases) {
    const resolved = await registry.resolve('metric', { name: c.metric }, { key: 'eval.metrics' });
    metrics.set(`${c.metric}/${c.numClasses}`, registry.create(resolved, { numClasses: c.numClasses }));
  }
});

describe('stats/pairedBootstrap (against test/reference/paired_bootstrap.py)', () => {
  it.each(input.cases.map((c, i) => [c.name, c, expected.results[i] as Expected] as const))('%s: same difference, CI and p as the reference', (_, c, want) => {
    const cases = slidesByCase(c.caseIds).length;
    expect(c.resamples[0]?.length).toBe(cases);
    const metric = metrics.get(`${c.metric}/${c.numClasses}`) as Metric;
    const result = pairedBootstrap({ caseIds: c.caseIds, labels: c.labels, probsA: c.probsA, probsB: c.probsB, numClasses: c.numClasses }, metric, c.resamples, input.confidence);
    expect(result).not.toBeNull();
    expect(result?.difference).toBeCloseTo(want.difference, 12);
    expect(result?.ci[0]).toBeCloseTo(want.ciLow, 12);
    expect(result?.ci[1]).toBeCloseTo(want.ciHigh, 12);
    expect(result?.p).toBeCloseTo(want.p, 12);
    expect(result?.undefinedResamples).toBe(want.undefinedResamples);
  });

  it.each(input.cases.map((c, i) => [c.name, c, expected.results[i] as Expected] as const))('%s: one model alone (caseBootstrap) gives the reference value and CI', (_, c, want) => {
    const metric = metrics.get(`${c.metric}/${c.numClasses}`) as Metric;
    const result = caseBootstrap({ caseIds: c.caseIds, labels: c.labels, probs: c.probsB, numClasses: c.numClasses }, metric, c.resamples, input.confidence);
    expect(result?.value).toBeCloseTo(want.single.value, 12);
    expect(result?.ci[0]).toBeCloseTo(want.single.ciLow, 12);
    expect(result?.ci[1]).toBeCloseTo(want.single.ciHigh, 12);
    expect(result?.undefinedResamples).toBe(want.single.undefinedResamples);
    expect(result?.resamples).toBe(c.resamples.length);
  });

  it('draws the fixture resamples from the seeded Rng', () => {
    // Replays the generator: data draws first, then the resamples from the 'resamples' fork (independent of them).
    const c = input.cases[0] as InputCase;
    const replay = drawCaseResamples(slidesByCase(c.caseIds).length, c.resamples.length, new Rng(c.seed).fork('resamples'));
    expect(replay).toEqual(c.resamples);
  });

  it('resamples whole patients: the slides of a case always appear together', () => {
    const caseIds = ['p1', 'p1', 'p2', 'p3', 'p3', 'p3'];
    expect(slidesByCase(caseIds)).toEqual([[0, 1], [2], [3, 4, 5]]);
    const seen: number[][] = [];
    const counting: Metric = { compute: (m) => (seen.push(m.labels.map((l) => l)), { value: m.labels.length }) };
    pairedBootstrap({ caseIds, labels: [0, 1, 2, 3, 4, 5], probsA: caseIds.map(() => [1]), probsB: caseIds.map(() => [1]), numClasses: 1 }, counting, [[0, 2, 2]]);
    // Resample [case 0, case 2, case 2] → slides 0, 1, 3, 4, 5, 3, 4, 5 (labels are the slide indices here).
    expect(seen.at(-1)).toEqual([0, 1, 3, 4, 5, 3, 4, 5]);
  });

  it('gives p = 1 and a zero-width CI when both models are identical', () => {
    const c = input.cases[0] as InputCase;
    const metric = metrics.get('auc/2') as Metric;
    const result = pairedBootstrap({ caseIds: c.caseIds, labels: c.labels, probsA: c.probsA, probsB: c.probsA, numClasses: 2 }, metric, c.resamples.slice(0, 50));
    expect(result).toMatchObject({ difference: 0, ci: [0, 0], p: 1 });
  });
});
