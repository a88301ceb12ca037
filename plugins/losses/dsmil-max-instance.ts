/**
 * DSMIL max-instance loss (loss/dsmil-max-instance)
 * Paper: B. Li, Y. Li, K. W. Eliceiri, "Dual-stream Multiple Instance Learning Network for Whole Slide Image
 *   Classification with Self-supervised Contrastive Learning", CVPR 2021. arXiv:2011.08939
 * Implements: the instance stream's loss on ĉ_j = max_n c_{n,j} (docs/methods/dsmil.md#loss-and-optimiser): BCE with logits on one-hot
 *   labels (reference, weight 0.5 next to the bag BCE) or softmax cross-entropy (MHIM-MIL's DSMIL variant)
 * Symbols: ĉ [1,C] max-pooled instance logits (extras.maxInstanceLogits) · y label
 * Choices: absent extras give no term; in DSMIL's single-logit binary mode (ĉ = [0, s]) `ce` equals BCE on s
 * Checked against: test/reference/dsmil.py (train-step loss) and hand values in test/plugins/losses/zoo-losses.test.ts
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, type Loss, type LossTarget, type ModelOutput } from '../../src/registry/index.js';
import { crossEntropyWithLogits, oneHotBceWithLogits } from '../../src/core/nn/bce.js';

export const DsmilMaxInstanceOptions = z.strictObject({
  criterion: z.enum(['bce', 'ce']).default('bce').describe('BCE with logits on one-hot labels (DSMIL) or softmax cross-entropy (MHIM-MIL\'s variant)'),
});
export type DsmilMaxInstanceOptions = z.output<typeof DsmilMaxInstanceOptions>;

class DsmilMaxInstanceLoss implements Loss {
  constructor(private readonly options: DsmilMaxInstanceOptions) {}

  compute(output: ModelOutput, target: LossTarget): Record<string, tf.Scalar> {
    const maxLogits = output.extras?.maxInstanceLogits as tf.Tensor2D | undefined;
    if (!maxLogits) return {};
    return { '': this.options.criterion === 'bce' ? oneHotBceWithLogits(maxLogits, target.label) : crossEntropyWithLogits(maxLogits, target.label) };
  }
}

export default definePlugin({
  kind: 'loss',
  name: 'dsmil-max-instance',
  summary: 'DSMIL loss on the max-pooled instance logits (BCE or CE)',
  paper: { cite: 'Li, Li, Eliceiri, Dual-stream Multiple Instance Learning Network for Whole Slide Image Classification with Self-supervised Contrastive Learning, CVPR 2021', arxiv: '2011.08939' },
  options: DsmilMaxInstanceOptions,
  capabilities: { requires: ['maxInstanceLogits'] },
  create: (options) => new DsmilMaxInstanceLoss(options),
});
