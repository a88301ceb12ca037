import { describe, expect, it } from 'vitest';
import { bootstrapCI, computeMetrics, quantileSorted, summarizeFolds } from '../../../src/core/eval/metrics.js';
import { Rng } from '../../../src/core/runtime/random.js';
import type { Metric, MetricInput } from '../../../src/registry/index.js';
import { binaryAuc } from '../../../src/core/eval/classification.js';

const meanLabel: Metric = { compute: (input) => (input.labels.length === 0 ? { value: null, reason: 'empty' } : { value: input.labels.reduce((a, b) => a + b, 0) / input.labels.length }) };
const auc: Metric = {
  compute: (input) => {
    const v = binaryAuc(input.labels.map((y) => y === 1), input.probs.map((p) => p[1] as number));
    return v === null ? { value: null, reason: 'single class' } : { value: v };
  },
};

describe('core/eval/metrics', () => {
  it('summarizes folds with the sample std (ddof = 1), skipping undefined folds', () => {
    const summary = summarizeFolds([
      { auc: { value: 0.9 }, acc: { value: 0.8 } },
      { auc: { value: 0.7 }, acc: { value: 0.6 } },
      { auc: { value: null, reason: 'single class' }, acc: { value: 1 } },
      { auc: { value: 0.8 }, acc: { value: 0.7 } },
    ]);
    // numpy: np.std([0.9, 0.7, 0.8], ddof=1) = 0.1; np.std([0.8, 0.6, 1, 0.7], ddof=1) = 0.17078251276599332
    expect(summary['auc']?.n).toBe(3);
    expect(summary['auc']?.mean).toBeCloseTo(0.8, 12);
    expect(summary['auc']?.std).toBeCloseTo(0.1, 12);
    expect(summary['acc']?.mean).toBeCloseTo(0.775, 12);
    expect(summary['acc']?.std).toBeCloseTo(0.17078251276599332, 12);
  });

  it('gives a null std for one fold and null mean for none', () => {
    const summary = summarizeFolds([{ auc: { value: 0.9 }, x: { value: null, reason: 'r' } }]);
    expect(summary['auc']).toEqual({ mean: 0.9, std: null, n: 1 });
    expect(summary['x']).toEqual({ mean: null, std: null, n: 0 });
  });

  it('runs every metric by name and rejects malformed inputs', () => {
    const input: MetricInput = { labels: [0, 1], probs: [[0.6, 0.4], [0.3, 0.7]], numClasses: 2 };
    expect(computeMetrics([{ name: 'auc', metric: auc }, { name: 'mean', metric: meanLabel }], input)).toEqual({ auc: { value: 1 }, mean: { value: 0.5 } });
    expect(() => computeMetrics([{ name: 'auc', metric: auc }], { ...input, probs: [[0.6, 0.4]] })).toThrowErrorMatchingInlineSnapshot(`[NumericsError: metric input has 2 labels but 1 probability rows.]`);
    expect(() => computeMetrics([{ name: 'auc', metric: auc }], { ...input, probs: [[0.6, 0.4], [Number.NaN, 1]] })).toThrowErrorMatchingInlineSnapshot(`[NumericsError: probability row 1 holds a non-finite value (NaN, 1).]`);
  });

  it('interpolates quantiles like numpy', () => {
    // np.quantile([1, 2, 3, 4], 0.025) = 1.075, 0.975 → 3.925
    expect(quantileSorted([1, 2, 3, 4], 0.025)).toBeCloseTo(1.075, 12);
    expect(quantileSorted([1, 2, 3, 4], 0.975)).toBeCloseTo(3.925, 12);
  });

  it('bootstraps a seeded 95% interval that brackets the point estimate and repeats exactly', () => {
    const rng = new Rng(3);
    const labels = Array.from({ length: 60 }, (_, i) => i % 2);
    const probs = labels.map((y) => {
      const p = Math.min(0.99, Math.max(0.01, 0.5 + (y === 1 ? 0.2 : -0.2) + 0.3 * rng.normal()));
      return [1 - p, p];
    });
    const input = { labels, probs, numClasses: 2 };
    const point = auc.compute(input).value as number;
    const a = bootstrapCI(auc, input, { rng: new Rng('boot') });
    const b = bootstrapCI(auc, input, { rng: new Rng('boot') });
    expect(a).toEqual(b);
    expect(a?.resamples).toBe(1000);
    expect(a?.low).toBeLessThan(point);
    expect(a?.high).toBeGreaterThan(point);
    // The AUC's standard error here is ~0.05-0.07: the interval is neither degenerate nor absurdly wide.
    expect((a?.high as number) - (a?.low as number)).toBeGreaterThan(0.1);
    expect((a?.high as number) - (a?.low as number)).toBeLessThan(0.4);
  });

  it('counts resamples where the metric is undefined instead of scoring them', () => {
    const input = { labels: [0, 0, 0, 1], probs: [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.2, 0.8]], numClasses: 2 };
    const ci = bootstrapCI(auc, input, { rng: new Rng(1), resamples: 200 });
    // P(no positive in 4 draws) = (3/4)^4 ≈ 0.32 → about 63 of 200 resamples.
    expect(ci?.undefinedResamples).toBeGreaterThan(40);
    expect(ci?.undefinedResamples).toBeLessThan(90);
    expect(bootstrapCI(auc, { labels: [1, 1], probs: [[0.5, 0.5], [0.1, 0.9]], numClasses: 2 }, { rng: new Rng(1) })).toBeNull();
  });
});

describe('core/eval/metrics bootstrapMetrics', () => {
  it('gives each metric its own stream: adding a metric leaves the others unchanged', async () => {
    const { bootstrapMetrics } = await import('../../../src/core/eval/metrics.js');
    const input = { labels: [0, 1, 0, 1, 1, 0, 1, 0], probs: [0.2, 0.7, 0.4, 0.6, 0.9, 0.5, 0.3, 0.1].map((p) => [1 - p, p]), numClasses: 2 };
    const one = bootstrapMetrics([{ name: 'auc', metric: auc }], input, { resamples: 300, rng: new Rng(9) });
    const two = bootstrapMetrics([{ name: 'mean', metric: meanLabel }, { name: 'auc', metric: auc }], input, { resamples: 300, rng: new Rng(9) });
    expect(two['auc']).toEqual(one['auc']);
    expect(two['mean']?.low).toBeLessThan(0.5);
  });
});
