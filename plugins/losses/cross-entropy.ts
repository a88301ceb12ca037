/**
 * Cross-entropy on the slide logits (loss/cross-entropy)
 * Paper: the bag loss of every method here; HDMIL uses it on the teacher branch only (docs/methods/hdmil.md#dmin-loss, docs/methods/clam.md#bag-loss-and-total-loss).
 * Implements: L = -log softmax(logits)_y, optional label smoothing ε: targets (1-ε) one-hot + ε/C
 * Symbols: logits [1,C] · y label
 * Choices: class weights optional (ordered by class index) for imbalanced tasks
 * Checked against: hand-computed log-softmax in test/plugins/losses/cross-entropy.test.ts
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, type Loss, type LossTarget, type ModelOutput } from 'milkit';
import { softCrossEntropyWithLogits } from 'milkit/nn';

export const CrossEntropyOptions = z.strictObject({
  labelSmoothing: z.number().min(0).lt(1).default(0).describe('ε: mass spread uniformly over classes'),
  classWeights: z.array(z.number().positive()).optional().describe('per-class weights, indexed by label'),
});
export type CrossEntropyOptions = z.output<typeof CrossEntropyOptions>;

class CrossEntropyLoss implements Loss {
  constructor(private readonly options: CrossEntropyOptions) {}

  compute(output: ModelOutput, target: LossTarget): Record<string, tf.Scalar> {
    const eps = this.options.labelSmoothing;
    // (1 − ε)·one-hot + ε / C; the loss and its gradient come from milkit/nn in one host evaluation of the logits.
    const soft = Array.from({ length: target.numClasses }, (_, c) => (c === target.label ? 1 - eps : 0) + (eps > 0 ? eps / target.numClasses : 0));
    const loss = softCrossEntropyWithLogits(output.logits, soft, this.options.classWeights?.[target.label] ?? 1);
    return { '': loss };
  }
}

export default definePlugin({
  kind: 'loss',
  name: 'cross-entropy',
  summary: 'softmax cross-entropy of the slide logits',
  options: CrossEntropyOptions,
  capabilities: { requires: [] },
  create: (options) => new CrossEntropyLoss(options),
});
