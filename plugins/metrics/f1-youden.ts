/**
 * F1 at the Youden threshold (metric/f1-youden)
 * Paper: the thresholded F1 MHIM-MIL (Tang et al., ICCV 2023) reports (docs/methods/metrics.md#youden-threshold)
 * Implements: t* = argmax_t TPR(t) − FPR(t) over the ROC thresholds of p(class 1); F1 = 2 TP / (2 TP + FP + FN) of
 *   the positive class at t*
 * Symbols: labels y [S] · probs p [S, 2] · t* threshold
 * Choices: binary tasks; multi-class tasks and single-class sets fall back to arg-max predictions; the positive class's F1 (scikit-learn's
 *   binary default, as the original computes it), not the macro mean of metric/f1
 * Checked against: test/reference/goldens_metrics_youden.py → f1-youden.golden.json
 */
import { z } from 'zod';
import { argmaxRows, definePlugin, type Metric, type MetricInput, type MetricValue } from 'milkit';
import { youdenPredictions } from './_shared/youden.js';

export const F1YoudenOptions = z.strictObject({});

class F1Youden implements Metric {
  compute(input: MetricInput): MetricValue {
    if (input.labels.length === 0) return { value: null, reason: 'no slides' };
    // Multi-class tasks (and a binary set with one class) have no ROC threshold: arg-max, as MHIM-MIL v2 does there.
    const predictions = youdenPredictions(input)?.predictions ?? argmaxRows(input.probs);
    // Binary: the positive class's F1; multi-class: the macro mean over present classes (as metric/f1).
    const classes = input.numClasses === 2 ? [1] : [...new Set([...input.labels, ...predictions])].sort((a, b) => a - b);
    const scores = classes.map((c) => {
      let tp = 0;
      let fp = 0;
      let fn = 0;
      predictions.forEach((p, i) => {
        const y = input.labels[i];
        if (p === c && y === c) tp += 1;
        else if (p === c) fp += 1;
        else if (y === c) fn += 1;
      });
      return 2 * tp + fp + fn === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
    });
    return { value: scores.reduce((a, b) => a + b, 0) / scores.length };
  }
}

export default definePlugin({
  kind: 'metric',
  name: 'f1-youden',
  summary: 'binary positive-class F1 at the Youden-optimal threshold of the evaluated set (MHIM-MIL)',
  options: F1YoudenOptions,
  capabilities: { higherIsBetter: true },
  create: () => new F1Youden(),
});
