/**
 * HMIL's instance-level attention alignment (loss/hmil-attention-alignment)
 * Paper: C. Jin et al., IEEE TMI 2025, the paper's L_ia as the authors' code computes it
 *   (compute_attention_matching_loss, docs/methods/hmil.md#losses).
 * Implements: A_f→c = Mᵀ A2 (the fine classes' attention rows summed into their coarse class, [Kc,N]); for each
 *   instance n, 1 − cos(A1[:,n], A_f→c[:,n]) across the class axis; the mean over instances.
 * Symbols: A1 [Kc,N] coarse attention (extras `coarseInstanceScores`) · A2 [Kf,N] fine attention (instanceScores) ·
 *   M [Kf,Kc] fine → coarse map
 * Choices / code vs paper: the original computes and logs this term but never adds it to the loss, so HMIL's
 *   experiments leave the slot out (off by default); the paper's notes weight it by β = 1 − e/E with the coarse
 *   terms, here it has the slot weight. Cosine with torch's eps 1e-8 per norm. A step of B bags averages it.
 * Checked against: test/reference/hmil.py → test/reference/fixtures/hmil.json
 */
import * as tf from '@tensorflow/tfjs';
import { definePlugin, HIERARCHY_EXTRAS, PluginError, z, type LabelHierarchy, type Loss, type ModelOutput } from 'milkit';
import { hierarchyMatrix } from './hmil-hierarchy.js';

export const HmilAttentionAlignmentOptions = z.strictObject({});
export type HmilAttentionAlignmentOptions = z.output<typeof HmilAttentionAlignmentOptions>;

class HmilAttentionAlignmentLoss implements Loss {
  constructor(private readonly hierarchy: LabelHierarchy) {}

  compute(output: ModelOutput): Record<string, tf.Scalar> {
    const coarse = output.extras?.[HIERARCHY_EXTRAS.coarseInstanceScores];
    const fine = output.instanceScores;
    if (!coarse || !fine) return {};
    return {
      '': tf.tidy(() => {
        const summed = tf.matMul(hierarchyMatrix(this.hierarchy), fine, true, false); // [Kc, N]  Mᵀ A2
        const dot = tf.sum(tf.mul(coarse, summed), 0); // [N]
        const norms = tf.mul(tf.maximum(tf.norm(coarse, 'euclidean', 0), 1e-8), tf.maximum(tf.norm(summed, 'euclidean', 0), 1e-8));
        return tf.mean(tf.sub(1, tf.div(dot, norms))) as tf.Scalar;
      }),
    };
  }
}

export default definePlugin({
  kind: 'loss',
  name: 'hmil-attention-alignment',
  summary: 'HMIL instance-level alignment: 1 − cosine between coarse attention and fine attention summed into coarse classes',
  paper: { cite: 'Jin et al., Hierarchical multiple-instance learning for fine-grained whole-slide image classification, IEEE TMI 2025' },
  options: HmilAttentionAlignmentOptions,
  capabilities: { requires: [HIERARCHY_EXTRAS.coarseInstanceScores] },
  create: (_options, ctx) => {
    if (!ctx.hierarchy) {
      throw new PluginError('missing-hierarchy', 'loss "hmil-attention-alignment" needs two-level labels, but the data has no label hierarchy.', {
        hint: 'Declare data.hierarchy (fine label → coarse label) or give the slide table a coarse_label column.',
      });
    }
    return new HmilAttentionAlignmentLoss(ctx.hierarchy);
  },
});
