/**
 * Double-tier feature distillation MIL (aggregator/dtfd-mil)
 * Paper: H. Zhang, Y. Meng, Y. Zhao, Y. Qiao, X. Yang, S. E. Coupland, Y. Zheng, "DTFD-MIL: Double-Tier Feature
 *   Distillation Multiple Instance Learning for Histopathology Whole Slide Image Classification", CVPR 2022. arXiv:2203.12081
 * Implements: random split into G pseudo-bags; tier 1: h = ReLU(W x) (no bias), gated attention pooling per pseudo-bag
 *   (softmax inside the pseudo-bag), tier-1 logits per pseudo-bag; instance CAM s_n = W_cls1(a_n h_n) (weight only),
 *   distillation AFS (pooled feature), MaxS (top-k by the last class's CAM probability) or MaxMinS (top-k and
 *   bottom-k); tier 2: gated attention pooling of the distilled features and its classifier (docs/methods/dtfd-mil.md#training-step)
 * Symbols: x [N,D] · h [N,E] (E = 512) · member [G,N] pseudo-bag masks · A [G,N] tier-1 attention (row g: a_g) · f_g [1,E] · y [G,C] tier-1 logits
 *   (extras.pseudoBagLogits) · D [M,E] distilled features (M = G, G·k or 2G·k) · z [1,E] tier-2 embedding · logits [1,C]
 * Choices: tier 2 sees the distilled features detached, so one backward of L_tier1 + L_tier2 gives each tier exactly
 *   the gradient of its own loss — what the reference's two optimisers and retained graph amount to (both Adam with
 *   equal settings, so one optimiser over both groups is the same update). The per-module clipping at norm 5 is
 *   declared in `gradientClipGroups` for the trainer. Pseudo-bag sizes follow numpy.array_split; pseudo-bags are 0/1
 *   membership masks over the instances in their original order (softmax and pooling per mask row), which equals
 *   splitting shuffled rows without gathering the bag. G is clamped to N, and k to ⌊N/G⌋ (the smallest pseudo-bag),
 *   which matches the reference whenever every pseudo-bag holds ≥ k instances. A fresh random split on every forward, also
 *   at eval (num_MeanInference = 1); `io.injected.permutation` [N] fixes it (parity tests). instanceScores are the
 *   tier-1 attention weights in the original instance order (each pseudo-bag's sum to 1). Losses: cross-entropy
 *   (tier 2, weight 1) + dtfd-tier1 (weight 1). The tier-1 and tier-2 heads are the classifier slot (linear reproduces
 *   Classifier_1fc).
 * Checked against: test/reference/dtfd.py → test/reference/fixtures/dtfd*.safetensors
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import {
  definePlugin,
  Module,
  type Aggregator,
  type AggregatorOutput,
  type Bag,
  type Classifier,
  type ForwardIO,
  type GradientClipGroup,
  type ModelContext,
  Rng,
  type TorchNaming,
} from 'milkit';
import { AttentionScorer, type AttentionScorerOptions, Linear, dropout, constantOf, selectionMatrix } from 'milkit/nn';

export const DtfdMilOptions = z
  .strictObject({
    embedDim: z.int().positive().default(512).describe('E (mDim): width after DimReduction'),
    attnDim: z.int().positive().default(128).describe('hidden width of both gated attention networks'),
    numGroups: z.int().positive().default(4).describe('G: pseudo-bags per slide'),
    totalInstance: z.int().positive().default(4).describe('distilled instances over all pseudo-bags; k = ⌊totalInstance / numGroups⌋ per pseudo-bag (MaxS/MaxMinS)'),
    distill: z.enum(['afs', 'maxs', 'maxmins']).default('afs').describe('feature distillation: AFS (pooled feature), MaxS (top-k instances), MaxMinS (top-k and bottom-k)'),
    tier1Dropout: z.number().min(0).lt(1).default(0).describe('dropout before the tier-1 classifier while training (droprate)'),
    tier2Dropout: z.number().min(0).lt(1).default(0).describe('dropout before the tier-2 classifier while training (droprate_2)'),
    gradClipNorm: z.number().min(0).default(5).describe('clip each module group\'s gradient norm to this (DimReduction, tier-1 attention, tier-1 classifier, tier 2); 0 = off'),
    init: z.enum(['torch-default', 'xavier-normal']).default('torch-default').describe('weight initialisation of the Linear layers'),
  })
  .refine((o) => o.distill === 'afs' || o.totalInstance >= o.numGroups, { message: 'MaxS/MaxMinS need totalInstance ≥ numGroups (k ≥ 1 per pseudo-bag)', path: ['totalInstance'] });
export type DtfdMilOptions = z.output<typeof DtfdMilOptions>;

function gatedAttention(inDim: number, attnDim: number, init: DtfdMilOptions['init']): AttentionScorerOptions {
  return {
    inDim, hiddenDim: attnDim, branches: 1, gated: true, activation: 'tanh', bias: true, dropout: 0, init,
    keys: { first: 'attention_V.0', gate: 'attention_U.0', out: 'attention_weights' },
  };
}

/** Attention_with_Classifier: gated attention pooling then the classifier head. */
class TierTwo extends Module {
  readonly attention: AttentionScorer;
  readonly classifier: Classifier;

  constructor(options: DtfdMilOptions, ctx: ModelContext, rng: Rng) {
    super();
    this.attention = this.addModule('attention', new AttentionScorer(gatedAttention(options.embedDim, options.attnDim, options.init), rng.fork('attention')));
    this.classifier = this.addModule('classifier', ctx.makeClassifier(options.embedDim, ctx.numClasses, rng.fork('classifier')));
  }
}

/** numpy.array_split sizes: the first N mod G parts get one extra row. */
function splitSizes(n: number, groups: number): number[] {
  const base = Math.floor(n / groups);
  return Array.from({ length: groups }, (_, g) => base + (g < n % groups ? 1 : 0));
}

class DtfdMilAggregator extends Module implements Aggregator {
  readonly embeddingDim: number;
  readonly gradientClipGroups: readonly GradientClipGroup[];
  /** Both attention output biases only shift scores before a softmax over instances: zero gradient. */
  readonly inertParameters: readonly string[] = ['attention.attention_weights.bias', 'att_classifier.attention.attention_weights.bias'];
  /** Milkit's keys already are DTFD's saved ones (the linear heads' `fc` level matches Classifier_1fc's). */
  readonly torchNaming: TorchNaming = {};
  private readonly dimReduction: Linear;
  private readonly attention: AttentionScorer;
  private readonly classifier: Classifier;
  private readonly tierTwo: TierTwo;

  constructor(private readonly options: DtfdMilOptions, ctx: ModelContext) {
    super();
    this.embeddingDim = options.embedDim;
    this.dimReduction = this.addModule('dim_reduction.fc1', new Linear(ctx.inputDim, options.embedDim, ctx.rng.fork('dim_reduction'), { bias: false, init: options.init }));
    this.attention = this.addModule('attention', new AttentionScorer(gatedAttention(options.embedDim, options.attnDim, options.init), ctx.rng.fork('attention')));
    this.classifier = this.addModule('classifier', ctx.makeClassifier(options.embedDim, ctx.numClasses, ctx.rng.fork('classifier')));
    this.tierTwo = this.addModule('att_classifier', new TierTwo(options, ctx, ctx.rng.fork('att_classifier')));
    const norm = options.gradClipNorm;
    this.gradientClipGroups = norm > 0 ? ['dim_reduction.', 'attention.', 'classifier.', 'att_classifier.'].map((prefix) => ({ prefixes: [prefix], maxNorm: norm })) : [];
  }

  /**
   * [G, N] 0/1 pseudo-bag membership of this forward: a fresh shuffle split like numpy.array_split, or the
   * injected permutation (parity tests). Pseudo-bags stay masks over the instances in their original order, so no
   * row is gathered (a gather of the [N, D] bag costs more than the tier-1 network on wasm).
   */
  private membership(n: number, groups: number, io: ForwardIO): tf.Tensor2D {
    if (groups === 1) return tf.ones([1, n]); // one pseudo-bag (tf.oneHot needs depth ≥ 2)
    const sizes = splitSizes(n, groups);
    const groupAtPosition = sizes.flatMap((size, g) => Array<number>(size).fill(g)); // shuffled position → pseudo-bag
    const injected = io.injected?.permutation;
    if (injected) {
      // instance perm[j] sits at position j: scatter the position's group to the instance, on device.
      const groupOf = tf.scatterND(tf.reshape(tf.cast(injected, 'int32'), [n, 1]), tf.tensor1d(groupAtPosition, 'int32'), [n]); // [N]
      return tf.transpose(tf.cast(tf.oneHot(groupOf as tf.Tensor1D, groups), 'float32')) as tf.Tensor2D;
    }
    const perm = io.rng.shuffle(Array.from({ length: n }, (_, i) => i));
    const groupOf = new Int32Array(n);
    perm.forEach((instance, position) => (groupOf[instance] = groupAtPosition[position] as number));
    return tf.transpose(tf.cast(tf.oneHot(tf.tensor1d(groupOf, 'int32'), groups), 'float32')) as tf.Tensor2D; // [G, N]
  }

  forward(bag: Bag, io: ForwardIO): AggregatorOutput {
    return tf.tidy(() => {
      const n = bag.features.shape[0];
      const groups = Math.min(this.options.numGroups, n);
      const member = this.membership(n, groups, io); // [G, N] constant
      const h = tf.relu(this.dimReduction.forward(bag.features)) as tf.Tensor2D; // [N, E]  DimReduction
      const scores = this.attention.forward(h, io); // [N, 1]  raw tier-1 attention
      // Softmax inside each pseudo-bag: non-members get -1e9, whose exp is exactly 0 in float32.
      const masked = tf.add(tf.transpose(scores), tf.mul(tf.sub(member, 1), 1e9)); // [G, N]
      const attention = tf.softmax(masked) as tf.Tensor2D; // [G, N]  row g: a_g on its members, 0 elsewhere
      const pooled = tf.matMul(attention, h) as tf.Tensor2D; // [G, E]  f_g = Σ_{n∈g} a_n h_n
      const tierOneLogits = this.classifier.forward(dropout(pooled, this.options.tier1Dropout, io.training, io.rng) as tf.Tensor2D, io); // [G, C]
      const attentionAll = tf.sum(attention, 0, true) as tf.Tensor2D; // [1, N]  each instance's weight in its pseudo-bag
      const distilled = this.distill(h, attentionAll, pooled, member); // [M, E]  detached
      const tierTwoScores = tf.softmax(tf.transpose(this.tierTwo.attention.forward(distilled, io))) as tf.Tensor2D; // [1, M]
      const z = tf.matMul(tierTwoScores, distilled) as tf.Tensor2D; // [1, E]
      const logits = this.tierTwo.classifier.forward(dropout(z, this.options.tier2Dropout, io.training, io.rng) as tf.Tensor2D, io); // [1, C]
      return { embedding: z, logits, instanceScores: attentionAll, extras: { pseudoBagLogits: tierOneLogits } };
    });
  }

  /** Distilled features [M, E], cut from tier 1's gradient (docs/methods/dtfd-mil.md#training-step). */
  private distill(h: tf.Tensor2D, attentionAll: tf.Tensor2D, pooled: tf.Tensor2D, member: tf.Tensor2D): tf.Tensor2D {
    if (this.options.distill === 'afs') return constantOf((f) => tf.clone(f), pooled) as tf.Tensor2D; // [G, E]
    const perGroup = Math.floor(this.options.totalInstance / this.options.numGroups);
    const withMin = this.options.distill === 'maxmins';
    const [groups, n] = member.shape;
    const select = constantOf((hh, aa, mm) => {
      // Instance CAM: the tier-1 head on a_n h_n minus its value at 0 (= W a_n h_n for a linear head: weight, no bias).
      const evalIo: ForwardIO = { training: false, rng: new Rng('dtfd-cam') }; // no dropout in the CAM (weights only)
      const weighted = tf.mul(tf.transpose(aa), hh) as tf.Tensor2D; // [N, E]
      const cam = tf.sub(this.classifier.forward(weighted, evalIo), this.classifier.forward(tf.zeros([1, hh.shape[1] as number]), evalIo)); // [N, C]
      const probs = tf.softmax(cam); // [N, C]
      const lastClass = tf.reshape(tf.slice(probs, [0, (probs.shape[1] as number) - 1], [-1, 1]), [1, n]); // [1, N]  rank by class C-1, in [0, 1]
      const outside = tf.mul(tf.sub(1, mm), 2); // [G, N]  2 off the pseudo-bag: pushes non-members below every member
      const k = Math.min(perGroup, Math.floor(n / groups)); // the smallest pseudo-bag has ⌊N/G⌋ instances
      const top = tf.topk(tf.sub(lastClass, outside), k).indices; // [G, k]
      const picked = withMin ? tf.concat([top, tf.topk(tf.neg(tf.add(lastClass, outside)), k).indices], 1) : top; // [G, k or 2k]
      return selectionMatrix(tf.reshape(picked, [-1]) as tf.Tensor1D, n); // [M, N]
    }, h, attentionAll, member) as tf.Tensor2D;
    return constantOf((hh, sel) => tf.matMul(sel, hh), h, select) as tf.Tensor2D; // [M, E]
  }
}

export default definePlugin({
  kind: 'aggregator',
  name: 'dtfd-mil',
  summary: 'DTFD-MIL: pseudo-bag tier-1 attention MIL with distilled features (AFS / MaxS / MaxMinS) pooled by tier 2',
  paper: { cite: 'Zhang et al., DTFD-MIL: Double-Tier Feature Distillation Multiple Instance Learning for Histopathology Whole Slide Image Classification, CVPR 2022', arxiv: '2203.12081' },
  options: DtfdMilOptions,
  capabilities: { instanceScores: true, permutationInvariant: false, ownsClassifier: true, provides: ['pseudoBagLogits'], batchedSteps: false },
  create: (options, ctx) => new DtfdMilAggregator(options, ctx),
});
