/**
 * Logit distillation (loss/logit-kl)
 * Paper: J. Dong et al., "Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical
 *   Distillation Multi-Instance Learning" (HDMIL), CVPR 2025 — L_dis2, KL between teacher and student logits
 * Implements: KL(p_tea ‖ p_stu) = Σ_c p_tea[c] (log p_tea[c] - log p_stu[c]) / B, p = softmax, B = 1 bag
 *   (batchmean) (docs/methods/hdmil.md#dmin-loss, weight α_4 = 0.5)
 * Symbols: z_tea, z_stu [1,C] logits (extras `teacherLogits`, `studentLogits`)
 * Choices: the teacher is NOT detached (torch kl_div with a non-detached target, docs/methods/hdmil.md#dmin-loss); log-probabilities come
 *   from log-softmax; no term without a student branch
 * Checked against: hand-computed KL in test/plugins/losses/logit-kl.test.ts; DMIN step parity
 *   (hdmil-dmin.json)
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, type Loss, type ModelOutput } from '../../src/registry/index.js';

export const LogitKlOptions = z.strictObject({
  temperature: z.number().positive().default(1).describe('T: both logit vectors are divided by T before the softmax (HDMIL: 1)'),
});
export type LogitKlOptions = z.output<typeof LogitKlOptions>;

class LogitKlLoss implements Loss {
  constructor(private readonly options: LogitKlOptions) {}

  compute(output: ModelOutput): Record<string, tf.Scalar> {
    const teacher = output.extras?.teacherLogits;
    const student = output.extras?.studentLogits;
    if (!teacher || !student) return {};
    return {
      '': tf.tidy(() => {
        const t = this.options.temperature;
        const logTeacher = tf.logSoftmax(tf.div(teacher, t)); // [B, C]
        const logStudent = tf.logSoftmax(tf.div(student, t)); // [B, C]
        const pointwise = tf.mul(tf.exp(logTeacher), tf.sub(logTeacher, logStudent)); // [B, C]
        return tf.div(tf.sum(pointwise), teacher.shape[0] ?? 1) as tf.Scalar; // batchmean
      }),
    };
  }
}

export default definePlugin({
  kind: 'loss',
  name: 'logit-kl',
  summary: 'KL(teacher ‖ student) of the class probabilities (HDMIL self-distillation)',
  paper: { cite: 'Dong et al., Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical Distillation Multi-Instance Learning, CVPR 2025' },
  options: LogitKlOptions,
  capabilities: { requires: ['teacherLogits', 'studentLogits'] },
  create: (options) => new LogitKlLoss(options),
});
