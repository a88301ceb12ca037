/**
 * ROC-AUC (metric/auc)
 * Paper: J. Hanley, B. McNeil, "The meaning and use of the area under a ROC curve", Radiology 1982;
 *   one-vs-rest macro averaging as in CLAM (Lu et al., Nat. Biomed. Eng. 2021).
 * Implements: binary AUC on p(class 1) = Mann-Whitney U / (n₊ n₋) with midranks for ties; C > 2:
 *   mean over classes c of AUC(y = c vs rest, p_c) (docs/methods/metrics.md#auc)
 * Symbols: labels y [S] · probs p [S, C] · n₊/n₋ positives/negatives of a class
 * Choices: a single-class input is undefined ({value: null, reason}), never 0.5; with C > 2 a class absent
 *   from the labels makes the macro AUC undefined (scikit-learn raises) unless `onAbsentClass: skip`
 *   (CLAM's behaviour: average the classes that are present)
 * Checked against: scikit-learn roc_auc_score, test/reference/metrics.py → fixtures/metrics.json
 */
import { z } from 'zod';
import { binaryAuc, definePlugin, type Metric, type MetricInput, type MetricValue } from '../../src/registry/index.js';

export const AucOptions = z.strictObject({
  onAbsentClass: z.enum(['undefined', 'skip']).default('undefined').describe('C > 2: a class missing from the labels makes the AUC undefined, or is skipped from the macro mean (CLAM)'),
});
export type AucOptions = z.output<typeof AucOptions>;

class AucMetric implements Metric {
  constructor(private readonly options: AucOptions) {}

  compute(input: MetricInput): MetricValue {
    if (input.labels.length === 0) return { value: null, reason: 'no slides' };
    if (input.numClasses === 2) {
      const auc = binaryAuc(input.labels.map((y) => y === 1), input.probs.map((p) => p[1] as number));
      return auc === null ? { value: null, reason: `AUC undefined: only class ${input.labels[0]} present in the labels` } : { value: auc };
    }
    const perClass: number[] = [];
    const absent: number[] = [];
    for (let c = 0; c < input.numClasses; c += 1) {
      const auc = binaryAuc(input.labels.map((y) => y === c), input.probs.map((p) => p[c] as number));
      if (auc === null) absent.push(c);
      else perClass.push(auc);
    }
    if (perClass.length === 0) return { value: null, reason: 'AUC undefined: only one class present in the labels' };
    if (absent.length > 0 && this.options.onAbsentClass === 'undefined') {
      return { value: null, reason: `macro AUC undefined: class(es) ${absent.join(', ')} ${absent.length === 1 ? 'has' : 'have'} no positive or no negative slide (set onAbsentClass: skip to average the rest)` };
    }
    return { value: perClass.reduce((a, b) => a + b, 0) / perClass.length };
  }
}

export default definePlugin({
  kind: 'metric',
  name: 'auc',
  summary: 'ROC-AUC: binary on p(class 1), one-vs-rest macro for C > 2',
  paper: { cite: 'Hanley, McNeil, The meaning and use of the area under a receiver operating characteristic (ROC) curve, Radiology 1982', doi: '10.1148/radiology.143.1.7063747' },
  options: AucOptions,
  capabilities: { higherIsBetter: true },
  create: (options) => new AucMetric(options),
});
