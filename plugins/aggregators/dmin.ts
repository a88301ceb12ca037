/**
 * Dynamic multi-instance network (aggregator/dmin)
 * Paper: J. Dong et al., "Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical
 *   Distillation Multi-Instance Learning" (HDMIL), CVPR 2025 — stage-1 network DMIN (class KAN_CLAM_MB_v4)
 * Implements: projection + gated attention with one column per class (docs/methods/hdmil.md#dmin-architecture); teacher softmax
 *   pooling, student pooling through a Gumbel-noised straight-through gate with ONE global normaliser over
 *   all instances and classes, union keep rate over classes 0/1 (docs/methods/hdmil.md#teacher-and-student, docs/methods/hdmil.md#keep-rate); CLAM instance selection for L_clu
 *   (docs/methods/hdmil.md#clustering-loss); eval path with per-class masked normalisation, S > 0 or a pre-screener's mask (docs/methods/hdmil.md#dmin-inference, docs/methods/hdmil.md#inference-modes),
 *   or with `screenedKeep: prescreener-and-gate` (not in HDMIL, default off) S > 0 on the rows the pre-screener kept
 * Symbols: x [N,D] features · h [N,H] projected · S [N,C] attention logits · A_tea, A_stu [C,N] ·
 *   E_tea, E_stu [C,H] bag embeddings · z_tea, z_stu [1,C] logits · g1, g2 [N,C] Gumbel draws · P [N,C] soft
 *   gate · M [N,C] straight-through gate · rate scalar
 * Choices: exponentials subtract the max over the exact normalisation set (global in training, per class at
 *   eval; docs/methods/conventions.md#float32-exponentials) — identical maths, finite in float32; an all-empty student selection (the reference divides
 *   0/0 and skips the step) yields a zero student embedding instead; bags with fewer than kSample instances
 *   use k = N (the reference errors); `selfDistill: false` computes the teacher only and emits no student
 *   extras, so the distillation and rate losses contribute nothing. `inputNorm: standardise` (not in HDMIL, default off)
 *   z-scores the inputs with pooled statistics of the training bags kept as buffers (docs/methods/hdmil.md#input-standardisation). Injected draws: `io.injected.gumbel1`
 *   and `io.injected.gumbel2` ([N,C]) replace the sampled Gumbel noise (parity tests).
 * Checked against: test/reference/hdmil_reference.py → test/reference/fixtures/hdmil-dmin.json (eval forward,
 *   one training step's loss and gradients with injected draws) and hdmil-dmin-tiny.safetensors (keys)
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import {
  BAG_VIEWS,
  bagView2d,
  definePlugin,
  Module,
  PluginError,
  type Aggregator,
  type AggregatorOutput,
  type Bag,
  type Classifier,
  type ForwardIO,
  type ModelContext,
} from 'milkit';
import { Linear, dropout, ModuleList, maskedColumnMax, nonZeroDivisor, stepGate, stopGradient, straightThroughGate, unionKeepRate } from 'milkit/nn';
import { INSTANCE_CLUSTERING_EXTRAS, instanceClusteringExtras } from './_shared/instance-clustering.js';

export const DminOptions = z.strictObject({
  hiddenDim: z.int().positive().default(512).describe('width of the projected instances h (512 in HDMIL)'),
  attnDim: z.int().positive().default(256).describe('width of the gated-attention branches (256 in HDMIL)'),
  dropout: z.number().min(0).lt(1).default(0.25).describe('dropout after the projection ReLU, the Tanh and the Sigmoid while training'),
  selfDistill: z.boolean().default(true).describe('run the student branch (dynamic gated pooling) next to the teacher; false = teacher only'),
  tau: z.number().positive().default(0.7).describe('τ: temperature of the noisy gate sigmoid'),
  gamma: z.number().gt(0).lt(1).default(0.5).describe('γ: threshold of the hard gate on the soft gate P'),
  rateOverAllClasses: z.boolean().default(false).describe('keep rate over the union of ALL class gates (AHDMIL); HDMIL uses classes 0 and 1 only'),
  kSample: z.int().min(0).default(32).describe('k: instances per side picked for the clustering loss (0 = no instance selection)'),
  subtyping: z.boolean().default(false).describe('also push the top-k of every other class to pseudo-label 0 (TCGA tasks) and divide by C'),
  init: z.enum(['xavier-normal', 'torch-default']).default('xavier-normal').describe('Linear init: xavier-normal weights with zero bias (HDMIL) or PyTorch default'),
  inputNorm: z.enum(['none', 'standardise']).default('none').describe(
    'none = features as given (HDMIL); standardise = z-score every feature dimension with the mean and variance of the training instances, accumulated while training and stored with the model (for encoders whose features barely vary between patches; docs/methods/hdmil.md#input-standardisation)',
  ),
  screenedKeep: z.enum(['prescreener', 'prescreener-and-gate']).default('prescreener').describe(
    'which instances a screened bag pools per class: prescreener = the pre-screener\'s per-class mask replaces the gate S > 0 (HDMIL); prescreener-and-gate = the pre-screener only decides which instances are read, and DMIN keeps those of them its own gate S > 0 keeps, so screened and all-instance inference agree exactly when the pre-screener keeps every instance the gates keep (docs/methods/hdmil.md#screened-keep-sets)',
  ),
});
export type DminOptions = z.output<typeof DminOptions>;

/** ln(1e-16): after the max shift m, the reference's "+ 1e-16" in the eval denominator becomes exp(ln(1e-16) - m). */
const LOG_EPSILON = Math.log(1e-16);

/** Gated attention of CLAM: (tanh(h Wa) ⊙ sigmoid(h Wb)) Wc, torch keys attention_a.0 / attention_b.0 / attention_c. */
class GatedAttention extends Module {
  readonly a: Linear;
  readonly b: Linear;
  readonly c: Linear;

  constructor(hiddenDim: number, attnDim: number, branches: number, ctx: ModelContext, init: DminOptions['init']) {
    super();
    this.a = this.addModule('attention_a', new ModuleList([new Linear(hiddenDim, attnDim, ctx.rng.fork('attention_a'), { init })])).at(0);
    this.b = this.addModule('attention_b', new ModuleList([new Linear(hiddenDim, attnDim, ctx.rng.fork('attention_b'), { init })])).at(0);
    this.c = this.addModule('attention_c', new Linear(attnDim, branches, ctx.rng.fork('attention_c'), { init }));
  }
}

/**
 * Per-dimension z-scoring with statistics of the training instances (docs/methods/hdmil.md#input-standardisation):
 * every training forward merges its bag's per-dimension mean and (biased) variance into the pooled moments of the
 * bags seen (each bag weighs the same; a cumulative average like torch's BatchNorm with momentum=None, no affine
 * parameters); every forward (training and
 * evaluation) normalises with the accumulated statistics, so an instance's value never depends on which other
 * instances share its bag — screened bags (a subset) see the same inputs as full ones.
 */
class InputStandardiser extends Module {
  readonly runningMean: tf.Variable;
  readonly runningVar: tf.Variable;
  readonly bagsTracked: tf.Variable;

  constructor(dim: number) {
    super();
    this.runningMean = this.addBuffer('running_mean', tf.zeros([dim]));
    this.runningVar = this.addBuffer('running_var', tf.ones([dim]));
    this.bagsTracked = this.addBuffer('num_batches_tracked', tf.scalar(0, 'int32'));
  }

  /** Adds one bag's statistics to the cumulative average (no gradient). */
  update(x: tf.Tensor2D): void {
    tf.tidy(() => {
      const { mean, variance } = tf.moments(stopGradient(x), 0); // [D], [D]
      const seen = this.bagsTracked.dataSync()[0] as number;
      const w = 1 / (seen + 1); // cumulative average: the k-th bag weighs 1/k
      // Pooled variance of the bags seen (each bag weighted equally): the within-bag variances plus the spread of
      // the bag means (Chan et al.'s merge of two moments), so slide-to-slide differences count as variation too.
      const shift = tf.sub(mean, this.runningMean); // [D]
      const pooled = seen === 0 ? variance : tf.addN([tf.mul(this.runningVar, 1 - w), tf.mul(variance, w), tf.mul(tf.square(shift), w * (1 - w))]);
      this.runningMean.assign(tf.add(this.runningMean, tf.mul(shift, w)));
      this.runningVar.assign(pooled);
      this.bagsTracked.assign(tf.scalar(seen + 1, 'int32'));
    });
  }

  /** (x − μ) / √(σ² + ε); ε is far below the variances of real encoders (~1e-5 for a random-weight ResNet). */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.div(tf.sub(x, this.runningMean), tf.sqrt(tf.add(this.runningVar, 1e-10))) as tf.Tensor2D;
  }
}

/** Holds the buffer the reference's instance loss carries, so saved state_dicts load strictly in PyTorch. */
class InstanceLossLabels extends Module {
  constructor() {
    super();
    this.addBuffer('labels', tf.tensor1d([0, 1], 'int32'));
  }
}

export class DminAggregator extends Module implements Aggregator {
  readonly embeddingDim: number;
  /** CKA heads already carry HDMIL's keys; linear heads drop their `fc` level (CLAM-MB's `classifiers.<c>.weight`). */
  readonly torchNaming = { renames: [['^(instance_)?classifiers\\.(\\d+)\\.fc\\.', '$1classifiers.$2.']] as const };
  private readonly numClasses: number;
  private readonly projection: Linear;
  private readonly attention: GatedAttention;
  private readonly bagClassifiers: ModuleList<Classifier>;
  private readonly instanceClassifiers: ModuleList<Classifier>;
  private readonly inputNorm: InputStandardiser | undefined;

  constructor(private readonly options: DminOptions, ctx: ModelContext) {
    super();
    if (ctx.numClasses < 2) {
      throw new PluginError('invalid-class-count', `aggregator "dmin" needs at least 2 classes (got ${ctx.numClasses}).`, { hint: 'DMIN has one attention branch per class; use a dataset with two or more classes.' });
    }
    const { hiddenDim, attnDim, init } = options;
    this.numClasses = ctx.numClasses;
    this.embeddingDim = hiddenDim;
    // attention_net = Sequential(Linear, ReLU, Dropout, Gated): parameters live at indices 0 and 3.
    const projection = new Linear(ctx.inputDim, hiddenDim, ctx.rng.fork('attention_net.0'), { init });
    const attention = new GatedAttention(hiddenDim, attnDim, ctx.numClasses, ctx, init);
    this.addModule('attention_net', new ModuleList<Module>([projection, attention], [0, 3]));
    this.projection = projection;
    this.attention = attention;
    const classes = Array.from({ length: ctx.numClasses }, (_, c) => c);
    this.bagClassifiers = this.addModule('classifiers', new ModuleList(classes.map((c) => ctx.makeClassifier(hiddenDim, 1, ctx.rng.fork(`classifiers.${c}`)))));
    this.instanceClassifiers = this.addModule('instance_classifiers', new ModuleList(classes.map((c) => ctx.makeClassifier(hiddenDim, 2, ctx.rng.fork(`instance_classifiers.${c}`)))));
    this.addModule('instance_loss_fn', new InstanceLossLabels());
    // Registered last and only when asked, so default checkpoints keep exactly HDMIL's keys.
    this.inputNorm = options.inputNorm === 'standardise' ? this.addModule('input_norm', new InputStandardiser(ctx.inputDim)) : undefined;
  }

  /**
   * h [N,H] and S [N,C] (docs/methods/hdmil.md#dmin-architecture), dropout when training. `accumulate`: a training
   * forward of DMIN itself adds the bag to the input statistics; gate targets for LIPN (gateLogits) do not.
   */
  private attend(features: tf.Tensor2D, io: ForwardIO, accumulate: boolean): { h: tf.Tensor2D; s: tf.Tensor2D } {
    const p = this.options.dropout;
    if (this.inputNorm && accumulate && io.training) this.inputNorm.update(features);
    const x = this.inputNorm ? this.inputNorm.apply(features) : features; // [N, D]
    const h = dropout(tf.relu(this.projection.forward(x)), p, io.training, io.rng) as tf.Tensor2D; // [N, H]
    const a = dropout(tf.tanh(this.attention.a.forward(h)), p, io.training, io.rng); // [N, attn]
    const b = dropout(tf.sigmoid(this.attention.b.forward(h)), p, io.training, io.rng); // [N, attn]
    const s = this.attention.c.forward(tf.mul(a, b) as tf.Tensor2D); // [N, C]
    return { h, s };
  }

  /** z [1, C]: class c's bag classifier on row c of E. */
  private bagLogits(e: tf.Tensor2D, io: ForwardIO): tf.Tensor2D {
    const perClass = this.bagClassifiers.items.map((classifier, c) => classifier.forward(tf.slice(e, [c, 0], [1, -1]) as tf.Tensor2D, io)); // C × [1, 1]
    return tf.concat(perClass, 1) as tf.Tensor2D; // [1, C]
  }

  gateLogits(bag: Bag, io: ForwardIO): tf.Tensor2D {
    return tf.tidy(() => this.attend(bag.features, io, false).s); // [N, C]
  }

  forward(bag: Bag, io: ForwardIO): AggregatorOutput {
    return tf.tidy(() => {
      const { h, s } = this.attend(bag.features, io, true); // [N, H], [N, C]
      const out = io.training ? this.trainingPath(h, s, bag, io) : this.evalPath(h, s, bagView2d(bag, BAG_VIEWS.keepMask), io);
      return { ...out }; // a plain object literal is a TensorContainer for tidy
    });
  }

  /** docs/methods/hdmil.md#teacher-and-student: teacher and (optionally) student branches; docs/methods/hdmil.md#clustering-loss instance selection when the label is known. */
  private trainingPath(h: tf.Tensor2D, s: tf.Tensor2D, bag: Bag, io: ForwardIO): AggregatorOutput {
    const aTea = tf.softmax(tf.transpose(s)) as tf.Tensor2D; // [C, N]  softmax over n per class
    const eTea = tf.matMul(aTea, h) as tf.Tensor2D; // [C, H]
    const zTea = this.bagLogits(eTea, io); // [1, C]
    const extras: Record<string, tf.Tensor> = { attentionLogits: s, teacherEmbedding: eTea, teacherLogits: zTea };
    if (this.options.selfDistill) Object.assign(extras, this.studentBranch(h, s, io));
    if (bag.label !== undefined && this.options.kSample > 0) {
      // docs/methods/hdmil.md#clustering-loss: CLAM's selection on the teacher attention, through this class's instance classifier.
      const classify = (c: number, rows: tf.Tensor2D): tf.Tensor2D => this.instanceClassifiers.at(c).forward(rows, io); // [M_c, 2]
      Object.assign(extras, instanceClusteringExtras(aTea, h, bag.label, classify, { kSample: this.options.kSample, subtyping: this.options.subtyping, numClasses: this.numClasses }));
    }
    return { embedding: eTea, logits: zTea, instanceScores: aTea, extras };
  }

  private studentBranch(h: tf.Tensor2D, s: tf.Tensor2D, io: ForwardIO): Record<string, tf.Tensor> {
    const { tau, gamma } = this.options;
    const g1 = this.gumbel('gumbel1', s.shape, io); // [N, C]
    const g2 = this.gumbel('gumbel2', s.shape, io); // [N, C]
    const soft = tf.sigmoid(tf.div(tf.sub(tf.add(s, g1), g2), tau)) as tf.Tensor2D; // [N, C]  P = σ((S + g1 - g2)/τ)
    const gate = straightThroughGate(soft, gamma); // [N, C]  M: value H = 1[P > γ], gradient of P
    const shift = stopGradient(tf.max(s)); // scalar  global max over (n, c): the normaliser below is global
    const weights = tf.mul(tf.exp(tf.sub(s, shift)), gate); // [N, C]  W = exp(S) M (shifted)
    const total = tf.sum(weights); // Z: ONE sum over all n and c (trap: not per class)
    const aStu = tf.transpose(tf.div(weights, nonZeroDivisor(total))) as tf.Tensor2D; // [C, N]  rows need not sum to 1; empty selection → 0
    const eStu = tf.matMul(aStu, h) as tf.Tensor2D; // [C, H]
    const zStu = this.bagLogits(eStu, io); // [1, C]
    const keepRate = unionKeepRate(gate, this.options.rateOverAllClasses ? 'all' : 'first-two'); // scalar
    return { studentEmbedding: eStu, studentLogits: zStu, studentAttention: aStu, gateMask: gate, keepRate };
  }

  /** Standard Gumbel draws -log(-log U), or the injected ones. */
  private gumbel(name: 'gumbel1' | 'gumbel2', shape: [number, number], io: ForwardIO): tf.Tensor2D {
    const injected = io.injected?.[name];
    if (injected) {
      if (injected.shape.length !== 2 || injected.shape[0] !== shape[0] || injected.shape[1] !== shape[1]) {
        throw new PluginError('invalid-injected-noise', `aggregator "dmin": injected ${name} has shape [${injected.shape.join(', ')}], expected [${shape.join(', ')}].`, { hint: 'Inject one draw per instance and class.' });
      }
      return injected as tf.Tensor2D;
    }
    // U clipped away from 0 and 1 so both logarithms stay finite.
    const u = tf.clipByValue(tf.randomUniform(shape, 0, 1, 'float32', io.rng.seed()), 1e-20, 1 - 1e-7);
    return tf.neg(tf.log(tf.neg(tf.log(u)))) as tf.Tensor2D;
  }

  /**
   * K_c per class: the gate S > 0 on a full bag; on a screened bag (a keepMask view) the pre-screener's mask
   * (HDMIL) or, with `screenedKeep: prescreener-and-gate`, the gate restricted to the rows the pre-screener read
   * (any branch of the mask set), see docs/methods/hdmil.md#screened-keep-sets.
   */
  private keepSets(s: tf.Tensor2D, keepMask: tf.Tensor2D | undefined): tf.Tensor2D {
    if (!keepMask) return stepGate(s, 0) as tf.Tensor2D; // [N, C]
    if (this.options.screenedKeep === 'prescreener') return stepGate(keepMask, 0) as tf.Tensor2D; // [N, C]
    const read = stepGate(tf.max(keepMask, 1, true) as tf.Tensor2D, 0); // [N, 1]  kept by some branch of the pre-screener
    return tf.mul(stepGate(s, 0), read) as tf.Tensor2D; // [N, C]
  }

  /** docs/methods/hdmil.md#dmin-inference, docs/methods/hdmil.md#inference-modes: per class, softmax of S over the kept set only (S > 0, or the pre-screener's mask). */
  private evalPath(h: tf.Tensor2D, s: tf.Tensor2D, keepMask: tf.Tensor2D | undefined, io: ForwardIO): AggregatorOutput {
    const kept = this.keepSets(s, keepMask); // [N, C]  0/1  K_c
    const shift = maskedColumnMax(s, kept); // [1, C]  max of S over K_c (0 when K_c is empty), no gradient
    // Outside K_c the exponent is clamped to ≤ 0 so exp stays finite before the mask zeroes it.
    const numerator = tf.mul(tf.exp(tf.minimum(tf.sub(s, shift), 0)), kept); // [N, C]  exp(S - m) on K_c
    const epsilon = tf.exp(tf.sub(LOG_EPSILON, shift)); // [1, C]  1e-16 after the shift
    const denominator = tf.add(tf.sum(numerator, 0, true), epsilon); // [1, C]
    const a = tf.transpose(tf.div(numerator, denominator)) as tf.Tensor2D; // [C, N]  per-class (trap: not global)
    const e = tf.matMul(a, h) as tf.Tensor2D; // [C, H]  empty K_c → zero row
    const z = this.bagLogits(e, io); // [1, C]
    return { embedding: e, logits: z, instanceScores: a, extras: { attentionLogits: s, gateMask: kept } };
  }
}

export default definePlugin({
  kind: 'aggregator',
  name: 'dmin',
  summary: 'HDMIL dynamic multi-instance network: per-class gated attention, teacher/student self-distillation, binary instance gates',
  paper: { cite: 'Dong et al., Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical Distillation Multi-Instance Learning, CVPR 2025' },
  options: DminOptions,
  capabilities: {
    instanceScores: true,
    permutationInvariant: true,
    ownsClassifier: true,
    provides: [
      'attentionLogits', 'gateMask', 'teacherEmbedding', 'teacherLogits', 'studentEmbedding', 'studentLogits', 'studentAttention', 'keepRate',
      ...INSTANCE_CLUSTERING_EXTRAS,
    ],
    gateLogits: true,
    branchKeepMask: true,
  },
  create: (options, ctx) => new DminAggregator(options, ctx),
});
