import { describe, expect, it } from 'vitest';
import { Rng } from '../../../src/core/runtime/random.js';
import { compareWithBaseline, type FoldRecord, type RowRecord } from '../../../src/core/stats/compare.js';
import { correctedResampledTTest } from '../../../src/core/stats/corrected-t-test.js';
import { delongPairedTest } from '../../../src/core/stats/delong.js';
import { holmAdjust } from '../../../src/core/stats/multiple-testing.js';
import { binaryAuc } from '../../../src/core/eval/classification.js';
import type { Metric } from '../../../src/registry/index.js';

const auc: Metric = {
  compute: (input) => {
    const value = binaryAuc(input.labels.map((y) => y === 1), input.probs.map((p) => p[1] as number));
    return value === null ? { value, reason: 'one class' } : { value };
  },
};

/** 3 k-fold test sets of 8 slides (24 slides, 12 cases of 2 slides), scores = label signal · strength + noise. */
function row(label: string, strength: number, seed: string, overrides: Partial<Record<number, FoldRecord | null>> = {}): RowRecord {
  const rng = new Rng(seed);
  const folds = [0, 1, 2].map((f): FoldRecord | null => {
    if (f in overrides) return overrides[f] ?? null;
    const slideIds = Array.from({ length: 8 }, (_, i) => `s${f * 8 + i}`);
    const labels = slideIds.map((_, i) => i % 2);
    const probs = labels.map((y) => {
      const p1 = Math.min(0.99, Math.max(0.01, 0.5 + strength * (y - 0.5) + 0.3 * rng.normal()));
      return [1 - p1, p1];
    });
    const value = binaryAuc(labels.map((y) => y === 1), probs.map((p) => p[1] as number));
    return {
      index: f, repeat: 0, metrics: { auc: value }, nTrain: 16, nTest: 8,
      predictions: { slideIds, caseIds: slideIds.map((_, i) => `c${f * 4 + Math.floor(i / 2)}`), labels, probs, numClasses: 2 },
    };
  });
  return { label, folds };
}

describe('stats/compareWithBaseline', () => {
  const baseline = row('base', 0.2, 'a');
  const better = row('better', 0.9, 'b');
  const same = row('same', 0.2, 'c');

  it('tests each row against the first row with the corrected t-test on paired folds, Holm across rows', () => {
    const result = compareWithBaseline([baseline, better, same], { metrics: ['auc'], rng: new Rng(1), metricFor: () => auc, bootstrapResamples: 200 });
    expect(result.rows.map((r) => [r.label, r.baseline, r.isBaseline])).toEqual([['base', 'base', true], ['better', 'base', false], ['same', 'base', false]]);
    const diffs = [0, 1, 2].map((f) => (better.folds[f]?.metrics.auc as number) - (baseline.folds[f]?.metrics.auc as number));
    const expected = correctedResampledTTest({ differences: diffs, testTrainRatio: 0.5 });
    const betterAuc = result.rows[1]?.metrics[0];
    expect(betterAuc?.pairedFolds).toBe(3);
    expect(betterAuc?.tTest?.effect).toBeCloseTo(expected.effect, 14);
    expect(betterAuc?.tTest?.p).toBeCloseTo(expected.p as number, 14);
    const raw = result.rows.slice(1).map((r) => r.metrics[0]?.tTest?.p ?? null);
    expect(result.rows.slice(1).map((r) => r.metrics[0]?.adjustedP)).toEqual(holmAdjust(raw));
    // 3 folds leave the t-test 2 df: even this +0.28 AUC is not significant (adjusted p 0.74), while DeLong on the
    // pooled predictions ignores the training-set variance and calls it (p 0.009).
    expect(betterAuc?.adjustedP).toBeCloseTo(0.735609154364711, 10);
    expect(betterAuc?.mark).toBe('≈');
    expect(betterAuc?.delong?.p).toBeLessThan(0.01);
  });

  it('marks a consistent difference over many folds ▲ or ▼ by its sign', () => {
    const folds = (shift: number): FoldRecord[] => Array.from({ length: 10 }, (_, f) => ({ index: f, repeat: Math.floor(f / 5), metrics: { auc: 0.7 + shift + 0.01 * (f % 3) }, nTrain: 40, nTest: 10 }));
    const rows: RowRecord[] = [{ label: 'base', folds: folds(0) }, { label: 'up', folds: folds(0.05).map((f, i) => ({ ...f, metrics: { auc: (f.metrics.auc as number) + 0.002 * i } })) }, { label: 'down', folds: folds(-0.05) }];
    const result = compareWithBaseline(rows, { metrics: ['auc'], rng: new Rng(1) });
    expect(result.rows.map((r) => r.metrics[0]?.mark ?? 'baseline')).toEqual(['baseline', '▲', '▼']);
    expect(result.rows[1]?.flags).toEqual(['10 fold(s) have no predictions, so their test slides could not be checked against the baseline']);
  });

  it('runs DeLong on the pooled out-of-fold predictions of a repeat', () => {
    const result = compareWithBaseline([baseline, better], { metrics: ['auc'], rng: new Rng(1), bootstrapResamples: 0 });
    const pooled = (r: RowRecord) => r.folds.flatMap((f) => f?.predictions?.probs.map((p) => p[1] as number) ?? []);
    const labels = baseline.folds.flatMap((f) => f?.predictions?.labels.map((y) => y === 1) ?? []);
    const direct = delongPairedTest(labels, pooled(baseline), pooled(better));
    const delong = result.rows[1]?.metrics[0]?.delong;
    expect(delong?.units).toBe(1);
    expect(delong?.z).toBeCloseTo(direct.z, 12);
    expect(delong?.p).toBeCloseTo(direct.p, 12);
    expect(result.rows[1]?.metrics[0]?.bootstrap).toBeNull();
  });

  it('gives a bootstrap CI that contains the observed difference and is reproducible from the seed', () => {
    const run = () => compareWithBaseline([baseline, better], { metrics: ['auc'], rng: new Rng(7), metricFor: () => auc, bootstrapResamples: 300 }).rows[1]?.metrics[0]?.bootstrap;
    const first = run();
    expect(first?.units).toBe(1);
    expect(first?.ci[0]).toBeLessThanOrEqual(first?.difference as number);
    expect(first?.ci[1]).toBeGreaterThanOrEqual(first?.difference as number);
    expect(run()).toEqual(first);
  });

  it('flags failed folds and folds on different slides instead of pairing them', () => {
    const moved = better.folds[2] as FoldRecord;
    const other = { ...moved, predictions: { ...(moved.predictions as NonNullable<FoldRecord['predictions']>), slideIds: moved.predictions?.slideIds.map((id) => `${id}x`) ?? [] } };
    const broken = row('broken', 0.9, 'b', { 1: null, 2: other });
    const result = compareWithBaseline([baseline, broken], { metrics: ['auc'], rng: new Rng(1), bootstrapResamples: 0 });
    const compared = result.rows[1];
    expect(compared?.metrics[0]?.pairedFolds).toBe(1);
    expect(compared?.metrics[0]?.tTest?.p).toBeNull();
    expect(compared?.flags).toEqual([
      'fold(s) 1 failed or are missing in this row or the baseline and are left out of the tests',
      'fold(s) 2 were evaluated on different slides than the baseline and are not paired',
    ]);
  });

  it('warns when a fold validated on its test set', () => {
    const leaky = row('leaky', 0.2, 'd', { 0: { ...(baseline.folds[0] as FoldRecord), valIsTest: true } });
    expect(compareWithBaseline([baseline, leaky], { metrics: ['auc'], rng: new Rng(1), bootstrapResamples: 0 }).warnings).toEqual([
      'leaky: in 1 fold(s) the validation set is the test set, so model selection saw the test slides and every number of that row is optimistic',
    ]);
  });

  it('compares within groups and takes a named baseline', () => {
    const rows = [{ ...baseline, group: 'd1' }, { ...better, group: 'd1' }, { ...baseline, group: 'd2' }, { ...better, group: 'd2' }];
    const result = compareWithBaseline(rows, { metrics: ['auc'], baseline: 'better', rng: new Rng(1), bootstrapResamples: 0 });
    expect(result.rows.map((r) => `${r.group}:${r.label}${r.isBaseline ? '*' : ''}`)).toEqual(['d1:base', 'd1:better*', 'd2:base', 'd2:better*']);
    expect(result.rows[0]?.metrics[0]?.tTest?.effect).toBeLessThan(0);
  });

  it('rejects an unknown baseline row with the row names', () => {
    expect(() => compareWithBaseline([baseline, better], { metrics: ['auc'], baseline: 'bettter', rng: new Rng(1) })).toThrowErrorMatchingInlineSnapshot(`[ConfigError: baseline row "bettter" is not a row of the table. Did you mean "better"?]`);
  });
});
