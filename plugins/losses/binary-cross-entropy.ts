/**
 * Binary cross-entropy on one-hot slide labels (loss/binary-cross-entropy)
 * Paper: the bag loss of DSMIL — B. Li, Y. Li, K. W. Eliceiri, "Dual-stream Multiple Instance Learning Network for
 *   Whole Slide Image Classification with Self-supervised Contrastive Learning", CVPR 2021. arXiv:2011.08939
 * Implements: L = (1/C) Σ_c BCEWithLogits(z_c, [c = y]) (docs/methods/dsmil.md#loss-and-optimiser: multi-label style BCE on the bag logits)
 * Symbols: z [1,C] slide logits · y label
 * Choices: the stable form max(z,0) - z·t + log(1 + e^-|z|); for DSMIL's single-logit binary mode (logits [0, s]) use
 *   cross-entropy instead, which equals BCE on s exactly
 * Checked against: test/reference/dsmil.py (bag term of the train-step loss) and hand values in
 *   test/plugins/losses/zoo-losses.test.ts
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, type Loss, type LossTarget, type ModelOutput } from '../../src/registry/index.js';
import { oneHotBceWithLogits } from '../../src/core/nn/bce.js';

export const BinaryCrossEntropyOptions = z.strictObject({});
export type BinaryCrossEntropyOptions = z.output<typeof BinaryCrossEntropyOptions>;

class BinaryCrossEntropyLoss implements Loss {
  compute(output: ModelOutput, target: LossTarget): Record<string, tf.Scalar> {
    return { '': oneHotBceWithLogits(output.logits, target.label) };
  }
}

export default definePlugin({
  kind: 'loss',
  name: 'binary-cross-entropy',
  summary: 'binary cross-entropy with logits on one-hot slide labels, mean over classes (DSMIL bag loss)',
  paper: { cite: 'Li, Li, Eliceiri, Dual-stream Multiple Instance Learning Network for Whole Slide Image Classification with Self-supervised Contrastive Learning, CVPR 2021', arxiv: '2011.08939' },
  options: BinaryCrossEntropyOptions,
  capabilities: { requires: [] },
  create: () => new BinaryCrossEntropyLoss(),
});
