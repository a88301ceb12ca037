/**
 * Transformer-based correlated MIL (aggregator/transmil)
 * Paper: Z. Shao, H. Bian, Y. Chen, Y. Wang, J. Zhang, X. Ji, Y. Zhang, "TransMIL: Transformer based Correlated
 *   Multiple Instance Learning for Whole Slide Image Classification", NeurIPS 2021. arXiv:2106.00908
 * Implements: Algorithm 1 (TPT module): fc1 projection, square padding by repeating the first tokens, class token,
 *   TransLayer x + Nyström-MSA(LN(x)), PPEG F + DW7(F) + DW5(F) + DW3(F) on the token grid, second TransLayer, LN,
 *   class token as slide embedding (docs/methods/transmil.md#forward-pass, docs/methods/transmil.md#nystrom-attention)
 * Symbols: x [N,D] · h [N,E] (E = 512) · side = ⌈√N⌉ · tokens [1+side²,E] · cls [1,E] slide embedding (to the
 *   `model.classifier` slot, torch `_fc2`) · Nyström: heads 8, dim_head E/8, m = 256 landmarks, 6 pinv iterations,
 *   value-residual conv 33×1
 * Choices: `nystromAlignment` picks the row alignment after Nyström's left padding: `pinned-0.0.9` (default; the
 *   nystrom-attention version TransMIL pins and its published numbers) keeps the first L rows, `fixed` (0.0.10+,
 *   MHIM-MIL) the last L. The three PPEG convolutions run as one 7×7 depthwise conv with the summed kernels and the
 *   identity at the centre (equal in exact arithmetic). Padding tokens stay in the sequence; only the class token is
 *   read; under the pinned alignment the class token (row 0) reads the output of a zero padding row, so layer 2's
 *   value-residual conv gets no gradient unless the padding is ≤ 16 rows (declared in `inertParameters`). PyTorch
 *   default init, class token N(0, 1). Dims are options so reference fixtures stay small. MHIM-MIL's variant
 *   (docs/methods/mhim-mil.md#networks): `projectActivation: gelu`, `projectDropout: 0.25`,
 *   `ppegPadding: inside` (no square padding; PPEG pads its own grid, ≥ 7 × 7, and drops the padding again),
 *   `nystromAlignment: fixed`. With `checkpointLayers` (default) each TransLayer runs in blocks of rows with its own gradient, which
 *   recomputes the blocks (milkit/nn chunkedTransLayer): the same numbers, and no [N, ·] intermediate of a layer is
 *   ever whole, which is what lets a training step at N = 50,000 fit wasm's 4 GB heap. Split at h for strategies (capability `parts`); the first layer's class-token attention
 *   per head is `extras.classTokenAttention`, its clipped head mean the instance scores.
 * Checked against: test/reference/transmil.py → test/reference/fixtures/transmil*.safetensors
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, Module, type Aggregator, type AggregatorOutput, type AggregatorParts, type Bag, type ForwardIO, type ModelContext, type TorchNaming } from 'milkit';
import type { Rng } from 'milkit';
import { activate, chunkedTransLayer, heapConcat, heapSlice, releaseDuringBackward, depthwiseConvSame, dropout, initBias, initWeight, type InitScheme, LayerNorm, Linear, NystromAttention, type NystromObserver, type NystromOptions } from 'milkit/nn';

export const TransmilOptions = z
  .strictObject({
    embedDim: z.int().positive().default(512).describe('E: token width (fc1 output, attention and PPEG channels)'),
    heads: z.int().positive().default(8).describe('attention heads (dim_head = embedDim / heads)'),
    landmarks: z.int().positive().default(256).describe('m: Nyström landmarks (TransMIL: embedDim / 2)'),
    pinvIterations: z.int().min(1).default(6).describe('iterations of the Moore-Penrose pseudo-inverse'),
    residualKernel: z.int().min(0).default(33).describe('kernel of the depthwise value-residual conv along the sequence (odd; 0 = none)'),
    attnDropout: z.number().min(0).lt(1).default(0.1).describe('dropout after the attention output projection while training'),
    nystromAlignment: z.enum(['pinned-0.0.9', 'fixed']).default('pinned-0.0.9').describe('rows kept after Nyström un-padding: first L (nystrom-attention 0.0.9, as TransMIL ran) or last L (0.0.10+)'),
    checkpointLayers: z.boolean().default(true).describe('recompute each TransLayer in the backward pass instead of keeping its activations (same numbers, ~1.3× compute, a fraction of the memory: wasm\'s 4 GB heap otherwise caps bags near 4,000 instances)'),
    init: z.enum(['torch-default', 'xavier-normal']).default('torch-default').describe('weight initialisation of Linear and conv layers (class token is always N(0, 1))'),
    projectActivation: z.enum(['relu', 'gelu']).default('relu').describe('activation of the fc1 projection (MHIM-MIL v2\'s variant: gelu)'),
    projectDropout: z.number().min(0).lt(1).default(0).describe('dropout on the projected instances while training (MHIM-MIL\'s variant: 0.25)'),
    ppegPadding: z.enum(['square', 'inside']).default('square').describe('square: pad the sequence to a square before layer 1 (TransMIL); inside: PPEG pads its own grid and removes the padding again (MHIM-MIL\'s variant)'),
    classAwareScores: z.boolean().default(false).describe('also return the first layer\'s class-token-weighted values through its output projection (extras.classAwareFeatures, MHIM-MIL v2 scoring)'),
  })
  .refine((o) => o.embedDim % o.heads === 0, { message: 'embedDim must be a multiple of heads', path: ['heads'] })
  .refine((o) => o.residualKernel === 0 || o.residualKernel % 2 === 1, { message: 'residualKernel must be odd (or 0)', path: ['residualKernel'] });
export type TransmilOptions = z.output<typeof TransmilOptions>;

/**
 * Bytes of wasm heap per instance of a training step at large N (E = 512): the heap after a step at N = 50,000
 * (2,228 MB, flat over the steps) divided by N, rounded up (BENCHMARKS.md, "TransMIL at large N"); the memory
 * budget's floor for TransMIL. From about 30,000 instances on the heap is close to proportional to N (at 78,000 it
 * was 0.2 % under N times this), so the floor estimates it there; the limit's 15 % of the ceiling is the margin.
 */
export const TRAIN_HEAP_PER_INSTANCE = 46_720;

/** TransLayer: x + Attn(LN(x)), no feed-forward block. */
class TransLayer extends Module {
  private readonly norm: LayerNorm;
  private readonly attn: NystromAttention;

  /** `last`: the layer right before the head, whose q, k and v the chunked backward pass may keep at no cost in peak memory. */
  constructor(nystrom: NystromOptions, rng: Rng, private readonly name: string, private readonly recompute: boolean, private readonly last = false) {
    super();
    this.norm = this.addModule('norm', new LayerNorm(nystrom.dim));
    this.attn = this.addModule('attn', new NystromAttention(nystrom, rng.fork('attn')));
  }

  /** `observer` sees the first layer's class-token attention (from the forward pass only). */
  forward(x: tf.Tensor2D, io: ForwardIO, observer?: NystromObserver): tf.Tensor2D {
    // A fixed-label stream: the same call draws the same dropout masks (the chunked layer draws them again in its backward).
    const stream = io.rng.fork(this.name);
    const attnIO: ForwardIO = { training: io.training, rng: stream.fork('call') };
    // Recomputed: the layer runs in blocks of rows and its backward recomputes them (chunked-translayer.ts), so no
    // [L, ·] intermediate of it is ever whole; the plain path keeps them all for tfjs' own gradient.
    if (this.recompute) return chunkedTransLayer(x, this.norm, this.attn, attnIO, observer, undefined, undefined, this.last);
    // LayerNorm in its own tidy: its statistics and centred copies are gone before the attention runs (large N).
    return tf.tidy(() => tf.add(x, this.attn.forward(tf.tidy(() => this.norm.forward(x)), attnIO, observer)) as tf.Tensor2D); // [L, E]
  }
}

/** PPEG: F + DW7(F) + DW5(F) + DW3(F) on the side × side token grid; the class token passes through. */
class PositionalEncoding extends Module {
  private readonly convs: Array<{ weight: tf.Variable; bias: tf.Variable; kernel: number }>;

  constructor(private readonly dim: number, init: InitScheme, rng: Rng) {
    super();
    this.convs = ([['proj', 7], ['proj1', 5], ['proj2', 3]] as const).map(([name, kernel]) => {
      // Depthwise weight [k, k, E, 1] (torch Conv2d(E, E, k, groups=E): [E, 1, k, k], perm [2, 3, 0, 1]) and bias [E].
      const torchWeight = initWeight(init, [dim, 1, kernel, kernel], rng.fork(`${name}.weight`));
      const weight = this.addParameter(`${name}.weight`, tf.tidy(() => tf.transpose(torchWeight, [2, 3, 0, 1])), { perm: [2, 3, 0, 1] });
      torchWeight.dispose();
      const bias = this.addParameter(`${name}.bias`, initBias(init, dim, kernel * kernel, rng.fork(`${name}.bias`)));
      return { weight, bias, kernel };
    });
  }

  /**
   * MHIM-MIL's variant: the instance tokens [n, E] padded inside PPEG (copies of the first side² − n tokens, then
   * zeros up to a 7 × 7 grid when side < 7), mixed, and the padding rows removed again.
   */
  forwardInside(tokens: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const n = tokens.shape[0] - 1;
      const side = Math.ceil(Math.sqrt(n));
      const grid = Math.max(side, 7);
      const instances = heapSlice(tokens, [1, 0], [-1, -1]); // [n, E]
      const copies = side * side - n;
      const parts: tf.Tensor[] = [heapSlice(tokens, [0, 0], [1, -1]), instances];
      if (copies > 0) parts.push(heapSlice(instances, [0, 0], [copies, -1]));
      if (grid * grid > side * side) parts.push(tf.zeros([grid * grid - side * side, this.dim]));
      const mixed = this.forward(heapConcat(parts, 0) as tf.Tensor2D, grid); // [1 + grid², E]
      return heapSlice(mixed, [0, 0], [1 + n, -1]) as tf.Tensor2D; // [1 + n, E]
    });
  }

  forward(tokens: tf.Tensor2D, side: number): tf.Tensor2D {
    return tf.tidy(() => {
      const cls = heapSlice(tokens, [0, 0], [1, -1]); // [1, E]
      const grid = tf.reshape(heapSlice(tokens, [1, 0], [-1, -1]), [1, side, side, this.dim]) as tf.Tensor4D; // [1, side, side, E] row-major
      // Σ of zero-padded kernels + identity tap = one 7×7 depthwise conv (all are stride 1, "same").
      const identity = tf.pad(tf.ones([1, 1, this.dim, 1]), [[3, 3], [3, 3], [0, 0], [0, 0]]); // [7, 7, E, 1]
      const kernel = this.convs.reduce<tf.Tensor>((sum, { weight, kernel: k }) => {
        const margin = (7 - k) / 2;
        return tf.add(sum, margin > 0 ? tf.pad(weight, [[margin, margin], [margin, margin], [0, 0], [0, 0]]) : weight);
      }, identity) as tf.Tensor4D; // [7, 7, E, 1]
      const bias = tf.addN(this.convs.map(({ bias: b }) => b)); // [E]
      const mixed = tf.add(depthwiseConvSame(grid, kernel), bias); // [1, side, side, E]
      return heapConcat([cls, tf.reshape(mixed, [side * side, this.dim])], 0) as tf.Tensor2D; // [1 + side², E]
    });
  }
}

class TransmilAggregator extends Module implements Aggregator {
  readonly embeddingDim: number;
  readonly torchNaming: TorchNaming = { classifierPrefix: '_fc2', renames: [['^_fc2\\.fc\\.', '_fc2.']] };
  readonly inertParameters: readonly string[];
  private readonly fc1: Linear;
  private readonly clsToken: tf.Variable;
  private readonly layer1: TransLayer;
  private readonly layer2: TransLayer;
  private readonly positional: PositionalEncoding;
  private readonly norm: LayerNorm;

  constructor(private readonly options: TransmilOptions, ctx: ModelContext) {
    super();
    const { embedDim, heads, init } = options;
    this.embeddingDim = embedDim;
    const nystrom: NystromOptions = {
      dim: embedDim, heads, dimHead: embedDim / heads, landmarks: options.landmarks, pinvIterations: options.pinvIterations,
      residualKernel: options.residualKernel, dropout: options.attnDropout, alignment: options.nystromAlignment, init,
    };
    this.clsToken = this.addParameter('cls_token', tf.tensor(ctx.rng.fork('cls_token').normalArray(embedDim), [1, 1, embedDim]));
    this.positional = this.addModule('pos_layer', new PositionalEncoding(embedDim, init, ctx.rng.fork('pos_layer')));
    this.fc1 = this.addModule('_fc1.0', new Linear(ctx.inputDim, embedDim, ctx.rng.fork('_fc1'), { init }));
    this.layer1 = this.addModule('layer1', new TransLayer(nystrom, ctx.rng.fork('layer1'), 'layer1', options.checkpointLayers));
    this.layer2 = this.addModule('layer2', new TransLayer(nystrom, ctx.rng.fork('layer2'), 'layer2', options.checkpointLayers, true));
    this.norm = this.addModule('norm', new LayerNorm(embedDim));
    // Pinned alignment: only the class token of layer 2 is read, and it sits on a zero padding row whose value
    // residual sums zeros whenever the padding exceeds half the kernel (all but a few sequence lengths).
    this.inertParameters = options.nystromAlignment === 'pinned-0.0.9' && options.residualKernel > 0 ? ['layer2.attn.res_conv.weight'] : [];
  }

  /**
   * The forward split at the projected instances (capability `parts`): h = dropout(act(fc1 x)); pool(h) pads,
   * runs both TransLayers around PPEG and reads the class token. pool also returns the first layer's class-token
   * attention per head over the instances (`extras.classTokenAttention` [heads, N], what MHIM-MIL v1 masks by,
   * docs/methods/mhim-mil.md#instance-scores) and its clipped, renormalised head mean as `instanceScores` [1, N].
   */
  readonly parts: AggregatorParts = {
    project: (bag, io) => tf.tidy(() => dropout(activate(this.fc1.forward(bag.features), this.options.projectActivation), this.options.projectDropout, io.training, io.rng.fork('project')) as tf.Tensor2D), // [N, E]
    pool: (h, _bag, io) => this.pool(h, io),
  };

  forward(bag: Bag, io: ForwardIO): AggregatorOutput {
    return tf.tidy(() => ({ ...this.pool(this.parts.project(bag, io), io) }));
  }

  /**
   * A training step's wasm heap with the row-chunked layers, per instance: at N = 50,000 (D = 1,024, E = 512) the heap
   * reached TRAIN_HEAP_PER_INSTANCE · N, 5 % above the budget's straight line through its small probes (the allocator's
   * fragmentation among the [N, ·] buffers, which a profile of the tensors does not see). Scaled with E, the width of
   * almost every per-instance tensor of the step. Only for the wasm heap (other backends' limits are the machine's).
   */
  minimumPeakBytes(n: number, mode: 'train' | 'eval'): number | undefined {
    if (mode !== 'train' || !this.options.checkpointLayers || tf.getBackend() !== 'wasm') return undefined;
    return n * TRAIN_HEAP_PER_INSTANCE * (this.embeddingDim / 512);
  }

  private pool(h: tf.Tensor2D, io: ForwardIO): AggregatorOutput {
    const observed: { attention?: tf.Tensor2D; weighted?: tf.Tensor2D } = {};
    // The observer's tensors are kept past the layer's scope and handed back to this scope (cloned, then freed).
    const observer: NystromObserver = {
      row: 0, weightedValues: this.options.classAwareScores,
      take: (attention, weighted) => {
        observed.attention = tf.keep(attention);
        if (weighted) observed.weighted = tf.keep(weighted);
      },
    };
    try {
      return tf.tidy(() => {
        const n = h.shape[0];
        const cls0 = tf.reshape(this.clsToken, [1, this.embeddingDim]);
        let embedding: tf.Tensor2D;
        if (this.options.ppegPadding === 'square') {
          const side = Math.ceil(Math.sqrt(n));
          const extra = side * side - n;
          // Square padding repeats the FIRST `extra` tokens (copies, not zeros; docs/methods/transmil.md#forward-pass).
          const square = extra > 0 ? heapConcat([h, heapSlice(h, [0, 0], [extra, -1])], 0) : h; // [side², E]
          let tokens = heapConcat([cls0, square], 0) as tf.Tensor2D; // [1 + side², E]
          tokens = this.layer1.forward(tokens, io, observer); // [1 + side², E]
          tokens = this.positional.forward(tokens, side); // [1 + side², E]
          tokens = this.layer2.forward(tokens, io); // [1 + side², E]
          embedding = this.norm.forward(heapSlice(tokens, [0, 0], [1, -1]) as tf.Tensor2D); // [1, E]  LN is per token: only the class token is needed
        } else {
          let tokens = heapConcat([cls0, h], 0) as tf.Tensor2D; // [1 + N, E]  no padding before layer 1
          tokens = this.layer1.forward(tokens, io, observer); // [1 + N, E]
          tokens = this.positional.forwardInside(tokens); // [1 + N, E]
          tokens = this.layer2.forward(tokens, io); // [1 + N, E]
          embedding = this.norm.forward(heapSlice(tokens, [0, 0], [1, -1]) as tf.Tensor2D); // [1, E]
        }
        const out: { embedding: tf.Tensor2D; instanceScores?: tf.Tensor2D; extras?: Record<string, tf.Tensor> } = { embedding };
        const extras: Record<string, tf.Tensor> = {};
        if (observed.attention) {
          const perHead = heapSlice(observed.attention, [0, 1], [-1, n]) as tf.Tensor2D; // [heads, N]  instance columns only (raw, Nyström-approximate)
          extras['classTokenAttention'] = perHead;
          // Heatmaps read one distribution: the head mean, clipped at 0 (Nyström rows can dip below) and renormalised.
          const mean = tf.relu(tf.mean(perHead, 0, true)); // [1, N]
          out.instanceScores = tf.div(mean, tf.maximum(tf.sum(mean), 1e-12)) as tf.Tensor2D; // [1, N]
        }
        // Only with classAwareScores (MHIM-MIL v2's teacher), so not among `provides`, which every forward must produce.
        if (observed.weighted) extras['classAwareFeatures'] = heapSlice(observed.weighted, [1, 0], [n, -1]); // [N, E]
        out.extras = extras;
        // While training, the backward pass frees this forward's saved tensors and gradients (and those recorded
        // before it, fc1's) as it passes them, so the recomputed first layer does not meet them all alive.
        if (this.options.checkpointLayers) releaseDuringBackward();
        return out;
      });
    } finally {
      tf.dispose([observed.attention, observed.weighted].filter((t): t is tf.Tensor2D => t !== undefined));
    }
  }
}

export default definePlugin({
  kind: 'aggregator',
  name: 'transmil',
  summary: 'TransMIL: Nyström transformer layers with the PPEG positional encoder, class-token readout',
  paper: { cite: 'Shao et al., TransMIL: Transformer based Correlated Multiple Instance Learning for Whole Slide Image Classification, NeurIPS 2021', arxiv: '2106.00908' },
  options: TransmilOptions,
  capabilities: { instanceScores: true, permutationInvariant: false, parts: true, provides: ['classTokenAttention'] },
  create: (options, ctx) => new TransmilAggregator(options, ctx),
});
