/**
 * Balanced accuracy (metric/balanced-accuracy)
 * Paper: K. Brodersen et al., "The balanced accuracy and its posterior distribution", ICPR 2010; reported by
 *   MIL_BASELINE and TransMIL-style evaluations (docs/methods/metrics.md#who-reports-what).
 * Implements: BACC = mean over classes c present in the labels of recall_c = TP_c / (TP_c + FN_c)
 * Symbols: labels y [S] · probs p [S, C] · predictions ŷ = argmax p
 * Choices: classes absent from the labels are left out of the mean (scikit-learn balanced_accuracy_score)
 * Checked against: scikit-learn balanced_accuracy_score, test/reference/metrics.py → fixtures/metrics.json
 */
import { z } from 'zod';
import { argmaxRows, classCounts, confusionMatrix, definePlugin, type Metric, type MetricInput, type MetricValue } from '../../src/registry/index.js';

export const BalancedAccuracyOptions = z.strictObject({});
export type BalancedAccuracyOptions = z.output<typeof BalancedAccuracyOptions>;

class BalancedAccuracyMetric implements Metric {
  compute(input: MetricInput): MetricValue {
    if (input.labels.length === 0) return { value: null, reason: 'no slides' };
    const matrix = confusionMatrix(input.labels, argmaxRows(input.probs), input.numClasses);
    const present = [...new Set(input.labels)];
    const recalls = present.map((c) => {
      const { tp, fn } = classCounts(matrix, c);
      return tp / (tp + fn);
    });
    return { value: recalls.reduce((a, b) => a + b, 0) / recalls.length };
  }
}

export default definePlugin({
  kind: 'metric',
  name: 'balanced-accuracy',
  summary: 'mean per-class recall (robust to class imbalance)',
  paper: { cite: 'Brodersen, Ong, Stephan, Buhmann, The balanced accuracy and its posterior distribution, ICPR 2010', doi: '10.1109/ICPR.2010.764' },
  options: BalancedAccuracyOptions,
  capabilities: { higherIsBetter: true },
  create: () => new BalancedAccuracyMetric(),
});
