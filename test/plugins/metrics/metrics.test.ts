import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { Registry, type Metric } from '../../../src/registry/index.js';

interface Case {
  name: string;
  numClasses: number;
  labels: number[];
  probs: number[][];
  expected: Record<string, unknown>;
}
const fixture = JSON.parse(readFileSync(new URL('../../reference/fixtures/metrics.json', import.meta.url), 'utf8')) as { sklearn: string; cases: Case[] };
const METRICS = ['auc', 'accuracy', 'balanced-accuracy', 'precision', 'recall', 'f1', 'kappa', 'kappa-quadratic'] as const;

const registry = new Registry(builtinManifest());
const metrics = new Map<string, Metric>();

async function build(name: string, options: Record<string, unknown> = {}, numClasses = 2): Promise<Metric> {
  const resolved = await registry.resolve('metric', { name, ...options }, { key: 'eval.metrics' });
  return registry.create(resolved, { numClasses });
}

beforeAll(async () => {
  for (const name of METRICS) metrics.set(name, await build(name));
});

describe(`metric plugins vs scikit-learn ${fixture.sklearn}`, () => {
  it('covers at least 20 cases, with ties, single-class folds and multi-class', () => {
    expect(fixture.cases.length).toBeGreaterThanOrEqual(20);
    expect(fixture.cases.some((c) => c.numClasses > 2)).toBe(true);
    expect(fixture.cases.some((c) => new Set(c.labels).size === 1)).toBe(true);
    expect(fixture.cases.some((c) => new Set(c.probs.map((p) => p[1])).size < c.probs.length)).toBe(true);
  });

  describe.each(METRICS)('%s', (name) => {
    it.each(fixture.cases.map((c) => [c.name, c] as const))('matches on %s', (_, c) => {
      const value = (metrics.get(name) as Metric).compute({ labels: c.labels, probs: c.probs, numClasses: c.numClasses });
      const expected = c.expected[name] as number | null;
      if (expected === null) {
        expect(value.value).toBeNull();
        if (value.value === null) expect(value.reason.length).toBeGreaterThan(0);
      } else {
        expect(value.value).not.toBeNull();
        expect(value.value as number).toBeCloseTo(expected, 12);
      }
    });
  });

  it('auc with onAbsentClass: skip averages the classes present (CLAM)', async () => {
    const skip = await build('auc', { onAbsentClass: 'skip' });
    const multi = fixture.cases.filter((c) => c.numClasses > 2);
    for (const c of multi) {
      const value = skip.compute({ labels: c.labels, probs: c.probs, numClasses: c.numClasses }).value;
      expect(value).toBeCloseTo(c.expected['auc-skip-absent'] as number, 12);
    }
    expect(multi.some((c) => c.expected['auc'] === null && c.expected['auc-skip-absent'] !== null)).toBe(true);
  });

  it('reports a single-class fold as undefined with a reason, not 0.5', () => {
    const value = (metrics.get('auc') as Metric).compute({ labels: [1, 1, 1], probs: [[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]], numClasses: 2 });
    expect(value).toEqual({ value: null, reason: 'AUC undefined: only class 1 present in the labels' });
  });
});
