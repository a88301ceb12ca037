import { describe, expect, it } from 'vitest';
import { renderRunReport } from '../../../src/core/engine/report.js';
import type { ExperimentResult } from '../../../src/core/engine/run.js';

const result = {
  outDir: '/tmp/out',
  runtime: {},
  folds: [
    { fold: 0, ok: true, metrics: { auc: { value: 0.9 }, accuracy: { value: 0.8 }, all_auc: { value: 0.95 }, time_total_ms: { value: 12.5 } }, bestEpoch: 3, secondsPerSlide: 0.002 },
    { fold: 1, ok: false, error: 'features/slide_7.h5 is corrupt', metrics: {} },
    { fold: 2, ok: true, metrics: { auc: { value: 0.7 }, accuracy: { value: null, reason: 'one class' }, all_auc: { value: 0.85 }, time_total_ms: { value: 14.5 } }, bestEpoch: 0, secondsPerSlide: 0.004 },
  ],
  summary: { auc: { mean: 0.8, std: 0.1414, n: 2 }, all_auc: { mean: 0.9, std: 0.0707, n: 2 }, time_total_ms: { mean: 13.5, std: 1.4142, n: 2 } },
} as unknown as ExperimentResult;

describe('renderRunReport', () => {
  it('lists every metric per fold by default', () => {
    const lines = renderRunReport(result).split('\n');
    expect(lines[0]).toBe('fold\ttest/auc\ttest/accuracy\ttest/all_auc\ttest/time_total_ms\tinstance_auc\tbest_epoch\tms/slide');
    // best_epoch as in metrics.json and MLflow (0-based), not shifted by one.
    expect(lines[1]).toBe('0\t0.9000\t0.8000\t0.9500\t12.5000\t-\t3\t2.00');
    expect(lines[2]).toBe('1\tFAILED: features/slide_7.h5 is corrupt');
  });

  it('keeps the per-fold table to the configured metrics and leaves the rest to the summary', () => {
    const text = renderRunReport(result, { primaryMetrics: ['auc', 'accuracy'] });
    const lines = text.split('\n');
    expect(lines[0]).toBe('fold\ttest/auc\ttest/accuracy\tinstance_auc\tbest_epoch\tms/slide');
    expect(lines[3]).toBe('2\t0.7000\tundefined (one class)\t-\t0\t4.00');
    expect(lines[4]).toBe('(2 more metrics per fold in the summary below and in summary.json)');
    expect(text).toContain('summary over 2 fold(s) (mean ± sample std, ddof=1):\n  test/auc: 0.8000 ± 0.1414  (n=2)\n  test/all_auc: 0.9000 ± 0.0707  (n=2)\n  test/time_total_ms: 13.5000 ± 1.4142  (n=2)');
    expect(text).toContain('  time per slide (forward): 3.00 ms\noutputs: /tmp/out');
  });

  it('prints each metric on the pooled out-of-fold predictions with its bootstrap CI, and says when folds failed', () => {
    const interval = (value: number, low: number, high: number, pooledFolds: number) => ({ value, ci: [low, high] as const, units: 1, plannedFolds: 3, pooledFolds, resamples: 500, undefinedResamples: 0 });
    const text = renderRunReport({ ...result, pooled: { resamples: 500, level: 0.95, stream: 'bootstrap/0/pooled', metrics: { auc: interval(0.81, 0.7, 0.9, 2), accuracy: null } } } as ExperimentResult);
    expect(text).toContain([
      'pooled out-of-fold test predictions (95% CI: patients resampled, 500 resamples, stream "bootstrap/0/pooled"):',
      '  test/auc: 0.8100 [0.7000, 0.9000]  (2/3 folds: failed folds left out)',
      '  time per slide',
    ].join('\n'));
    expect(text).not.toContain('test/accuracy: ');
    expect(renderRunReport(result)).not.toContain('pooled out-of-fold');
  });
});
