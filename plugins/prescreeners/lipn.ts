/**
 * Lightweight instance pre-screening network (prescreener/lipn)
 * Paper: J. Dong et al., "Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical
 *   Distillation Multi-Instance Learning" (HDMIL), CVPR 2025 — stage-2 network LIPN (class ImageProcessor)
 * Implements: MobileNetV4-conv-tiny on 16×16 thumbnails with BatchNorm, per-class keep logits O, binary
 *   mask 1[σ(O) > 0.5] with a straight-through sigmoid gradient and no noise (docs/methods/hdmil.md#lipn-architecture); imitation
 *   loss mean|M_LR - M_HR| + (e_LR - e_HR)^2 with union keep rates over classes 0/1 (docs/methods/hdmil.md#lipn-training, "l1" option);
 *   `missWeight` (not in HDMIL, default 1) weighs missed targets more, `targetRecall` (not in HDMIL, default 0 = off) keeps where O exceeds a
 *   threshold calibrated on the training bags for that recall of the targets, counted per patch or (`recallOf: attention`)
 *   weighted by the aggregator's attention (docs/methods/hdmil.md#screened-keep-sets)
 * Symbols: thumbs [N,16,16,3] in [0,1] · O [N,C] branch scores · M_LR, M_HR [N,C] predicted/target masks ·
 *   e_LR, e_HR keep rates
 * Choices: input centred as x - 0.5 (the reference's x/255 - 0.5 on uint8); the slide's N patches form one
 *   BatchNorm batch in training; `score` (the union keep logit) is the max over branches; β1 = β2 = 1 by
 *   default; |·| has PyTorch's zero subgradient at 0 (matched mask entries give no gradient)
 * Checked against: test/reference/hdmil_reference.py → test/reference/fixtures/hdmil-lipn.json (train- and
 *   eval-mode forward, running-stat updates, imitation loss and gradients, original state_dict keys)
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, Module, type ForwardIO, type ModelContext, type Prescreener } from 'milkit';
import { MobileNetV4ConvTiny, straightThroughGate, torchAbs, unionKeepRate } from 'milkit/nn';

export const LipnOptions = z.strictObject({
  maskLossWeight: z.number().min(0).default(1).describe('β1: weight of the L1 term between predicted and target masks'),
  rateLossWeight: z.number().min(0).default(1).describe('β2: weight of the squared keep-rate difference'),
  rateOverAllClasses: z.boolean().default(false).describe('keep rate over the union of ALL classes (AHDMIL); HDMIL uses classes 0 and 1 only'),
  targetRecall: z.number().min(0).lt(1).default(0).describe(
    'keep threshold calibrated for this recall of the aggregator\'s gates (e.g. 0.99): while training, each bag\'s eval-mode scores of its target-kept instances give the threshold that keeps that share of them, averaged over the bags (momentum 0.1) and stored with the model; at evaluation an instance is kept where a score exceeds it. 0 = HDMIL: kept where σ(O) > 0.5 (docs/methods/hdmil.md#screened-keep-sets)',
  ),
  recallOf: z.enum(['patches', 'attention']).default('patches').describe(
    'what targetRecall counts: `patches` = the share of target-kept instances kept; `attention` = the share of the aggregator\'s attention (per branch, softmax of its gate logits S over the instances its gate keeps, averaged over the counted branches) on the instances kept, which bounds how far the screened pooling can move (docs/methods/hdmil.md#screened-keep-sets)',
  ),
  missWeight: z.number().positive().default(1).describe(
    'weight of a missed target in the mask term (target 1, predicted 0) against a false keep (weight 1); 1 = HDMIL; above 1 trades precision for recall of the aggregator\'s gates, what screened inference needs to agree with all-instance inference (docs/methods/hdmil.md#screened-keep-sets)',
  ),
});
export type LipnOptions = z.output<typeof LipnOptions>;

/** Weight of the newest bag in the running keep threshold (as BatchNorm's momentum). */
const THRESHOLD_MOMENTUM = 0.1;

/**
 * Per instance, the aggregator's attention on it as the all-instance evaluation pools (docs/methods/hdmil.md#screened-keep-sets):
 * in each counted branch c, softmax of S_c over the instances the gate keeps in c (0 elsewhere), averaged over the
 * counted branches that keep any instance. Each branch's weights sum to 1, so the weights sum to 1 over the bag.
 */
export function attentionWeights(logits: ArrayLike<number>, target: ArrayLike<number>, rows: number, branches: number, counted: number): Float64Array {
  const weights = new Float64Array(rows);
  let used = 0;
  for (let c = 0; c < counted; c += 1) {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < rows; i += 1) if ((target[i * branches + c] as number) > 0) max = Math.max(max, logits[i * branches + c] as number);
    if (max === Number.NEGATIVE_INFINITY) continue; // the branch keeps nothing
    let sum = 0;
    for (let i = 0; i < rows; i += 1) if ((target[i * branches + c] as number) > 0) sum += Math.exp((logits[i * branches + c] as number) - max);
    for (let i = 0; i < rows; i += 1) if ((target[i * branches + c] as number) > 0) weights[i] = (weights[i] as number) + Math.exp((logits[i * branches + c] as number) - max) / sum;
    used += 1;
  }
  if (used > 1) for (let i = 0; i < rows; i += 1) weights[i] = (weights[i] as number) / used;
  return weights;
}

/**
 * The largest threshold t such that the positives scored above t keep `recall` of their total weight (unit weights:
 * floor((1 - recall) · count) of them dropped): the lowest-scored are dropped while their weight stays within
 * (1 - recall) of the total, and t sits halfway between the highest dropped score and the lowest kept one (just
 * below the lowest when none is dropped). At least one positive is always kept.
 */
export function recallThreshold(positives: ReadonlyArray<{ readonly score: number; readonly weight: number }>, recall: number): number {
  const sorted = [...positives].sort((a, b) => a.score - b.score);
  const total = sorted.reduce((sum, p) => sum + p.weight, 0);
  const budget = (1 - recall) * total * (1 + 1e-9); // the tolerance keeps exact products (0.25 · 20 = 5) whole
  let dropped = 0;
  let spent = 0;
  while (dropped < sorted.length - 1 && spent + (sorted[dropped] as { weight: number }).weight <= budget) {
    spent += (sorted[dropped] as { weight: number }).weight;
    dropped += 1;
  }
  const lowestKept = (sorted[dropped] as { score: number }).score;
  return dropped > 0 ? ((sorted[dropped - 1] as { score: number }).score + lowestKept) / 2 : lowestKept - 1e-6 * Math.max(1, Math.abs(lowestKept));
}

export class LipnPrescreener extends Module implements Prescreener {
  private readonly extractor: MobileNetV4ConvTiny;
  /** Calibrated keep threshold on O (targetRecall > 0 only; registered then, so default checkpoints keep HDMIL's keys). */
  private readonly keepThreshold: tf.Variable | undefined;
  private readonly bagsCalibrated: tf.Variable | undefined;
  /** The thumbnails of the last training forward, for the calibration in imitationLoss (same step). */
  private lastThumbs: tf.Tensor4D | undefined;

  constructor(private readonly options: LipnOptions, ctx: ModelContext) {
    super();
    this.extractor = this.addModule('extractor', new MobileNetV4ConvTiny(ctx.numClasses, ctx.rng.fork('extractor')));
    if (options.targetRecall > 0) {
      this.keepThreshold = this.addBuffer('keep_threshold', tf.scalar(0));
      this.bagsCalibrated = this.addBuffer('num_bags_calibrated', tf.scalar(0, 'int32'));
    }
  }

  /**
   * O [N, C]; at evaluation shifted by the calibrated threshold, so "kept where O > 0" (the screened pipeline's rule)
   * means O > threshold.
   */
  branchScores(thumbs: tf.Tensor4D, io: ForwardIO): tf.Tensor2D {
    if (this.keepThreshold && io.training) {
      this.lastThumbs?.dispose();
      this.lastThumbs = tf.keep(tf.clone(thumbs));
    }
    return tf.tidy(() => {
      const scores = this.extractor.forward(tf.sub(thumbs, 0.5) as tf.Tensor4D, io.training) as tf.Tensor2D; // [N, C]  O
      return this.keepThreshold && !io.training ? tf.sub(scores, this.keepThreshold) : scores;
    });
  }

  /**
   * docs/methods/hdmil.md#screened-keep-sets: the bag's threshold is the largest t such that union scores max_c O
   * (eval mode: running statistics, as inference sees them) above t cover targetRecall of its target-kept
   * instances; the stored threshold is a running average over bags. Gradient-free; a bag with no kept target
   * leaves it unchanged.
   */
  private calibrate(targets: tf.Tensor2D, gateLogits: tf.Tensor2D | undefined): void {
    const thumbs = this.lastThumbs;
    if (!thumbs || !this.keepThreshold || !this.bagsCalibrated) return;
    this.lastThumbs = undefined;
    const [rows = 0, branches = 1] = targets.shape;
    const union = tf.tidy(() => tf.max(this.extractor.forward(tf.sub(thumbs, 0.5) as tf.Tensor4D, false), 1).dataSync()); // [N]
    thumbs.dispose();
    const target = targets.dataSync();
    const counted = this.options.rateOverAllClasses ? branches : Math.min(2, branches); // the branches the keep rate counts
    const weights = this.options.recallOf === 'attention' && gateLogits ? attentionWeights(gateLogits.dataSync(), target, rows, branches, counted) : undefined;
    const positives: Array<{ score: number; weight: number }> = [];
    for (let i = 0; i < rows; i += 1) {
      let kept = false;
      for (let c = 0; c < counted; c += 1) if ((target[i * branches + c] as number) > 0) kept = true;
      if (kept) positives.push({ score: union[i] as number, weight: weights ? (weights[i] as number) : 1 });
    }
    if (positives.length === 0) return;
    const bagThreshold = recallThreshold(positives, this.options.targetRecall);
    const seen = this.bagsCalibrated.dataSync()[0] as number;
    const previous = this.keepThreshold.dataSync()[0] as number;
    const next = seen === 0 ? bagThreshold : (1 - THRESHOLD_MOMENTUM) * previous + THRESHOLD_MOMENTUM * bagThreshold;
    tf.tidy(() => {
      this.keepThreshold?.assign(tf.scalar(next));
      this.bagsCalibrated?.assign(tf.scalar(seen + 1, 'int32'));
    });
  }

  score(thumbs: tf.Tensor4D, io: ForwardIO): tf.Tensor1D {
    return tf.tidy(() => tf.max(this.branchScores(thumbs, io), 1) as tf.Tensor1D); // [N]  kept by any branch
  }

  override dispose(): void {
    this.lastThumbs?.dispose();
    this.lastThumbs = undefined;
    super.dispose();
  }

  imitationLoss(scores: tf.Tensor2D, targets: tf.Tensor2D, gateLogits?: tf.Tensor2D): tf.Scalar {
    this.calibrate(targets, gateLogits);
    return tf.tidy(() => {
      const soft = tf.sigmoid(scores) as tf.Tensor2D; // [N, C]
      const predicted = straightThroughGate(soft, 0.5); // [N, C]  M_LR = 1[σ(O) > 0.5], gradient of σ(O)
      const errors = torchAbs(tf.sub(predicted, targets)); // [N, C]  |M_LR - M_HR|
      // w = 1 + (missWeight - 1)·M_HR: misses of a kept target weigh missWeight (left out at 1: HDMIL's exact loss).
      const weighted = this.options.missWeight === 1 ? errors : tf.mul(errors, tf.add(tf.mul(targets, this.options.missWeight - 1), 1));
      const maskLoss = tf.mean(weighted); // mean over N·C
      const branches = this.options.rateOverAllClasses ? 'all' : 'first-two';
      const predictedRate = unionKeepRate(predicted, branches); // e_LR
      const targetRate = unionKeepRate(targets, branches); // e_HR (targets carry no gradient)
      const rateLoss = tf.square(tf.sub(predictedRate, targetRate));
      return tf.add(tf.mul(maskLoss, this.options.maskLossWeight), tf.mul(rateLoss, this.options.rateLossWeight)) as tf.Scalar;
    });
  }
}

export default definePlugin({
  kind: 'prescreener',
  name: 'lipn',
  summary: 'HDMIL lightweight pre-screening CNN on 16×16 thumbnails, trained to reproduce the aggregator\'s instance gates',
  paper: { cite: 'Dong et al., Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical Distillation Multi-Instance Learning, CVPR 2025' },
  options: LipnOptions,
  capabilities: { trainable: true, needsViews: ['thumbs'] },
  create: (options, ctx) => new LipnPrescreener(options, ctx),
});
