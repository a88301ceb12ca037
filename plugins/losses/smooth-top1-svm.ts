/**
 * Smooth top-1 SVM on the slide logits (loss/smooth-top1-svm)
 * Paper: L. Berrada, A. Zisserman, M. P. Kumar, "Smooth Loss Functions for Deep Top-k Classification", ICLR 2018.
 *   arXiv:1802.07595 — CLAM's `--bag_loss svm` (docs/methods/clam.md#bag-loss-and-total-loss, docs/methods/clam.md#smooth-top-1-svm)
 * Implements: τ·log Σ_j exp((s_j + α[j≠y] - s_y)/τ), or the hard max_j(s_j + α[j≠y]) - s_y when the top score beats the
 *   second by ≥ τ·ln(1000) (decided on detached scores)
 * Symbols: s [1,C] slide logits · y label · α margin · τ temperature
 * Choices: α = τ = 1 as CLAM instantiates SmoothTop1SVM(n_classes)
 * Checked against: hand values in test/plugins/losses/zoo-losses.test.ts; the same function as loss/clam-instance,
 *   which test/reference/clam.py checks
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, type Loss, type LossTarget, type ModelOutput } from '../../src/registry/index.js';
import { smoothTop1SvmLosses } from '../../src/core/nn/smooth-svm.js';

export const SmoothTop1SvmOptions = z.strictObject({
  alpha: z.number().positive().default(1).describe('α: margin'),
  tau: z.number().positive().default(1).describe('τ: smoothing temperature'),
});
export type SmoothTop1SvmOptions = z.output<typeof SmoothTop1SvmOptions>;

class SmoothTop1SvmLoss implements Loss {
  constructor(private readonly options: SmoothTop1SvmOptions) {}

  compute(output: ModelOutput, target: LossTarget): Record<string, tf.Scalar> {
    const loss = tf.tidy(() => tf.mean(smoothTop1SvmLosses(output.logits, tf.tensor1d([target.label], 'int32'), this.options.alpha, this.options.tau)) as tf.Scalar);
    return { '': loss };
  }
}

export default definePlugin({
  kind: 'loss',
  name: 'smooth-top1-svm',
  summary: 'smooth top-1 multi-class SVM on the slide logits (CLAM --bag_loss svm)',
  paper: { cite: 'Berrada, Zisserman, Kumar, Smooth Loss Functions for Deep Top-k Classification, ICLR 2018', arxiv: '1802.07595' },
  options: SmoothTop1SvmOptions,
  capabilities: { requires: [] },
  create: (options) => new SmoothTop1SvmLoss(options),
});
