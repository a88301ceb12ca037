/**
 * Attention-based MIL pooling (aggregator/abmil)
 * Paper: M. Ilse, J. M. Tomczak, M. Welling, "Attention-based Deep Multiple Instance Learning", ICML 2018. arXiv:1802.04712
 * Implements: Eq. 8 plain attention a_n = w^T act(V h_n), Eq. 9 gated attention a_n = w^T (tanh(V h_n) ⊙ sigm(U h_n)),
 *   softmax over the N instances and the weighted sum z = Σ_n a_n h_n (Eq. 7); docs/methods/abmil.md#attention-pooling, docs/methods/abmil.md#abmil-on-wsi-features
 * Symbols: x [N,D] instances · h [N,E] instance embeddings (projection W, D→E) · V, U [E,L] · w [L,1] ·
 *   a [1,N] attention (softmax over N) · z [1,E] slide embedding
 * Choices: the WSI form of docs/methods/abmil.md#abmil-on-wsi-features: a ReLU projection D→E (Ilse's instance network is replaced by pre-extracted
 *   features; `projectDim: 0` feeds x directly), then Ilse's gated operator (L = 128). Dropout (0.25) on h as the
 *   WSI baselines use; Ilse has none. MHIM's baseline = `gated: false, attnActivation: relu, attnBias: false`.
 *   Default PyTorch init (docs/methods/conventions.md#initialisations). Torch keys follow Ilse's model.py: feature_extractor_part2.0 (projection),
 *   attention_V.0 / attention_U.0 / attention_w (gated) or attention.0 / attention.2 (plain), classifier.0 (the
 *   `model.classifier` slot).
 * Checked against: test/reference/abmil.py → test/reference/fixtures/abmil-*.safetensors
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, Module, type Aggregator, type AggregatorOutput, type AggregatorParts, type Bag, type ForwardIO, type ModelContext, type TorchNaming } from 'milkit';
import { activate, Linear, dropout, attentionScores, buildAttentionLayers, softmaxOverInstances, type AttentionLayers } from 'milkit/nn';

export const AbmilOptions = z.strictObject({
  projectDim: z.int().min(0).default(512).describe('E: width of the ReLU projection of the features (0 = attend over the raw features)'),
  attnDim: z.int().positive().default(128).describe('L: hidden width of the attention network (V, U)'),
  gated: z.boolean().default(true).describe('gated attention (Eq. 9) instead of plain (Eq. 8)'),
  attnActivation: z.enum(['tanh', 'relu', 'gelu']).default('tanh').describe('non-linearity of the V branch (tanh in Ilse; relu in MHIM-MIL\'s baseline)'),
  attnBias: z.boolean().default(true).describe('bias terms in V, U and w'),
  dropout: z.number().min(0).lt(1).default(0.25).describe('dropout on the projected instances h while training'),
  attnDropout: z.number().min(0).lt(1).default(0).describe('dropout after act(V h) and sigm(U h) while training (CLAM-style ABMIL: 0.25)'),
  init: z.enum(['torch-default', 'xavier-normal', 'kaiming-normal', 'orthogonal']).default('torch-default').describe('weight initialisation of every layer (non-default schemes start biases at 0)'),
  projectActivation: z.enum(['relu', 'gelu']).default('relu').describe('activation of the projection (MHIM-MIL v2\'s baseline: gelu)'),
});
export type AbmilOptions = z.output<typeof AbmilOptions>;

class AbmilAggregator extends Module implements Aggregator {
  readonly embeddingDim: number;
  readonly torchNaming: TorchNaming = { classifierPrefix: 'classifier.0', renames: [['^classifier\\.0\\.fc\\.', 'classifier.0.']] };
  /** w's bias only shifts every score before the softmax over instances: its gradient is always zero. */
  readonly inertParameters: readonly string[];
  private readonly projection: Linear | undefined;
  private readonly attention: AttentionLayers;

  constructor(private readonly options: AbmilOptions, ctx: ModelContext) {
    super();
    const { projectDim, attnDim, gated, init } = options;
    this.projection = projectDim > 0 ? this.addModule('feature_extractor_part2.0', new Linear(ctx.inputDim, projectDim, ctx.rng.fork('projection'), { init })) : undefined;
    this.embeddingDim = projectDim > 0 ? projectDim : ctx.inputDim;
    const keys = gated ? { first: 'attention_V.0', gate: 'attention_U.0', out: 'attention_w' } : { first: 'attention.0', gate: '', out: 'attention.2' };
    const layers = buildAttentionLayers({
      inDim: this.embeddingDim, hiddenDim: attnDim, branches: 1, gated, activation: options.attnActivation,
      bias: options.attnBias, dropout: options.attnDropout, init, keys,
    }, ctx.rng.fork('attention'));
    this.inertParameters = options.attnBias ? [`${keys.out}.bias`] : [];
    // Ilse's model keeps the attention layers at the top level of its state_dict.
    this.attention = {
      v: this.addModule(keys.first, layers.v),
      u: layers.u ? this.addModule(keys.gate, layers.u) : undefined,
      w: this.addModule(keys.out, layers.w),
    };
  }

  /** The forward split at the projected instances h (capability `parts`): a strategy may mask or add rows of h. */
  readonly parts: AggregatorParts = {
    project: (bag, io) => tf.tidy(() => (this.projection
      ? (dropout(activate(this.projection.forward(bag.features), this.options.projectActivation), this.options.dropout, io.training, io.rng) as tf.Tensor2D)
      : tf.clone(bag.features))), // [N, E]
    pool: (h, _bag, io) => tf.tidy(() => {
      const a = softmaxOverInstances(attentionScores(this.attention, { activation: this.options.attnActivation, dropout: this.options.attnDropout }, h, io)); // [1, M]  Eq. 7-9, softmax over rows
      const z = tf.matMul(a, h) as tf.Tensor2D; // [1, E]  z = Σ a_n h_n
      return { embedding: z, instanceScores: a };
    }),
  };

  forward(bag: Bag, io: ForwardIO): AggregatorOutput {
    return tf.tidy(() => {
      const h = this.parts.project(bag, io); // [N, E]
      return { ...this.parts.pool(h, bag, io) };
    });
  }
}

export default definePlugin({
  kind: 'aggregator',
  name: 'abmil',
  summary: 'attention-based MIL pooling (gated or plain attention over a ReLU projection)',
  paper: { cite: 'Ilse, Tomczak, Welling, Attention-based Deep Multiple Instance Learning, ICML 2018', arxiv: '1802.04712' },
  options: AbmilOptions,
  capabilities: { instanceScores: true, permutationInvariant: true, parts: true },
  create: (options, ctx) => new AbmilAggregator(options, ctx),
});
