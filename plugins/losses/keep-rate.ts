/**
 * Keep-rate regulariser (loss/keep-rate)
 * Paper: J. Dong et al., "Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical
 *   Distillation Multi-Instance Learning" (HDMIL), CVPR 2025 — L_rate
 * Implements: (rate - r)^2 with rate the union keep fraction of the student gates (docs/methods/hdmil.md#keep-rate, docs/methods/hdmil.md#dmin-loss,
 *   weight α_5 = 2)
 * Symbols: rate scalar (extra `keepRate`, straight-through on the union of classes 0/1) · r target
 * Choices: r is the fraction of instances KEPT ("mask_ratio" in the reference, docs/methods/hdmil.md#keep-rate); no term without a
 *   student branch
 * Checked against: hand-computed values in test/plugins/losses/keep-rate.test.ts; DMIN step parity
 *   (hdmil-dmin.json)
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, type Loss, type ModelOutput } from '../../src/registry/index.js';

export const KeepRateOptions = z.strictObject({
  target: z.number().gt(0).max(1).default(0.6).describe('r: target fraction of instances kept (Camelyon16/RCC 0.6, NSCLC/BRCA 0.7)'),
});
export type KeepRateOptions = z.output<typeof KeepRateOptions>;

class KeepRateLoss implements Loss {
  constructor(private readonly options: KeepRateOptions) {}

  compute(output: ModelOutput): Record<string, tf.Scalar> {
    const rate = output.extras?.keepRate;
    if (!rate) return {};
    return { '': tf.tidy(() => tf.square(tf.sub(tf.reshape(rate, []), this.options.target)) as tf.Scalar) };
  }
}

export default definePlugin({
  kind: 'loss',
  name: 'keep-rate',
  summary: 'squared gap between the fraction of instances kept and a target r (HDMIL)',
  paper: { cite: 'Dong et al., Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical Distillation Multi-Instance Learning, CVPR 2025' },
  options: KeepRateOptions,
  capabilities: { requires: ['keepRate'] },
  create: (options) => new KeepRateLoss(options),
});
