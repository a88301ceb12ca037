/**
 * Accuracy (metric/accuracy)
 * Paper: standard argmax accuracy as reported by CLAM (1 − error) and HDMIL (docs/methods/metrics.md#accuracy).
 * Implements: ACC = (1/S) Σ_s [argmax_c p_sc = y_s]
 * Symbols: labels y [S] · probs p [S, C]
 * Choices: argmax ties go to the lowest class index (numpy argmax); no threshold tuning
 * Checked against: scikit-learn accuracy_score, test/reference/metrics.py → fixtures/metrics.json
 */
import { z } from 'zod';
import { argmaxRows, definePlugin, type Metric, type MetricInput, type MetricValue } from '../../src/registry/index.js';

export const AccuracyOptions = z.strictObject({});
export type AccuracyOptions = z.output<typeof AccuracyOptions>;

class AccuracyMetric implements Metric {
  compute(input: MetricInput): MetricValue {
    if (input.labels.length === 0) return { value: null, reason: 'no slides' };
    const predictions = argmaxRows(input.probs);
    const correct = predictions.filter((p, i) => p === input.labels[i]).length;
    return { value: correct / input.labels.length };
  }
}

export default definePlugin({
  kind: 'metric',
  name: 'accuracy',
  summary: 'fraction of slides whose argmax class is the label',
  options: AccuracyOptions,
  capabilities: { higherIsBetter: true },
  create: () => new AccuracyMetric(),
});
