/**
 * Supervised contrastive loss over per-class bag embeddings (loss/supcon)
 * Paper: P. Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020 (arXiv 2004.11362), as HMIL (Jin et al.,
 *   IEEE TMI 2025) applies it in its code: the paper's L_scl (docs/methods/hmil.md#losses).
 * Implements: a batch-level term over the B bags of one step (`train.bagsPerStep`). Each bag gives K unit rows
 *   (extras `classEmbeddings`, [K,E]); all B·K rows are anchors. For anchor (i,r), positives = every other row of a
 *   bag with the same label (the anchor's own bag's other rows included), denominator = every other row; with
 *   z = (rows · rowsᵀ)/τ shifted by its row maximum (detached):
 *   ℓ = −(τ/τ_b)·Σ_pos [z_p − log(Σ_{a≠self} e^{z_a} + 1e-6)] / (|pos| + 1e-6); L = mean over anchors, then ÷ B.
 *   Weighted w(e) = 1 − α(e) (HMIL's curriculum) or 1.
 * Symbols: τ temperature (cosine schedule, `temperature`) · τ_b `baseTemperature` (0.1) · α(e) as hmil-hierarchy
 * Choices / code vs paper: SupCon's "views" axis receives the K class rows of a bag (the original stacks [B,K,E]), so
 *   a bag's rows are positives of each other; the extra ÷B of compute_contrastive_loss is kept (`divideByBatch`);
 *   the paper's notes weight it by 1 − β with β = 1 − e/E, the code by 1 − α with α = 1 − (e/E)².
 *   Per-bag compute gives nothing; the validation loss adds the term over groups of `train.bagsPerStep` validation
 *   bags, the same groups every epoch (evaluate's batchTerms; docs/methods/hmil.md#milkit-implementation), so
 *   early stopping on val/loss sees it; test losses and predictions leave it out.
 * Checked against: test/reference/hmil.py → test/reference/fixtures/hmil.json (values and gradients)
 */
import * as tf from '@tensorflow/tfjs';
import { definePlugin, HIERARCHY_EXTRAS, z, type Loss, type LossTarget, type ModelOutput } from 'milkit';
import { detach } from 'milkit/nn';
import { AlphaSchedule, alphaAt, epochOf, TemperatureSchedule, temperatureAt } from './_shared/hmil-schedules.js';

export const SupconOptions = z.strictObject({
  temperature: TemperatureSchedule.prefault({}).describe('τ over epochs (HMIL: cosine from 1 to 0.1 and back)'),
  baseTemperature: z.number().positive().default(0.1).describe('τ_b: the loss is scaled by τ/τ_b'),
  epochWeight: z.enum(['one-minus-alpha', 'constant']).default('one-minus-alpha').describe('epoch weight: 1 − α(e) (HMIL curriculum) or 1'),
  alpha: AlphaSchedule.default('quadratic').describe('α(e) for epochWeight one-minus-alpha (same options as hmil-hierarchy)'),
  divideByBatch: z.boolean().default(true).describe('divide by the number of bags B once more, as the original does'),
  embeddings: z.string().min(1).default(HIERARCHY_EXTRAS.classEmbeddings).describe('extras key of the [K, E] L2-normalised rows of each bag'),
});
export type SupconOptions = z.output<typeof SupconOptions>;

/** The SupCon value of B bags' unit rows [B·K, E] with bag labels repeated per row, at temperature τ (unweighted, before ÷B). */
export function supconValue(rows: tf.Tensor2D, rowLabels: readonly number[], tau: number, baseTemperature: number): tf.Scalar {
  return tf.tidy(() => {
    const count = rowLabels.length;
    const dots = tf.div(tf.matMul(rows, rows, false, true), tau) as tf.Tensor2D; // [R, R]
    const z = tf.sub(dots, detach(tf.max(dots, 1, true))); // row max over all columns, self included, as the original
    const notSelf = tf.sub(tf.onesLike(z), tf.eye(count)); // [R, R]
    const same = tf.tensor2d(rowLabels.flatMap((a) => rowLabels.map((b) => (a === b ? 1 : 0))), [count, count]);
    const positives = tf.mul(same, notSelf);
    const logDenominator = tf.log(tf.add(tf.sum(tf.mul(tf.exp(z), notSelf), 1, true), 1e-6)); // [R, 1]
    const logProb = tf.sub(z, logDenominator);
    const meanLogProbPos = tf.div(tf.sum(tf.mul(positives, logProb), 1), tf.add(tf.sum(positives, 1), 1e-6)); // [R]
    return tf.mean(tf.mul(meanLogProbPos, -(tau / baseTemperature))) as tf.Scalar;
  });
}

class SupconLoss implements Loss {
  constructor(private readonly options: SupconOptions) {}

  compute(): Record<string, tf.Scalar> {
    return {};
  }

  computeBatch(outputs: readonly ModelOutput[], targets: readonly LossTarget[]): Record<string, tf.Scalar> {
    const rows = outputs.map((out) => out.extras?.[this.options.embeddings]);
    if (outputs.length === 0 || rows.some((r) => r === undefined)) return {};
    const first = targets[0] as LossTarget;
    const { epoch, totalEpochs } = epochOf(first);
    const tau = temperatureAt(this.options.temperature, epoch, totalEpochs);
    const weight = this.options.epochWeight === 'constant' ? 1 : 1 - alphaAt(this.options.alpha, epoch, totalEpochs);
    const perBag = rows as tf.Tensor2D[];
    const rowLabels = perBag.flatMap((r, i) => Array.from({ length: r.shape[0] }, () => (targets[i] as LossTarget).label));
    return {
      '': tf.tidy(() => {
        const value = supconValue(tf.concat(perBag, 0) as tf.Tensor2D, rowLabels, tau, this.options.baseTemperature);
        return tf.mul(value, weight / (this.options.divideByBatch ? outputs.length : 1)) as tf.Scalar;
      }),
    };
  }
}

export default definePlugin({
  kind: 'loss',
  name: 'supcon',
  summary: 'supervised contrastive loss over the bags of one step (per-class embeddings as views), HMIL temperature and weight schedules',
  paper: { cite: 'Khosla et al., Supervised Contrastive Learning, NeurIPS 2020', arxiv: '2004.11362' },
  options: SupconOptions,
  capabilities: { requires: [HIERARCHY_EXTRAS.classEmbeddings] },
  create: (options) => new SupconLoss(options),
});
