// A table cell's interval: the metric on the pooled out-of-fold predictions of each repeat, bootstrapped over
// patients, median over repeats; failed folds are counted, not hidden.
import { beforeAll, describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { cellInterval, pooledPredictionUnits } from '../../../src/core/stats/cell-interval.js';
import type { FoldPredictionSet, FoldRecord } from '../../../src/core/stats/compare.js';
import { caseBootstrap, drawCaseResamples, slidesByCase } from '../../../src/core/stats/paired-bootstrap.js';
import { Registry, type Metric } from '../../../src/registry/index.js';

let auc: Metric;
beforeAll(async () => {
  const registry = new Registry(builtinManifest());
  auc = registry.create(await registry.resolve('metric', { name: 'auc' }, { key: 'eval.metrics' }), { numClasses: 2 });
});

/** Fold `k` of a repeat: slides s ∈ ids, label s % 2, p(1) rising with the label plus seeded noise. */
function fold(index: number, repeat: number, ids: readonly number[], seed: string): FoldRecord {
  const rng = new Rng(seed);
  const predictions: FoldPredictionSet = {
    slideIds: ids.map((s) => `s${s}`),
    caseIds: ids.map((s) => `c${Math.floor(s / 2)}`),
    labels: ids.map((s) => s % 2),
    probs: ids.map((s) => {
      const p = Math.min(1, Math.max(0, 0.35 + 0.3 * (s % 2) + 0.25 * rng.normal()));
      return [1 - p, p];
    }),
    numClasses: 2,
  };
  return { index, repeat, metrics: {}, predictions };
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

describe('stats/cellInterval', () => {
  it('pools the folds of a repeat and bootstraps patients with the unit\'s fork of the stream', () => {
    const folds = [fold(0, 0, range(0, 10), 'a'), fold(1, 0, range(10, 20), 'b')];
    const got = cellInterval(folds, auc, { resamples: 300, rng: new Rng('cell') });
    const [unit] = pooledPredictionUnits(folds);
    expect(unit?.slideIds).toHaveLength(20);
    const draws = drawCaseResamples(slidesByCase(unit?.caseIds ?? []).length, 300, new Rng('cell').fork('unit-0'));
    const want = caseBootstrap(unit as FoldPredictionSet, auc, draws);
    expect(got?.value).toBe(want?.value);
    expect(got?.ci).toEqual(want?.ci);
    expect(got).toMatchObject({ units: 1, plannedFolds: 2, pooledFolds: 2, resamples: 300 });
    expect((got?.ci[0] as number) < (got?.value as number) && (got?.value as number) < (got?.ci[1] as number)).toBe(true);
  });

  it('reports the median over repeats of the value and of each bound', () => {
    const repeat0 = [fold(0, 0, range(0, 10), 'a'), fold(1, 0, range(10, 20), 'b')];
    const repeat1 = [fold(2, 1, range(0, 10), 'c'), fold(3, 1, range(10, 20), 'd')];
    const both = cellInterval([...repeat0, ...repeat1], auc, { resamples: 200, rng: new Rng('cell') });
    const units = pooledPredictionUnits([...repeat0, ...repeat1]);
    const per = units.map((unit, u) => caseBootstrap(unit, auc, drawCaseResamples(slidesByCase(unit.caseIds).length, 200, new Rng('cell').fork(`unit-${u}`))));
    expect(both?.units).toBe(2);
    expect(both?.value).toBeCloseTo(((per[0]?.value as number) + (per[1]?.value as number)) / 2, 12);
    expect(both?.ci[0]).toBeCloseTo(((per[0]?.ci[0] as number) + (per[1]?.ci[0] as number)) / 2, 12);
    expect(both?.ci[1]).toBeCloseTo(((per[0]?.ci[1] as number) + (per[1]?.ci[1] as number)) / 2, 12);
  });

  it('counts a failed fold instead of hiding it, and keeps folds apart when they share test slides', () => {
    const withFailure = cellInterval([fold(0, 0, range(0, 10), 'a'), null, fold(2, 0, range(20, 30), 'c')], auc, { resamples: 100, rng: new Rng('cell') });
    expect(withFailure).toMatchObject({ plannedFolds: 3, pooledFolds: 2, units: 1 });
    const overlapping = pooledPredictionUnits([fold(0, 0, range(0, 10), 'a'), fold(1, 0, range(5, 15), 'b')]);
    expect(overlapping.map((u) => u.slideIds.length)).toEqual([10, 10]);
  });

  it('is null without predictions', () => {
    expect(cellInterval([{ index: 0, repeat: 0, metrics: { auc: 0.8 } }], auc, { resamples: 100, rng: new Rng('cell') })).toBeNull();
  });
});
