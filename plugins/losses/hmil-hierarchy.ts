/**
 * HMIL's bag-level hierarchy terms (loss/hmil-hierarchy)
 * Paper: C. Jin et al., IEEE TMI 2025; the terms as the authors' code computes them (compute_hierarchical_loss and
 *   train_phase, docs/methods/hmil.md#losses): the paper's L_ce^c and bag-level alignment L_ba.
 * Implements: `coarse` = α(e)·CE(coarse logits, y_c); `reg` = CE(P_c, y_c) with P_c = softmax(fine logits)·M (the
 *   children's probabilities summed into their coarse class) passed to CE as if they were logits, so
 *   reg = −P_c[y_c] + log Σ_c exp P_c[c] (floor log(1 + (Kc − 1)/e) ≈ 0.551 for Kc = 3). The fine CE is the
 *   ordinary cross-entropy slot on the model's logits.
 * Symbols: coarse logits [1,Kc] (extras `coarseLogits`) · fine logits [1,Kf] · M [Kf,Kc] fine → coarse map ·
 *   y_c = parent(y_f) · α(e) = 1 − (e/E)² (quadratic, default)
 * Choices / code vs paper: third-party notes of the paper weight L_ce^c, an instance-level alignment and L_ba all by
 *   β = 1 − e/E (`alpha: linear`); the code weights only the coarse CE by the quadratic α and gives L_reg weight 1,
 *   and we follow the code. `reg: nll` uses −log P_c[y_c] instead (a proper likelihood; not the original).
 *   Per-bag terms: a step of B bags averages them, as the original's batch means.
 * Checked against: test/reference/hmil.py → test/reference/fixtures/hmil.json (values and gradients)
 */
import * as tf from '@tensorflow/tfjs';
import { definePlugin, HIERARCHY_EXTRAS, PluginError, z, type LabelHierarchy, type Loss, type LossTarget, type ModelOutput } from 'milkit';
import { AlphaSchedule, alphaAt, epochOf } from './_shared/hmil-schedules.js';

export const HmilHierarchyOptions = z.strictObject({
  alpha: AlphaSchedule.default('quadratic').describe('weight of the coarse CE over epochs: quadratic 1 − (e/E)² (code), linear 1 − e/E (paper notes), constant 1 (no curriculum)'),
  reg: z.enum(['as-code', 'nll', 'off']).default('as-code').describe('bag-level hierarchy term: CE on summed probabilities as the code (as-code), −log of them (nll), or none'),
});
export type HmilHierarchyOptions = z.output<typeof HmilHierarchyOptions>;

/** [Kf, Kc] 0/1 map matrix M of a hierarchy (M[f, c] = 1 iff c is f's parent). */
export function hierarchyMatrix(hierarchy: LabelHierarchy): tf.Tensor2D {
  const numCoarse = hierarchy.coarseNames.length;
  const values = hierarchy.fineToCoarse.flatMap((c) => Array.from({ length: numCoarse }, (_, k) => (k === c ? 1 : 0)));
  return tf.tensor2d(values, [hierarchy.fineToCoarse.length, numCoarse]);
}

class HmilHierarchyLoss implements Loss {
  constructor(private readonly options: HmilHierarchyOptions, private readonly hierarchy: LabelHierarchy) {}

  compute(output: ModelOutput, target: LossTarget): Record<string, tf.Scalar> {
    const coarseLogits = output.extras?.[HIERARCHY_EXTRAS.coarseLogits];
    const coarseLabel = target.coarseLabel;
    if (!coarseLogits || coarseLabel === undefined) return {};
    const { epoch, totalEpochs } = epochOf(target);
    const alpha = alphaAt(this.options.alpha, epoch, totalEpochs);
    const numCoarse = this.hierarchy.coarseNames.length;
    const terms: Record<string, tf.Scalar> = {
      coarse: tf.tidy(() => tf.mul(tf.neg(tf.sum(tf.mul(tf.oneHot([coarseLabel], numCoarse).toFloat(), tf.logSoftmax(coarseLogits)))), alpha) as tf.Scalar),
    };
    if (this.options.reg !== 'off') {
      terms.reg = tf.tidy(() => {
        const summed = tf.matMul(tf.softmax(output.logits), hierarchyMatrix(this.hierarchy)); // [1, Kc]  P_c
        const picked = tf.sum(tf.mul(tf.oneHot([coarseLabel], numCoarse).toFloat(), this.options.reg === 'nll' ? tf.log(summed) : tf.logSoftmax(summed)));
        return tf.neg(picked) as tf.Scalar;
      });
    }
    return terms;
  }
}

export default definePlugin({
  kind: 'loss',
  name: 'hmil-hierarchy',
  summary: 'HMIL coarse cross-entropy (weighted α(e)) and the bag-level hierarchy term on fine probabilities summed into coarse classes',
  paper: { cite: 'Jin et al., Hierarchical multiple-instance learning for fine-grained whole-slide image classification, IEEE TMI 2025' },
  options: HmilHierarchyOptions,
  capabilities: { requires: [HIERARCHY_EXTRAS.coarseLogits] },
  create: (options, ctx) => {
    if (!ctx.hierarchy) {
      throw new PluginError('missing-hierarchy', 'loss "hmil-hierarchy" needs two-level labels, but the data has no label hierarchy.', {
        hint: 'Declare data.hierarchy (fine label → coarse label) or give the slide table a coarse_label column.',
      });
    }
    return new HmilHierarchyLoss(options, ctx.hierarchy);
  },
});
