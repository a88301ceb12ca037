/**
 * DTFD-MIL tier-1 loss (loss/dtfd-tier1)
 * Paper: H. Zhang et al., "DTFD-MIL: Double-Tier Feature Distillation Multiple Instance Learning for Histopathology
 *   Whole Slide Image Classification", CVPR 2022. arXiv:2203.12081
 * Implements: L_1 = (1/G) Σ_g CE(y_g, Y): every pseudo-bag inherits the slide label (docs/methods/dtfd-mil.md#training-step, step 4)
 * Symbols: y [G,C] pseudo-bag logits (extras.pseudoBagLogits) · Y slide label
 * Choices: weight 1 next to the tier-2 cross-entropy (weight 1), as the two optimisers of the reference see unscaled
 *   losses (their grad-norm clipping makes the scale matter); absent extras give no term
 * Checked against: test/reference/dtfd.py (train-step loss) and hand values in test/plugins/losses/zoo-losses.test.ts
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, type Loss, type LossTarget, type ModelOutput } from '../../src/registry/index.js';

export const DtfdTier1Options = z.strictObject({});
export type DtfdTier1Options = z.output<typeof DtfdTier1Options>;

class DtfdTier1Loss implements Loss {
  compute(output: ModelOutput, target: LossTarget): Record<string, tf.Scalar> {
    const logits = output.extras?.pseudoBagLogits as tf.Tensor2D | undefined;
    if (!logits) return {};
    const loss = tf.tidy(() => {
      const truth = tf.cast(tf.oneHot(tf.fill([logits.shape[0]], target.label, 'int32') as tf.Tensor1D, logits.shape[1]), 'float32'); // [G, C]
      return tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(logits), truth), 1))) as tf.Scalar; // mean_g -log p_g(Y)
    });
    return { '': loss };
  }
}

export default definePlugin({
  kind: 'loss',
  name: 'dtfd-tier1',
  summary: 'DTFD-MIL tier-1 loss: mean cross-entropy of the pseudo-bag logits against the slide label',
  paper: { cite: 'Zhang et al., DTFD-MIL: Double-Tier Feature Distillation Multiple Instance Learning for Histopathology Whole Slide Image Classification, CVPR 2022', arxiv: '2203.12081' },
  options: DtfdTier1Options,
  capabilities: { requires: ['pseudoBagLogits'] },
  create: () => new DtfdTier1Loss(),
});
