/**
 * Masked hard instance mining (strategy/mhim)
 * Paper: W. Tang, S. Huang, X. Zhang, F. Zhou, Y. Zhang, B. Liu, "Multiple Instance Learning Framework with Masked
 *   Hard Instance Mining for Whole Slide Image Classification", ICCV 2023 (v1); W. Tang et al., "MHIM-MIL v2",
 *   IJCV 2025 (v2, with the Global Recycle Network)
 * Implements: a momentum teacher (an EMA copy of the student's aggregator and classifier, gradient-free, in train
 *   mode as the original code runs it) scores every instance; random, low-score and high-score masking (HAM,
 *   randomly-HAM, cosine decay of β_h) fused by union; the student pools the kept instances (v2: through the GRN);
 *   the consistency loss α·H(softmax(F_t/τ_t), softmax(F_s/τ_s)) on bag features; the teacher and the GRN bank
 *   updated after each optimizer step (docs/methods/mhim-mil.md#momentum-teacher, docs/methods/mhim-mil.md#masking,
 *   docs/methods/mhim-mil.md#grn, docs/methods/mhim-mil.md#consistency-loss)
 * Symbols: x [N,D] features · h [N,E] projected instances · s [H,N] teacher scores (H heads, 1 for AB-MIL) ·
 *   F_t, F_s [K,E] bag features (K = C for DSMIL's class embeddings) · G [k,E] GRN bank · m teacher rate
 * Choices: the student's input must come from an aggregator with capability `parts`; the teacher is the model's
 *   own aggregator and classifier run on the teacher's weights (swapped in off the gradient tape). The student's
 *   projection runs on the kept rows only (row-wise, so equal to projecting all then selecting, except for which
 *   dropout draws are used). Vote ties go to the lower index and kept rows stay in ascending order (documented
 *   deviations). The GRN bank update uses the clean gradient (after the backward). v2's class-aware score
 *   subtracts the classifier's output at 0, i.e. uses W u without bias (exact for the linear head). Student init
 *   (`studentInit`): the teacher takes the whole `from` checkpoint; the v1 student keeps only its projection (the
 *   tensors `parts.project` reads) and the v2 student none, the rest restarting from the fold's initial weights.
 *   Draws: streams `teacher`, `mask-random`, `mask-high`, `grn` are forks of the step stream; tests may inject
 *   permutations as io.injected `mhim.random`, `mhim.high`, `mhim.grn` (int32 [k] tensors).
 * Checked against: test/plugins/strategies/mhim.test.ts (hand-computed sets and updates),
 *   test/reference/mhim_reference.py → test/reference/fixtures/mhim-*.json
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, Module, PluginError, type AggregatorOutput, type AggregatorParts, type Bag, type ForwardIO, type ModelOutput, type Rng, type StageModel, type Strategy, type StrategyContext, type StrategyState, type StrategyStep } from 'milkit';
import { constantOf, dropout, LayerNorm, Linear } from 'milkit/nn';
import { cosineMomentum, decayedRatio, mhimMask, type MaskResult, type Permutation } from './_shared/mhim-masking.js';

export const MhimOptions = z.strictObject({
  version: z.enum(['v1', 'v2']).default('v1').describe('v1 (ICCV 2023): teacher attention scores; v2 (IJCV 2025): class-aware instance probabilities, optional GRN'),
  maskRatio: z.number().min(0).max(1).default(0).describe('β_r: fraction of instances masked uniformly at random'),
  maskRatioLow: z.number().min(0).max(1).default(0).describe('β_l: fraction of lowest-scored instances masked'),
  maskRatioHigh: z.number().min(0).max(1).default(0.01).describe('β_h: fraction of highest-scored instances masked (HAM)'),
  maskRatioHighRandom: z.number().gt(0).max(1).default(1).describe('β_hr: HAM masks a random β_hr of the ⌈N β_h / β_hr⌉ top candidates (1 = plain HAM)'),
  decayHigh: z.boolean().default(false).describe('cosine decay of β_h to 0 over the stage\'s iterations (v1 --mrh_sche)'),
  headFusion: z.enum(['vote', 'mean']).default('vote').describe('fusion of per-head scores (TransMIL): vote (published) or mean (ablation)'),
  alpha: z.number().min(0).default(0.1).describe('α: weight of the consistency loss'),
  tempTeacher: z.number().positive().default(0.1).describe('τ_t: teacher temperature of the consistency loss'),
  tempStudent: z.number().positive().default(1).describe('τ_s: student temperature of the consistency loss'),
  momentum: z.number().min(0).max(1).default(0.9999).describe('m: teacher EMA rate (v1 0.9999, v2 0.9997)'),
  momentumSchedule: z.enum(['constant', 'cosine']).default('constant').describe('cosine: m scheduled towards 1 over the stage (v1 --mm_sche)'),
  teacherMode: z.enum(['train', 'eval']).default('train').describe('teacher dropout on (train, as the original code) or off (eval, as the paper\'s pseudocode)'),
  grn: z.boolean().default(false).describe('v2 Global Recycle Network on the kept instances (training only)'),
  grnKeepRatio: z.number().gt(0).lt(1).default(0.8).describe('ρ: fraction of the kept instances passed on unchanged; the rest is recycled into the bank\'s tokens'),
  grnTokens: z.int().positive().default(5).describe('k: global tokens in the GRN bank'),
  grnMomentum: z.number().min(0).max(1).default(0.9999).describe('m_g: EMA rate of the GRN bank'),
  grnHeads: z.int().positive().default(8).describe('heads of the GRN cross-attention (embedding width must divide)'),
  grnDropout: z.number().min(0).lt(1).default(0.1).describe('GRN attention and output dropout while training'),
  studentInit: z.enum(['projection', 'none', 'checkpoint']).optional().describe(
    'what the student keeps of the `from` stage\'s checkpoint (the teacher always takes all of it): projection = its projection layer only, the rest restarts from the fold\'s initial weights (v1, --init_stu_type fc); none = all initial weights (v2); checkpoint = everything. Default: projection for v1, none for v2',
  ),
});
export type MhimOptions = z.output<typeof MhimOptions>;

/** The teacher's weights, named as the student's tensors (`aggregator.…`, `classifier.…`); never trained. */
export class TeacherWeights extends Module {
  readonly pairs: Array<{ readonly name: string; readonly student: tf.Variable; readonly teacher: tf.Variable }> = [];

  constructor(students: ReadonlyArray<readonly [string, tf.Variable]>) {
    super();
    for (const [name, student] of students) this.pairs.push({ name, student, teacher: this.addBuffer(name, tf.clone(student)) });
  }

  /** Teacher := student (the stage's starting weights: the `from` stage's checkpoint when the stage has one). */
  copyFromStudent(): void {
    for (const { student, teacher } of this.pairs) teacher.assign(student);
  }

  /** θ_t ← m θ_t + (1 − m) θ_s for every tensor. */
  ema(m: number): void {
    for (const { student, teacher } of this.pairs) {
      const next = tf.tidy(() => tf.add(tf.mul(teacher, m), tf.mul(student, 1 - m)));
      teacher.assign(next);
      next.dispose();
    }
  }

  /** `run` with the teacher's weights in the student's variables; restored afterwards. Call off the tape only. */
  withTeacherWeights<T>(run: () => T): T {
    const saved = this.pairs.map(({ student }) => tf.clone(student));
    try {
      for (const { student, teacher } of this.pairs) student.assign(teacher);
      return run();
    } finally {
      this.pairs.forEach(({ student }, i) => student.assign(saved[i] as tf.Tensor));
      tf.dispose(saved);
    }
  }
}

/** v2's Global Recycle Network: a bank of k tokens cross-attends to the recycled instances (docs/methods/mhim-mil.md#grn). */
export class GlobalRecycleNetwork extends Module {
  readonly bank: tf.Variable;
  private readonly norm: LayerNorm;
  private readonly toQ: Linear;
  private readonly toKv: Linear;
  private readonly toOut: Linear;

  constructor(private readonly dim: number, tokens: number, private readonly heads: number, private readonly rate: number, rng: Rng) {
    super();
    // U(-a, a), a = √(6 / (3·16·16 + E)): the original's bank initialisation (xavier-uniform of a 3×16×16 patch embedding).
    const a = Math.sqrt(6 / (3 * 16 * 16 + dim));
    this.bank = this.addBuffer('global_tokens', tf.tensor2d(rng.fork('bank').uniformArray(tokens * dim, -a, a), [tokens, dim]));
    this.norm = this.addModule('norm', new LayerNorm(dim));
    this.toQ = this.addModule('to_q', new Linear(dim, dim, rng.fork('to_q'), { bias: false, init: 'xavier-normal' }));
    this.toKv = this.addModule('to_kv', new Linear(dim, 2 * dim, rng.fork('to_kv'), { bias: false, init: 'xavier-normal' }));
    this.toOut = this.addModule('to_out', new Linear(dim, dim, rng.fork('to_out'), { init: 'xavier-normal' }));
  }

  /** Recycled rows x_m [R, E] → Z [k, E]: the bank's tokens attend (softmax over the R rows) to them. */
  forward(recycled: tf.Tensor2D, io: ForwardIO): tf.Tensor2D {
    return tf.tidy(() => {
      const k = this.bank.shape[0] as number;
      const rows = recycled.shape[0];
      const dimHead = this.dim / this.heads;
      const split = (x: tf.Tensor2D, length: number): tf.Tensor3D => tf.transpose(tf.reshape(x, [length, this.heads, dimHead]), [1, 0, 2]) as tf.Tensor3D; // [H, L, d]
      const q = split(this.toQ.forward(this.norm.forward(this.bank as tf.Tensor2D)), k); // [H, k, d]
      const kv = this.toKv.forward(this.norm.forward(recycled)); // [R, 2E]
      const keys = split(tf.slice(kv, [0, 0], [rows, this.dim]), rows); // [H, R, d]
      const values = split(tf.slice(kv, [0, this.dim], [rows, this.dim]), rows); // [H, R, d]
      const attn = dropout(tf.softmax(tf.mul(tf.matMul(q, keys, false, true), dimHead ** -0.5)), this.rate, io.training, io.rng.fork('attn')); // [H, k, R]
      const merged = tf.reshape(tf.transpose(tf.matMul(attn as tf.Tensor3D, values), [1, 0, 2]), [k, this.dim]) as tf.Tensor2D; // [k, E]
      return dropout(this.toOut.forward(merged), this.rate, io.training, io.rng.fork('out')) as tf.Tensor2D; // [k, E]  Z
    });
  }

  /** G ← m_g G + (1 − m_g) Z. */
  updateBank(z: tf.Tensor2D, m: number): void {
    const next = tf.tidy(() => tf.add(tf.mul(this.bank, m), tf.mul(z, 1 - m)));
    this.bank.assign(next);
    next.dispose();
  }
}

/**
 * L_con = mean over rows of −Σ_d softmax(F_t/τ_t)_d · log softmax(F_s/τ_s)_d; F_t is a constant (teacher, detached).
 * DSMIL's [C, E] class embeddings give one term per class row, averaged (docs/methods/mhim-mil.md#consistency-loss).
 */
export function consistencyLoss(teacher: tf.Tensor2D, student: tf.Tensor2D, tempTeacher: number, tempStudent: number): tf.Scalar {
  return tf.tidy(() => {
    const target = tf.softmax(tf.div(teacher, tempTeacher)); // [K, E]
    const logProb = tf.logSoftmax(tf.div(student, tempStudent)); // [K, E]
    return tf.mean(tf.neg(tf.sum(tf.mul(target, logProb), -1))) as tf.Scalar;
  });
}

/** A permutation of k from an injected int tensor (tests) or a seeded Fisher-Yates shuffle. */
function permutationOf(rng: Rng, injected: tf.Tensor | undefined): Permutation {
  return (k) => {
    if (injected) {
      const values = Array.from(injected.dataSync());
      if (values.length !== k) throw new PluginError('invalid-injection', `strategy "mhim": an injected permutation has ${values.length} entries, the step needs ${k}.`);
      return values;
    }
    const order = Array.from({ length: k }, (_, i) => i);
    for (let i = k - 1; i > 0; i -= 1) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    return order;
  };
}

/** The teacher's per-step outputs, host side (scores) and as a constant tensor (bag feature). */
interface TeacherPass {
  readonly feature: tf.Tensor2D;
  readonly scores: number[][];
}

class Mhim implements Strategy {
  readonly modules: Record<string, Module>;
  private readonly teacher: TeacherWeights;
  private readonly grn: GlobalRecycleNetwork | undefined;
  private readonly parts: AggregatorParts;
  /** Held for lossTerms and stepMetrics of the same step; freed at the next step or at dispose. */
  private last: { consistency: tf.Scalar; recycled: tf.Tensor2D | undefined; mask: MaskResult; ratioHigh: number; momentum: number } | undefined;
  private iterations = { stepsPerEpoch: 0, totalEpochs: 0 };
  private emaUpdates = 0;
  private readonly initialTensors: ReadonlyMap<string, tf.Tensor> | undefined;
  private readonly inputDim: number | undefined;
  private readonly probeRng: Rng;

  constructor(private readonly options: MhimOptions, ctx: StrategyContext) {
    const { aggregator, classifier, capabilities } = ctx.model;
    if (!capabilities.parts || !aggregator.parts) {
      throw new PluginError('mhim-unmet', 'strategy "mhim" masks the projected instances, which needs an aggregator with capability parts.', {
        hint: 'Use abmil, transmil or dsmil as the student (milkit plugins aggregator lists capabilities).',
      });
    }
    this.parts = aggregator.parts;
    this.initialTensors = ctx.initialTensors;
    this.inputDim = ctx.inputDim;
    this.probeRng = ctx.rng.fork('projection-probe');
    const students = [...aggregator.namedTensors('aggregator.'), ...(classifier ? classifier.namedTensors('classifier.') : [])].map(([name, entry]) => [name, entry.variable] as const);
    this.teacher = new TeacherWeights(students);
    this.modules = { teacher: this.teacher };
    if (options.grn) {
      if (options.version !== 'v2') throw new PluginError('invalid-option', 'strategy "mhim": grn is part of v2.', { hint: 'Set version: v2, or grn: false.' });
      const width = aggregator.embeddingDim;
      if (width % options.grnHeads !== 0) throw new PluginError('invalid-option', `strategy "mhim": grnHeads ${options.grnHeads} does not divide the embedding width ${width}.`, { hint: 'Choose grnHeads dividing the width (8 for 512).' });
      this.grn = new GlobalRecycleNetwork(width, options.grnTokens, options.grnHeads, options.grnDropout, ctx.rng.fork('grn'));
      this.modules['grn'] = this.grn;
    }
  }

  /**
   * The teacher takes the student's starting weights (the `from` checkpoint); then the student keeps of them only
   * what `studentInit` says and restarts the rest from the fold's initial weights (docs/methods/mhim-mil.md#momentum-teacher).
   * Without a `from` checkpoint there is nothing to undo.
   */
  init(): void {
    this.teacher.copyFromStudent();
    const keep = this.options.studentInit ?? (this.options.version === 'v1' ? 'projection' : 'none');
    const initial = this.initialTensors;
    if (keep === 'checkpoint' || !initial) return;
    const kept = keep === 'projection' ? this.projectionTensorNames() : new Set<string>();
    for (const { name, student } of this.teacher.pairs) {
      if (kept.has(name)) continue;
      const fresh = initial.get(name);
      if (!fresh) throw new PluginError('mhim-unmet', `strategy "mhim": the fold's initial weights have no tensor ${name} to restart the student from.`, { hint: 'Set studentInit: checkpoint.' });
      student.assign(fresh);
    }
  }

  /**
   * Names of the student tensors the projection reads (`parts.project`), found by which ones a probe's output
   * depends on, so every student's projection layer is found without naming it.
   */
  private projectionTensorNames(): Set<string> {
    if (this.inputDim === undefined) {
      throw new PluginError('mhim-unmet', 'strategy "mhim": studentInit projection needs the instance width, which the engine did not pass.', { hint: 'Set studentInit: checkpoint or none.' });
    }
    const width = this.inputDim;
    const trainable = this.teacher.pairs.filter(({ student }) => student.trainable);
    // A constant anchor keeps the probe connected to some variable when the projection has none (abmil projectDim 0).
    const anchor = tf.variable(tf.scalar(0), true);
    const features = tf.ones([2, width]) as tf.Tensor2D;
    try {
      const { value, grads } = tf.variableGrads(() => tf.add(tf.sum(this.parts.project({ slideId: 'projection-probe', features }, { training: false, rng: this.probeRng })), anchor) as tf.Scalar,
        [...trainable.map(({ student }) => student), anchor]);
      const names = new Set(trainable.filter(({ student }) => grads[student.name] !== undefined).map(({ name }) => name));
      tf.dispose([value, ...Object.values(grads)]);
      return names;
    } finally {
      tf.dispose([anchor, features]);
    }
  }

  /** The step's β_h after the optional decay. */
  ratioHigh(step: { readonly globalStep: number; readonly stepsPerEpoch: number; readonly totalEpochs: number }): number {
    return this.options.decayHigh ? decayedRatio(this.options.maskRatioHigh, step.globalStep, step.stepsPerEpoch * step.totalEpochs) : this.options.maskRatioHigh;
  }

  /** The teacher rate applied after optimizer step `globalStep`. */
  momentumAt(globalStep: number): number {
    const total = this.iterations.stepsPerEpoch * this.iterations.totalEpochs;
    return this.options.momentumSchedule === 'cosine' ? cosineMomentum(this.options.momentum, globalStep, total) : this.options.momentum;
  }

  /** Teacher forward on all N instances, off the gradient tape: its bag feature and instance scores [H, N]. */
  teacherPass(model: StageModel, bag: Bag, io: ForwardIO): TeacherPass {
    let featureShape: [number, number] = [0, 0];
    let scoreShape: [number, number] = [0, 0];
    const packed = constantOf((features) => this.teacher.withTeacherWeights(() => tf.tidy(() => {
      const input: Bag = { ...bag, features: features as tf.Tensor2D };
      const h = this.parts.project(input, io); // [N, E]
      const out = this.parts.pool(h, input, io);
      const scores = this.instanceScores(model, out, h, io); // [H, N]
      featureShape = out.embedding.shape as [number, number];
      scoreShape = scores.shape as [number, number];
      return tf.concat([tf.reshape(out.embedding, [-1]), tf.reshape(scores, [-1])]);
    })), bag.features);
    const featureSize = featureShape[0] * featureShape[1];
    const feature = tf.tidy(() => tf.reshape(tf.slice(packed, [0], [featureSize]), featureShape) as tf.Tensor2D);
    // Read outside tf.tidy: tidy walks a returned typed array value by value into a Set (slow at large N).
    const scoreSlice = tf.slice(packed, [featureSize], [-1]);
    const flat = scoreSlice.dataSync();
    scoreSlice.dispose();
    packed.dispose();
    const scores = Array.from({ length: scoreShape[0] }, (_, row) => Array.from(flat.subarray(row * scoreShape[1], (row + 1) * scoreShape[1])));
    return { feature, scores };
  }

  /** v1: attention (per head) or DSMIL's max instance logit; v2: class-aware instance probability (docs/methods/mhim-mil.md#instance-scores). */
  private instanceScores(model: StageModel, out: AggregatorOutput, h: tf.Tensor2D, io: ForwardIO): tf.Tensor2D {
    const instanceLogits = out.extras?.['instanceLogits'] as tf.Tensor2D | undefined;
    if (instanceLogits) return tf.max(instanceLogits, 1).reshape([1, -1]) as tf.Tensor2D; // DSMIL, both versions: max over classes
    if (this.options.version === 'v1') {
      const perHead = out.extras?.['classTokenAttention'] as tf.Tensor2D | undefined; // TransMIL: first-layer class-token attention per head
      if (perHead) return perHead;
      if (!out.instanceScores) throw new PluginError('mhim-unmet', 'strategy "mhim": the aggregator returned no instance scores to mask by.', { hint: 'Use abmil, transmil or dsmil.' });
      return out.instanceScores; // [H, N]
    }
    // v2: u_n = a_n h_n (or the aggregator's own class-aware features), logits W u_n, p_n = softmax over classes, score = max_c p_n.
    const own = out.extras?.['classAwareFeatures'] as tf.Tensor2D | undefined;
    if (!own && out.extras?.['classTokenAttention']) {
      throw new PluginError('mhim-unmet', 'strategy "mhim" v2 on transmil scores instances by the first layer\'s class-aware features, which transmil computes only with classAwareScores.', {
        hint: 'Set model.aggregator.classAwareScores: true.',
      });
    }
    let u: tf.Tensor2D;
    if (own) u = own;
    else {
      if (!out.instanceScores || out.instanceScores.shape[0] !== 1) throw new PluginError('mhim-unmet', 'strategy "mhim" v2 needs one attention row per instance (or class-aware features) from the aggregator.', { hint: 'Use abmil or transmil, or version: v1.' });
      u = tf.mul(tf.transpose(out.instanceScores), h) as tf.Tensor2D; // [N, E]
    }
    const classifier = model.classifier;
    if (!classifier) throw new PluginError('mhim-unmet', 'strategy "mhim" v2 scores instances with the classifier slot, which this aggregator replaces with its own heads.', { hint: 'Use version: v1 for this aggregator.' });
    const heads = classifier.forward(u, io); // [N, C] incl. the bias
    const bias = classifier.forward(tf.zeros([1, u.shape[1]]) as tf.Tensor2D, io); // [1, C] the head at 0
    const p = tf.softmax(tf.sub(heads, bias)); // [N, C]
    return tf.max(p, 1).reshape([1, -1]) as tf.Tensor2D; // [1, N]
  }

  forward(step: StrategyStep): ModelOutput {
    this.release();
    this.iterations = { stepsPerEpoch: step.stepsPerEpoch, totalEpochs: step.totalEpochs };
    const { model, bag } = step;
    const injected = step.io.injected ?? {};
    const teacherIo: ForwardIO = { training: this.options.teacherMode === 'train', rng: step.io.rng.fork('teacher') };
    const teacher = this.teacherPass(model, bag, teacherIo);
    const ratioHigh = this.ratioHigh(step);
    const mask = mhimMask(teacher.scores, {
      random: this.options.maskRatio, low: this.options.maskRatioLow, high: ratioHigh, highRandom: this.options.maskRatioHighRandom,
    }, {
      random: permutationOf(step.io.rng.fork('mask-random'), injected['mhim.random']),
      high: permutationOf(step.io.rng.fork('mask-high'), injected['mhim.high']),
    }, this.options.headFusion);
    const studentIo: ForwardIO = { ...step.io, training: step.isTraining('aggregator') };
    const rowsOf = (indices: readonly number[]): tf.Tensor2D => tf.tidy(() => this.parts.project({ ...bag, features: tf.gather(bag.features, tf.tensor1d(indices as number[], 'int32')) as tf.Tensor2D }, studentIo)); // [M, E]
    let recycled: tf.Tensor2D | undefined;
    // The student's intermediates are scoped here, so a call outside the trainer's tape (the contract's leak check,
    // a debugging script) leaves only what it returns and what it keeps on purpose (the recycled rows).
    const out = tf.tidy(() => {
      let input: tf.Tensor2D;
      const kept = mask.kept.length > 0 ? mask.kept : [0]; // never an empty bag (a ratio of 1 would otherwise mask everything)
      if (this.grn) {
        // Random split of the kept rows: the first ⌊N'ρ⌋ of a permutation pass (in that random order), the rest is recycled.
        const order = permutationOf(step.io.rng.fork('grn'), injected['mhim.grn'])(kept.length).map((i) => kept[i] as number);
        const passed = Math.floor(kept.length * this.options.grnKeepRatio);
        if (passed < kept.length && passed > 0) {
          const grnIo: ForwardIO = { training: step.isTraining('grn') || studentIo.training, rng: step.io.rng.fork('grn-forward') };
          const z = this.grn.forward(rowsOf(order.slice(passed)), grnIo); // [k, E]
          recycled = tf.keep(constantOf((t) => tf.clone(t), z) as tf.Tensor2D);
          input = tf.concat([rowsOf(order.slice(0, passed)), z], 0) as tf.Tensor2D;
        } else input = rowsOf(kept);
      } else input = rowsOf(kept);
      return model.classify(this.parts.pool(input, bag, studentIo), studentIo) as unknown as tf.TensorContainer;
    }) as unknown as ModelOutput;
    const consistency = tf.keep(tf.tidy(() => tf.mul(consistencyLoss(teacher.feature, out.embedding, this.options.tempTeacher, this.options.tempStudent), this.options.alpha) as tf.Scalar));
    teacher.feature.dispose();
    this.last = { consistency, recycled, mask, ratioHigh, momentum: this.momentumAt(step.globalStep) };
    return out;
  }

  lossTerms(): Record<string, tf.Scalar> {
    if (!this.last || this.options.alpha === 0) return {};
    return { consistency: tf.clone(this.last.consistency) };
  }

  stepMetrics(): Record<string, number> {
    if (!this.last) return {};
    const { mask, ratioHigh, momentum } = this.last;
    return {
      masked_random: mask.counts.random, masked_low: mask.counts.low, masked_high: mask.counts.high, masked: mask.masked.length,
      ratio_high: ratioHigh, teacher_rate: momentum,
    };
  }

  afterUpdate(info: { readonly globalStep: number }): void {
    this.teacher.ema(this.momentumAt(info.globalStep));
    this.emaUpdates += 1;
    // The bank moves after the backward (clean gradient; the original updates it before, see docs/methods/mhim-mil.md#grn).
    if (this.grn && this.last?.recycled) this.grn.updateBank(this.last.recycled, this.options.grnMomentum);
  }

  state(): StrategyState {
    return { emaUpdates: this.emaUpdates, stepsPerEpoch: this.iterations.stepsPerEpoch, totalEpochs: this.iterations.totalEpochs };
  }

  loadState(state: StrategyState): void {
    this.emaUpdates = typeof state['emaUpdates'] === 'number' ? state['emaUpdates'] : 0;
    this.iterations = {
      stepsPerEpoch: typeof state['stepsPerEpoch'] === 'number' ? state['stepsPerEpoch'] : 0,
      totalEpochs: typeof state['totalEpochs'] === 'number' ? state['totalEpochs'] : 0,
    };
  }

  dispose(): void {
    this.release();
  }

  private release(): void {
    if (this.last) tf.dispose([this.last.consistency, ...(this.last.recycled ? [this.last.recycled] : [])]);
    this.last = undefined;
  }
}

export default definePlugin({
  kind: 'strategy',
  name: 'mhim',
  summary: 'MHIM-MIL v1/v2: a momentum teacher masks the salient instances so the student learns from the hard ones (consistency loss, v2 GRN)',
  paper: { cite: 'Tang et al., Multiple Instance Learning Framework with Masked Hard Instance Mining for Whole Slide Image Classification, ICCV 2023', arxiv: '2307.15254' },
  options: MhimOptions,
  capabilities: { needsViews: [], requiresAggregator: ['parts'], requiresTrainedPrescreener: false },
  create: (options, ctx) => new Mhim(options, ctx),
});
