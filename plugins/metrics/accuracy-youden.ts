/**
 * Accuracy at the Youden threshold (metric/accuracy-youden)
 * Paper: the thresholded accuracy MHIM-MIL (Tang et al., ICCV 2023) and DTFD-MIL report (docs/methods/metrics.md#youden-threshold)
 * Implements: t* = argmax_t TPR(t) − FPR(t) over the ROC thresholds of p(class 1); ACC = (1/S) Σ_s [1(p_s ≥ t*) = y_s]
 * Symbols: labels y [S] · probs p [S, 2] · t* threshold
 * Choices: binary tasks; multi-class tasks and single-class sets fall back to arg-max predictions; the threshold is tuned on the set being
 *   scored, as the originals do, so the value is optimistic next to arg-max accuracy; ties in TPR − FPR keep the
 *   highest threshold (scikit-learn's first argmin)
 * Checked against: test/reference/goldens_metrics_youden.py → accuracy-youden.golden.json
 */
import { z } from 'zod';
import { argmaxRows, definePlugin, type Metric, type MetricInput, type MetricValue } from 'milkit';
import { youdenPredictions } from './_shared/youden.js';

export const AccuracyYoudenOptions = z.strictObject({});

class AccuracyYouden implements Metric {
  compute(input: MetricInput): MetricValue {
    if (input.labels.length === 0) return { value: null, reason: 'no slides' };
    // Multi-class tasks (and a binary set with one class) have no ROC threshold: arg-max, as MHIM-MIL v2 does there.
    const predictions = youdenPredictions(input)?.predictions ?? argmaxRows(input.probs);
    return { value: predictions.filter((p, i) => p === input.labels[i]).length / input.labels.length };
  }
}

export default definePlugin({
  kind: 'metric',
  name: 'accuracy-youden',
  summary: 'binary accuracy at the Youden-optimal threshold of the evaluated set (MHIM-MIL, DTFD-MIL)',
  options: AccuracyYoudenOptions,
  capabilities: { higherIsBetter: true },
  create: () => new AccuracyYouden(),
});
