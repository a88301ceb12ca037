/**
 * HMIL, hierarchical class-wise attention (aggregator/hmil)
 * Paper: C. Jin et al., hierarchical multiple-instance learning for fine-grained whole-slide image classification,
 *   IEEE Transactions on Medical Imaging 2025 (docs/methods/hmil.md#network); structure read from the authors' code.
 * Implements: h1 = W2 ReLU(W1 x) (bottleneck), h2 = W3 h1 (reducer, no activation); gated class-wise attention on h1
 *   with Kc columns (coarse) and on h2 with Kf columns (fine), softmax over N; M1 = A1 h1, M2 = A2 h2; one shared
 *   Linear(→1) per level applied to every class row gives the coarse [1,Kc] and fine [1,Kf] logits; the rows of M2,
 *   L2-normalised, are the per-class embeddings SupCon contrasts (docs/methods/hmil.md#losses)
 * Symbols: x [N,D] · h1 [N,D'] (D' = featureDim, 1024) · h2 [N,R] (R = reducedDim, 256) · A1 [Kc,N] · A2 [Kf,N] ·
 *   M1 [Kc,D'] · M2 [Kf,R] · Kf = C (slide labels are the fine classes) · Kc from the data's hierarchy
 * Choices: fine logits are the model's logits (evaluation, fine metrics); coarse logits in extras `coarseLogits`;
 *   instanceScores = A2 (one row per fine class), extras `coarseInstanceScores` = A1; kaiming-normal weights and zero
 *   biases as the original; attention dropout 0 by default (the original's optional 0.25); state-dict names are ours
 *   (the original's module names were not recorded, so no torch renames are declared)
 * Checked against: test/reference/hmil.py → test/reference/fixtures/hmil.json (forward, losses, gradients)
 */
import * as tf from '@tensorflow/tfjs';
import { definePlugin, HIERARCHY_EXTRAS, Module, PluginError, z, type Aggregator, type AggregatorOutput, type Bag, type ForwardIO, type ModelContext } from 'milkit';
import { AttentionScorer, Linear, softmaxOverInstances } from 'milkit/nn';

export const HmilOptions = z.strictObject({
  bottleneckDim: z.int().positive().default(256).describe('width of the feature extractor\'s bottleneck (x → ReLU(W1 x))'),
  featureDim: z.int().positive().default(1024).describe('D\': width of h1, the feature extractor\'s output the coarse attention reads'),
  reducedDim: z.int().positive().default(256).describe('R: width of h2 = W3 h1, which the fine attention reads'),
  coarseAttnDim: z.int().positive().default(256).describe('hidden width of the coarse gated attention (on h1)'),
  fineAttnDim: z.int().positive().default(64).describe('hidden width of the fine gated attention (on h2)'),
  attnDropout: z.number().min(0).lt(1).default(0).describe('dropout after tanh and sigmoid in both attentions while training (the original\'s optional 0.25)'),
  init: z.enum(['kaiming-normal', 'torch-default', 'xavier-normal']).default('kaiming-normal').describe('weight initialisation of every Linear (non-default schemes start biases at 0); the original: kaiming-normal'),
});
export type HmilOptions = z.output<typeof HmilOptions>;

/** Shared per-level head: one Linear(width → 1) applied to each class row, giving [1, K] logits. */
function sharedHead(head: Linear, rows: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.transpose(head.forward(rows)) as tf.Tensor2D); // [K, 1] → [1, K]
}

/** Row-wise L2 normalisation with torch's F.normalize floor (‖x‖ clamped at 1e-12). */
function normaliseRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), 1e-12)) as tf.Tensor2D);
}

class HmilAggregator extends Module implements Aggregator {
  readonly embeddingDim: number;
  /**
   * Zero gradient by construction, kept because the original has them: each level's attention score bias (softmax
   * over instances is shift-invariant) and each shared head's bias (one bias added to every class's logit, which
   * every loss on those logits sees through a softmax over classes). Their gradients are rounding residue.
   */
  readonly inertParameters: readonly string[] = ['coarse_attention.attention_c.bias', 'fine_attention.attention_c.bias', 'coarse_classifier.bias', 'fine_classifier.bias'];
  private readonly extractIn: Linear;
  private readonly extractOut: Linear;
  private readonly reducer: Linear;
  private readonly coarseAttention: AttentionScorer;
  private readonly fineAttention: AttentionScorer;
  private readonly coarseHead: Linear;
  private readonly fineHead: Linear;

  constructor(options: HmilOptions, ctx: ModelContext) {
    super();
    const hierarchy = ctx.hierarchy;
    if (!hierarchy) {
      throw new PluginError('missing-hierarchy', 'aggregator "hmil" needs two-level labels, but the data has no label hierarchy.', {
        hint: 'Declare data.hierarchy (fine label → coarse label), give the slide table a coarse_label column, or use dataset synthetic-hierarchical.',
      });
    }
    const numCoarse = hierarchy.coarseNames.length;
    const { init } = options;
    const layer = (inDim: number, outDim: number, key: string): Linear => new Linear(inDim, outDim, ctx.rng.fork(key), { init, ...(init === 'torch-default' ? {} : { biasInit: 'zeros' as const }) });
    const attention = (inDim: number, hiddenDim: number, branches: number, key: string): AttentionScorer =>
      new AttentionScorer({ inDim, hiddenDim, branches, gated: true, activation: 'tanh', bias: true, dropout: options.attnDropout, init, keys: { first: 'attention_a', gate: 'attention_b', out: 'attention_c' } }, ctx.rng.fork(key));
    this.embeddingDim = options.reducedDim;
    this.extractIn = this.addModule('feature_extractor.0', layer(ctx.inputDim, options.bottleneckDim, 'feature_extractor.0'));
    this.extractOut = this.addModule('feature_extractor.2', layer(options.bottleneckDim, options.featureDim, 'feature_extractor.2'));
    this.reducer = this.addModule('feature_reducer', layer(options.featureDim, options.reducedDim, 'feature_reducer'));
    this.coarseAttention = this.addModule('coarse_attention', attention(options.featureDim, options.coarseAttnDim, numCoarse, 'coarse_attention'));
    this.fineAttention = this.addModule('fine_attention', attention(options.reducedDim, options.fineAttnDim, ctx.numClasses, 'fine_attention'));
    this.coarseHead = this.addModule('coarse_classifier', layer(options.featureDim, 1, 'coarse_classifier'));
    this.fineHead = this.addModule('fine_classifier', layer(options.reducedDim, 1, 'fine_classifier'));
  }

  forward(bag: Bag, io: ForwardIO): AggregatorOutput {
    return tf.tidy(() => {
      const h1 = this.extractOut.forward(tf.relu(this.extractIn.forward(bag.features)) as tf.Tensor2D); // [N, D']
      const h2 = this.reducer.forward(h1); // [N, R]
      const a1 = softmaxOverInstances(this.coarseAttention.forward(h1, io)); // [Kc, N]
      const a2 = softmaxOverInstances(this.fineAttention.forward(h2, io)); // [Kf, N]
      const m1 = tf.matMul(a1, h1) as tf.Tensor2D; // [Kc, D']  M1 = A1 h1
      const m2 = tf.matMul(a2, h2) as tf.Tensor2D; // [Kf, R]   M2 = A2 h2
      return {
        embedding: m2,
        logits: sharedHead(this.fineHead, m2),
        instanceScores: a2,
        extras: {
          [HIERARCHY_EXTRAS.coarseLogits]: sharedHead(this.coarseHead, m1),
          [HIERARCHY_EXTRAS.classEmbeddings]: normaliseRows(m2),
          [HIERARCHY_EXTRAS.coarseInstanceScores]: a1,
        },
      };
    });
  }
}

export default definePlugin({
  kind: 'aggregator',
  name: 'hmil',
  summary: 'HMIL: gated class-wise attention at a coarse and a fine label level, shared heads per level (needs a label hierarchy)',
  paper: { cite: 'Jin et al., Hierarchical multiple-instance learning for fine-grained whole-slide image classification, IEEE TMI 2025' },
  options: HmilOptions,
  capabilities: {
    instanceScores: true, permutationInvariant: true, ownsClassifier: true, classwiseInstanceScores: true, needsHierarchy: true,
    provides: [HIERARCHY_EXTRAS.coarseLogits, HIERARCHY_EXTRAS.classEmbeddings, HIERARCHY_EXTRAS.coarseInstanceScores],
  },
  create: (options, ctx) => new HmilAggregator(options, ctx),
});
