/**
 * Macro recall (sensitivity) (metric/recall)
 * Paper: macro-averaged classification scores as reported by MHIM-MIL, HDMIL and TransMIL (docs/methods/metrics.md#who-reports-what).
 * Implements: R_c = TP_c / (TP_c + FN_c), macro mean over the classes present in the labels or the predictions
 * Symbols: labels y [S] · probs p [S, C] · predictions ŷ = argmax p · TP/FP/FN one-vs-rest counts of class c
 * Choices: a 0/0 class score counts as 0 and classes absent from both labels and predictions are left out
 *   (scikit-learn average='macro', zero_division=0); macro even for C = 2 (not scikit-learn's 'binary')
 * Checked against: scikit-learn recall_score(average='macro'), test/reference/metrics.py → fixtures/metrics.json
 */
import { z } from 'zod';
import { argmaxRows, classCounts, confusionMatrix, definePlugin, presentClasses, type Metric, type MetricInput, type MetricValue } from '../../src/registry/index.js';

export const RecallOptions = z.strictObject({});
export type RecallOptions = z.output<typeof RecallOptions>;

class RecallMetric implements Metric {
  compute(input: MetricInput): MetricValue {
    if (input.labels.length === 0) return { value: null, reason: 'no slides' };
    const predictions = argmaxRows(input.probs);
    const matrix = confusionMatrix(input.labels, predictions, input.numClasses);
    const scores = presentClasses(input.labels, predictions).map((c) => {
      const { tp, fn } = classCounts(matrix, c);
      return tp + fn === 0 ? 0 : tp / (tp + fn);
    });
    return { value: scores.reduce((a, b) => a + b, 0) / scores.length };
  }
}

export default definePlugin({
  kind: 'metric',
  name: 'recall',
  summary: 'mean per-class recall (macro)',
  options: RecallOptions,
  capabilities: { higherIsBetter: true },
  create: () => new RecallMetric(),
});
