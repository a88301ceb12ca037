// What model-part plugins (aggregator, classifier, prescreener) receive and return.
import type * as tf from '@tensorflow/tfjs';
import type { Module } from '../../core/nn/module.js';
import type { Rng } from '../../core/runtime/random.js';
import type { Logger } from '../../core/logger.js';
import type { LabelHierarchy } from './data.js';

/**
 * Well-known bag views (per-instance tensors beside the features). Datasets declare the views they provide
 * (capability `views`), plugins and strategies the views they need (capability `needsViews`); the engine builds
 * only the views some part of the run needs. Rows of every view are in the feature row order.
 *  - `coords`   [N, 2] patch coordinates (level-0 pixels)
 *  - `thumbs`   [N, 16, 16, 3] low-resolution thumbnails scaled to [0, 1] (HDMIL's LIPN)
 *  - `keepMask` [N, K] 0/1 per-branch selection from a pre-screener (HDMIL, docs/methods/hdmil.md#inference-modes): branch k pools only rows
 *    marked 1, with no further gating. Set by the engine's screened pass; read by aggregators with capability
 *    `branchKeepMask`, others never see it.
 *  - `images`   [N, H, W, C] raw instances (MNIST digits [N, 28, 28, 1], normalised) that a trainable encoder reads.
 */
export const BAG_VIEWS = { coords: 'coords', thumbs: 'thumbs', keepMask: 'keepMask', images: 'images' } as const;

/** One slide as tensors. Rows of every per-instance tensor are in the same order. */
export interface Bag {
  readonly slideId: string;
  /** [N, D] patch features. */
  readonly features: tf.Tensor2D;
  /** Slide label, given in training only (CLAM's instance loss needs it); never read at eval. */
  readonly label?: number;
  /**
   * Named per-instance views (see BAG_VIEWS); only the views the run needs are present. The engine always sets
   * it; hand-built bags (tests, benchmarks) may leave it out, meaning no views.
   */
  readonly views?: Readonly<Record<string, tf.Tensor>>;
}

/** A view of the bag as a rank-2 tensor, or undefined (coords, keepMask). */
export function bagView2d(bag: Bag, name: string): tf.Tensor2D | undefined {
  const view = bag.views?.[name];
  return view !== undefined && view.rank === 2 ? (view as tf.Tensor2D) : undefined;
}

/** Per-call state of a forward pass. */
export interface ForwardIO {
  readonly training: boolean;
  /** Stream for dropout masks and noise of this step. */
  readonly rng: Rng;
  /** Tests inject fixed noise draws by name (e.g. HDMIL's Gumbel samples) to compare with a reference. */
  readonly injected?: Readonly<Record<string, tf.Tensor>>;
}

/** Everything a model plugin needs at construction; dims come from the data, never from options. */
export interface ModelContext {
  /** D: feature width of the bags. */
  readonly inputDim: number;
  /** C: number of slide classes. */
  readonly numClasses: number;
  /** Output width asked of this part (classifiers: usually C; inside multi-branch aggregators: often 1). */
  readonly outputDim: number;
  readonly rng: Rng;
  readonly logger: Logger;
  /**
   * Builds the configured classifier plugin for [inDim → outDim]; aggregators that own their heads
   * (CLAM-MB per-class heads, DMIN's bag and instance classifiers) call it so `model.classifier` stays swappable.
   */
  readonly makeClassifier: (inDim: number, outDim: number, rng: Rng) => Classifier;
  /**
   * The data's label hierarchy (fine labels = the C classes, each under one coarse class), when it has one;
   * hierarchical aggregators (hmil) need it for their coarse heads.
   */
  readonly hierarchy?: LabelHierarchy;
}

/**
 * Well-known `extras` of hierarchical aggregators (docs/methods/hmil.md#network), read by hierarchical losses,
 * evaluation (coarse metrics) and heatmaps:
 *  - `coarseLogits`          [1, Kc] coarse-class logits (evaluation prefers them to summed fine probabilities)
 *  - `classEmbeddings`       [C, E] L2-normalised per-class bag embeddings (SupCon's views)
 *  - `coarseInstanceScores`  [Kc, N] coarse-level attention
 */
export const HIERARCHY_EXTRAS = { coarseLogits: 'coarseLogits', classEmbeddings: 'classEmbeddings', coarseInstanceScores: 'coarseInstanceScores' } as const;

/** Named outputs of a forward pass; loss plugins read what they declare they need. */
export interface AggregatorOutput {
  /** [K, E] slide embedding(s): K = 1 for single-branch methods, K = C for per-class branches. */
  readonly embedding: tf.Tensor2D;
  /** [1, C] class logits when the aggregator classifies itself (capability `ownsClassifier`). */
  readonly logits?: tf.Tensor2D;
  /** [K, N] normalised attention or instance scores, for interpretation and instance-level evaluation. */
  readonly instanceScores?: tf.Tensor2D;
  /** Extra named tensors for loss plugins (instance logits and targets, student logits, masks...). */
  readonly extras?: Readonly<Record<string, tf.Tensor>>;
}

export interface Aggregator extends Module {
  /** E: width of `embedding` rows. */
  readonly embeddingDim: number;
  forward(bag: Bag, io: ForwardIO): AggregatorOutput;
  /**
   * [N, K] raw per-branch gate logits (an instance is kept by branch k where the logit is > 0), with
   * dropout when `io.training`, never with noise: what a trainable pre-screener learns to reproduce
   * (capability `gateLogits`; HDMIL's DMIN attention logits S, docs/methods/hdmil.md#lipn-training).
   */
  gateLogits?(bag: Bag, io: ForwardIO): tf.Tensor2D;
  /** How this aggregator's tensors (and the classifier slot's) are named in the original PyTorch state_dict. */
  readonly torchNaming?: TorchNaming;
  /**
   * Parameter groups whose gradients the trainer clips separately, each to its own global norm, before the
   * optimizer step (DTFD-MIL clips DimReduction, tier-1 attention, tier-1 classifier and tier 2 at 5 each).
   */
  readonly gradientClipGroups?: readonly GradientClipGroup[];
  /**
   * Aggregator-relative keys of parameters that, with the current options, get zero gradient by construction for
   * (almost) every bag: the bias of an attention score layer followed by a softmax over instances (softmax is
   * shift-invariant), or a faithful quirk of the original such as TransMIL's layer-2 value-residual conv under the
   * pinned Nyström alignment. Documentation for users and the contract test's gradient check; nothing else reads it.
   */
  readonly inertParameters?: readonly string[];
  /**
   * The least memory (bytes) a step on N instances is known to need, measured on the wasm heap, where that is more
   * than a profile of the step's tensors shows (the allocator's fragmentation among many large buffers): the memory
   * budget raises its extrapolated estimate to it. undefined: the estimate alone (docs/runtime.md#memory-budget).
   */
  minimumPeakBytes?(n: number, mode: 'train' | 'eval'): number | undefined;
  /**
   * The forward pass split at the projected instance sequence (capability `parts`). `pool(project(bag))` must
   * equal `forward(bag)`; a strategy may change the rows of h in between (mask instances, insert tokens),
   * e.g. MHIM-MIL masks the projected sequence, its v2 inserts tokens before pooling.
   */
  readonly parts?: AggregatorParts;
}

/**
 * An aggregator's forward in two halves (capability `parts`). How to add it to an aggregator: split `forward`
 * at the first per-instance representation every later step reads (ABMIL: h after the projection) and expose
 * both halves; see docs/stages.md.
 */
export interface AggregatorParts {
  /** [N, D] features (and views) → [N, E'] projected instances h. */
  project(bag: Bag, io: ForwardIO): tf.Tensor2D;
  /** [M, E'] projected rows (any M: masked or with inserted tokens) → the aggregator output of the bag. */
  pool(h: tf.Tensor2D, bag: Bag, io: ForwardIO): AggregatorOutput;
}

/** Maps milkit state-dict keys to the original implementation's (checkpoint exchange, `milkit weights`). */
export interface TorchNaming {
  /** Torch key prefix of the `model.classifier` slot when the aggregator does not own it (TransMIL: `_fc2`). */
  readonly classifierPrefix?: string;
  /**
   * Regex rewrites `[pattern, replacement]` applied in order to every milkit key (classifier keys after the
   * prefix), e.g. `['^classifiers\\.fc\\.', 'classifiers.']` drops the linear head's `fc` level.
   */
  readonly renames?: ReadonlyArray<readonly [string, string]>;
  /**
   * Torch keys an imported checkpoint may lack (constant buffers only some configurations of the original carry,
   * e.g. CLAM's `instance_loss_fn.labels` exists with the SVM instance loss only); they keep their value.
   */
  readonly optionalOnImport?: readonly string[];
}

export interface GradientClipGroup {
  /** Aggregator-relative key prefixes of the parameters in the group (`dim_reduction.`, `att_classifier.`). */
  readonly prefixes: readonly string[];
  /** Clip the group's gradients to this global L2 norm (torch `clip_grad_norm_`). */
  readonly maxNorm: number;
}

export interface Classifier extends Module {
  /** [M, in] → [M, out] logits. */
  forward(x: tf.Tensor2D, io: ForwardIO): tf.Tensor2D;
}

/**
 * Trainable instance encoder (kind `encoder`): raw instances of one bag (a bag view such as `images`
 * [N, H, W, C]) → instance features [N, E] inside the model, trained end to end with the aggregator (its
 * parameters are the `encoder.` part of the state dict and the optimizer's). The aggregator then sees `E` as
 * its input width and the encoded rows as `bag.features`.
 */
export interface Encoder extends Module {
  /** E: width of the features it produces. */
  readonly outputDim: number;
  /** [N, ...instance shape] raw instances → [N, E] features. */
  forward(instances: tf.Tensor, io: ForwardIO): tf.Tensor2D;
}

export interface EncoderContext {
  readonly rng: Rng;
  readonly logger: Logger;
}

export interface EncoderCapabilities {
  /** The bag view holding the raw instances it encodes (see BAG_VIEWS); the dataset must provide it. */
  readonly inputView: string;
  /** Builds an encoder with weights (false for `none`, whose create returns null). */
  readonly trainable: boolean;
  /** The shape of one instance it accepts, when fixed (lenet-mnist: [28, 28, 1]); the contract suite feeds it. */
  readonly instanceShape?: readonly number[];
}

export const DEFAULT_ENCODER_CAPABILITIES: EncoderCapabilities = { inputView: 'images', trainable: true };

/** Pre-screener: low-resolution instances → one keep logit per instance (keep where logit > 0). */
export interface Prescreener extends Module {
  /** [N, 16, 16, 3] → [N] keep logits. */
  score(thumbs: tf.Tensor4D, io: ForwardIO): tf.Tensor1D;
  /**
   * [N, 16, 16, 3] → [N, K] per-branch keep logits (keep where > 0); `score` is their union. Pre-screeners
   * that mimic a per-class gate (LIPN) provide it, and trainable ones must.
   */
  branchScores?(thumbs: tf.Tensor4D, io: ForwardIO): tf.Tensor2D;
  /**
   * Training objective of a trainable pre-screener: its branch scores [N, K] against the aggregator's 0/1
   * gate targets [N, K] (HDMIL, docs/methods/hdmil.md#lipn-training: L1 between binary masks + squared keep-rate difference).
   * `gateLogits` [N, K] (the logits S the targets are 1[S > 0] of) may come along, gradient-free, for pre-screeners
   * that weigh the targets by the aggregator's attention (docs/methods/hdmil.md#screened-keep-sets).
   */
  imitationLoss?(scores: tf.Tensor2D, targets: tf.Tensor2D, gateLogits?: tf.Tensor2D): tf.Scalar;
}

export interface AggregatorCapabilities {
  /** Fills `instanceScores` (attention per instance). */
  readonly instanceScores: boolean;
  /** Output does not change when instances are permuted (false for TransMIL's positional conv). */
  readonly permutationInvariant: boolean;
  /** Returns `logits` itself, using `ctx.makeClassifier` for its heads. */
  readonly ownsClassifier: boolean;
  /** Names of the `extras` it can produce, so loss requirements are checked before training. */
  readonly provides: readonly string[];
  /** Bag views it reads (`coords`, `thumbs`, ...; see BAG_VIEWS); checked against the dataset's before training. */
  readonly needsViews: readonly string[];
  /** Implements `gateLogits` (its per-branch instance gates can supervise a trainable pre-screener). */
  readonly gateLogits: boolean;
  /** Honours the `keepMask` view per branch; without it a pre-screener's union selection is applied by slicing. */
  readonly branchKeepMask: boolean;
  /** Implements `parts` (projection and pooling as separate calls), so a training strategy can act in between. */
  readonly parts: boolean;
  /**
   * Its training is the mean of independent per-bag losses, so `train.bagsPerStep > 1` may batch bags into one
   * optimizer step. False for methods whose update is defined per bag (DTFD-MIL's tiered per-bag updates).
   */
  readonly batchedSteps: boolean;
  /**
   * `instanceScores` has one row per class (row c = the attention of class c's branch), so heatmaps can show
   * each class; hierarchical aggregators give the coarse level's rows as extra `coarseInstanceScores`.
   */
  readonly classwiseInstanceScores: boolean;
  /** Builds its heads from the data's label hierarchy (`ModelContext.hierarchy`); the preflight checks the data has one. */
  readonly needsHierarchy: boolean;
}

export const DEFAULT_AGGREGATOR_CAPABILITIES: AggregatorCapabilities = {
  instanceScores: false,
  permutationInvariant: true,
  ownsClassifier: false,
  provides: [],
  needsViews: [],
  gateLogits: false,
  branchKeepMask: false,
  parts: false,
  batchedSteps: true,
  classwiseInstanceScores: false,
  needsHierarchy: false,
};
