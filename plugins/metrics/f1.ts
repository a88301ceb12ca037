/**
 * Macro F1 (metric/f1)
 * Paper: macro-averaged classification scores as reported by MHIM-MIL, HDMIL and TransMIL (docs/methods/metrics.md#who-reports-what).
 * Implements: F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c), macro mean over the classes present in the labels or the predictions
 * Symbols: labels y [S] · probs p [S, C] · predictions ŷ = argmax p · TP/FP/FN one-vs-rest counts of class c
 * Choices: a 0/0 class score counts as 0 and classes absent from both labels and predictions are left out
 *   (scikit-learn average='macro', zero_division=0); macro even for C = 2 (not scikit-learn's 'binary')
 * Checked against: scikit-learn f1_score(average='macro'), test/reference/metrics.py → fixtures/metrics.json
 */
import { z } from 'zod';
import { argmaxRows, classCounts, confusionMatrix, definePlugin, presentClasses, type Metric, type MetricInput, type MetricValue } from '../../src/registry/index.js';

export const F1Options = z.strictObject({});
export type F1Options = z.output<typeof F1Options>;

class F1Metric implements Metric {
  compute(input: MetricInput): MetricValue {
    if (input.labels.length === 0) return { value: null, reason: 'no slides' };
    const predictions = argmaxRows(input.probs);
    const matrix = confusionMatrix(input.labels, predictions, input.numClasses);
    const scores = presentClasses(input.labels, predictions).map((c) => {
      const { tp, fp, fn } = classCounts(matrix, c);
      return 2 * tp + fp + fn === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
    });
    return { value: scores.reduce((a, b) => a + b, 0) / scores.length };
  }
}

export default definePlugin({
  kind: 'metric',
  name: 'f1',
  summary: 'mean per-class F1 score (macro)',
  options: F1Options,
  capabilities: { higherIsBetter: true },
  create: () => new F1Metric(),
});
