/**
 * Embedding distillation (loss/embedding-mse)
 * Paper: J. Dong et al., "Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical
 *   Distillation Multi-Instance Learning" (HDMIL), CVPR 2025 — L_dis1, the L2 term between bag embeddings
 * Implements: MSE = mean over all C·H entries of (E_stu - E_tea)^2 (docs/methods/hdmil.md#dmin-loss, weight α_3 = 0.5)
 * Symbols: E_tea, E_stu [C,H] teacher/student bag embeddings (extras `teacherEmbedding`, `studentEmbedding`)
 * Choices: neither side is detached (gradients reach the teacher too, docs/methods/hdmil.md#dmin-loss); when the aggregator ran
 *   without a student branch (DMIN `selfDistill: false`, or eval mode) the loss has no term
 * Checked against: hand-computed means in test/plugins/losses/embedding-mse.test.ts; total loss and gradients
 *   of a DMIN step in test/plugins/aggregators/dmin.test.ts (hdmil-dmin.json)
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, PluginError, type Loss, type ModelOutput } from '../../src/registry/index.js';

export const EmbeddingMseOptions = z.strictObject({});
export type EmbeddingMseOptions = z.output<typeof EmbeddingMseOptions>;

class EmbeddingMseLoss implements Loss {
  compute(output: ModelOutput): Record<string, tf.Scalar> {
    const teacher = output.extras?.teacherEmbedding;
    const student = output.extras?.studentEmbedding;
    if (!teacher || !student) return {};
    if (teacher.shape.join() !== student.shape.join()) {
      throw new PluginError('shape-mismatch', `loss "embedding-mse": teacher embedding [${teacher.shape.join(', ')}] and student embedding [${student.shape.join(', ')}] differ.`, { hint: 'Both branches must pool into the same shape.' });
    }
    return { '': tf.tidy(() => tf.mean(tf.squaredDifference(student, teacher)) as tf.Scalar) };
  }
}

export default definePlugin({
  kind: 'loss',
  name: 'embedding-mse',
  summary: 'mean squared difference between student and teacher bag embeddings (HDMIL self-distillation)',
  paper: { cite: 'Dong et al., Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical Distillation Multi-Instance Learning, CVPR 2025' },
  options: EmbeddingMseOptions,
  capabilities: { requires: ['teacherEmbedding', 'studentEmbedding'] },
  create: () => new EmbeddingMseLoss(),
});
