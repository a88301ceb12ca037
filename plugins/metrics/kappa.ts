/**
 * Cohen's kappa (metric/kappa)
 * Paper: J. Cohen, "A coefficient of agreement for nominal scales", Educ. Psychol. Meas. 1960; weighted form
 *   J. Cohen, Psychol. Bull. 1968. Reported by TransMIL, MHIM-MIL and MIL_BASELINE (docs/methods/metrics.md#who-reports-what).
 * Implements: κ = 1 − Σ_ij w_ij O_ij / Σ_ij w_ij E_ij, O the confusion matrix, E_ij = (row_i · col_j) / S,
 *   w_ij = 1 − [i = j]
 * Symbols: labels y [S] · probs p [S, C] · predictions ŷ = argmax p
 * Choices: weights use the class indices 0..C−1 (scikit-learn with labels=range(C)); undefined when no
 *   disagreement is possible (Σ w E = 0, e.g. one class in labels and predictions), never 0 or 1 silently
 * Checked against: scikit-learn cohen_kappa_score(weights=None), test/reference/metrics.py → fixtures/metrics.json
 */
import { z } from 'zod';
import { argmaxRows, cohenKappa, definePlugin, type Metric, type MetricInput, type MetricValue } from '../../src/registry/index.js';

export const KappaOptions = z.strictObject({});
export type KappaOptions = z.output<typeof KappaOptions>;

class KappaMetric implements Metric {
  compute(input: MetricInput): MetricValue {
    if (input.labels.length === 0) return { value: null, reason: 'no slides' };
    const kappa = cohenKappa(input.labels, argmaxRows(input.probs), input.numClasses, 'none');
    return kappa === null ? { value: null, reason: 'kappa undefined: chance agreement is total (a single class in labels and predictions)' } : { value: kappa };
  }
}

export default definePlugin({
  kind: 'metric',
  name: 'kappa',
  summary: 'agreement beyond chance between argmax predictions and labels',
  paper: { cite: 'Cohen, A coefficient of agreement for nominal scales, Educational and Psychological Measurement 1960', doi: '10.1177/001316446002000104' },
  options: KappaOptions,
  capabilities: { higherIsBetter: true },
  create: () => new KappaMetric(),
});
