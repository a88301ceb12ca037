/**
 * Instance-level clustering loss (loss/clam-instance)
 * Paper: M. Y. Lu et al., "Data-efficient and weakly supervised computational pathology on whole-slide images"
 *   (CLAM), Nat. Biomed. Eng. 2021. doi:10.1038/s41551-020-00682-w; smooth SVM: L. Berrada, A. Zisserman,
 *   M. P. Kumar, "Smooth Loss Functions for Deep Top-k Classification", ICLR 2018. arXiv:1802.07595
 * Implements: L_inst = Σ_m w_m ℓ(s_m, y_m) over the pseudo-labelled instances an aggregator selected (docs/methods/clam.md#instance-clustering-loss,
 *   docs/methods/hdmil.md#clustering-loss), with ℓ the smooth top-1 SVM (α margin, τ temperature, hard fallback beyond a τ·ln 1000 gap; docs/methods/clam.md#smooth-top-1-svm)
 *   or cross-entropy
 * Symbols: s [M,2] instance logits (extras.instanceLogits) · y [M] pseudo-labels (extras.instanceTargets) ·
 *   w [M] weights (extras.instanceWeights: CLAM 1/2k per in-class pick, 1/k per out-of-class pick, ÷ C with subtyping)
 * Choices: the weighting lives with the aggregator that selected the instances (CLAM-SB/MB, HDMIL's DMIN), so this
 *   loss is one weighted sum for all of them; without the extras (evaluation, where no label is known) it returns
 *   no term
 * Checked against: test/reference/clam.py (CLAM-SB/MB train-step loss) and hand values in
 *   test/plugins/losses/clam-instance.test.ts
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, type Loss, type LossTarget, type ModelOutput } from '../../src/registry/index.js';
import { smoothTop1SvmLosses } from '../../src/core/nn/smooth-svm.js';

export const ClamInstanceOptions = z.strictObject({
  fn: z.enum(['svm', 'ce']).default('svm').describe('per-instance loss: smooth top-1 SVM (CLAM --inst_loss svm) or cross-entropy'),
  alpha: z.number().positive().default(1).describe('α: SVM margin'),
  tau: z.number().positive().default(1).describe('τ: SVM smoothing temperature'),
});
export type ClamInstanceOptions = z.output<typeof ClamInstanceOptions>;

class ClamInstanceLoss implements Loss {
  constructor(private readonly options: ClamInstanceOptions) {}

  compute(output: ModelOutput, _target: LossTarget): Record<string, tf.Scalar> {
    const logits = output.extras?.instanceLogits as tf.Tensor2D | undefined;
    const targets = output.extras?.instanceTargets as tf.Tensor1D | undefined;
    const weights = output.extras?.instanceWeights as tf.Tensor1D | undefined;
    if (!logits || !targets || !weights) return {};
    const loss = tf.tidy(() => {
      const labels = tf.cast(targets, 'int32') as tf.Tensor1D; // [M]
      const perInstance = this.options.fn === 'svm'
        ? smoothTop1SvmLosses(logits, labels, this.options.alpha, this.options.tau) // [M]
        : tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), tf.cast(tf.oneHot(labels, logits.shape[1]), 'float32')), 1)); // [M]  -log p_y
      return tf.sum(tf.mul(perInstance, weights)) as tf.Scalar; // Σ w ℓ
    });
    return { '': loss };
  }
}

export default definePlugin({
  kind: 'loss',
  name: 'clam-instance',
  summary: 'CLAM instance-level clustering loss (smooth top-1 SVM or CE) on the instances an aggregator pseudo-labelled',
  paper: { cite: 'Lu et al., Data-efficient and weakly supervised computational pathology on whole-slide images, Nat. Biomed. Eng. 2021', doi: '10.1038/s41551-020-00682-w' },
  options: ClamInstanceOptions,
  capabilities: { requires: ['instanceLogits', 'instanceTargets', 'instanceWeights'] },
  create: (options) => new ClamInstanceLoss(options),
});
