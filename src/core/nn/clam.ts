// The body CLAM-SB and CLAM-MB share (docs/methods/clam.md#layers): attention_net = Sequential(Linear D→E, ReLU,
// Dropout, gated or plain attention E→H→K), C instance classifiers E→2 built by the classifier slot, and the
// instance-clustering selection. The two plugins differ only in K (1 or C) and in who owns the bag heads.
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { Bag, Classifier, ForwardIO, ModelContext } from '../../registry/contracts/model.js';
import { AttentionScorer, softmaxOverInstances } from './attention.js';
import { ModuleList } from './containers.js';
import { instanceClusteringExtras } from './instance-clustering.js';
import { Linear, dropout } from './layers.js';
import { Module } from './module.js';

export const ClamOptions = z.strictObject({
  size: z.enum(['small', 'big']).default('small').describe('CLAM size_arg: small = [D, 512, 256], big = [D, 512, 384] (E, H)'),
  hiddenDim: z.int().positive().optional().describe('E: width of the projected instances; overrides `size`'),
  attnDim: z.int().positive().optional().describe('H: width of the attention branches; overrides `size`'),
  gated: z.boolean().default(true).describe('gated attention (Attn_Net_Gated) instead of tanh attention (Attn_Net)'),
  dropout: z.number().min(0).lt(1).default(0.25).describe('dropout on the projected instances h while training'),
  attnDropout: z.number().min(0).lt(1).default(0.25).describe('dropout inside the attention branches while training (CLAM hard-wires 0.25 whenever dropout is on)'),
  kSample: z.int().min(0).default(8).describe('k (CLAM B): instances per side pseudo-labelled for the clustering loss (0 = none)'),
  subtyping: z.boolean().default(false).describe('also push every other class\'s top-k to pseudo-label 0 and divide by C (multi-class subtyping tasks)'),
  svmLabelsBuffer: z.boolean().default(true).describe('carry the int64 instance_loss_fn.labels buffer the original registers with its SVM instance loss (false for checkpoints trained with the CE instance loss)'),
  init: z.enum(['xavier-normal', 'torch-default']).default('xavier-normal').describe('xavier-normal weights with zero biases (CLAM 2021, used by the paper) or the PyTorch default (current CLAM code)'),
});
export type ClamOptions = z.output<typeof ClamOptions>;

/** Holds the int64 `labels` buffer [0, 1] of the reference's SmoothTop1SVM, so saved state_dicts load strictly in PyTorch. */
class SvmLabels extends Module {
  constructor() {
    super();
    this.addBuffer('labels', tf.tensor1d([0, 1], 'int32'));
  }
}

/** Projection, attention and instance classifiers of CLAM with its torch keys; K attention branches. */
export abstract class ClamBody extends Module {
  readonly embeddingDim: number;
  /** The attention output bias only shifts each branch's scores before its softmax over instances: zero gradient. */
  readonly inertParameters: readonly string[];
  protected readonly numClasses: number;
  private readonly projection: Linear;
  private readonly scorer: AttentionScorer;
  private readonly instanceClassifiers: ModuleList<Classifier>;

  constructor(protected readonly options: ClamOptions, ctx: ModelContext, branches: number) {
    super();
    const hiddenDim = options.hiddenDim ?? 512;
    const attnDim = options.attnDim ?? (options.size === 'big' ? 384 : 256);
    const init = options.init;
    this.numClasses = ctx.numClasses;
    this.embeddingDim = hiddenDim;
    this.projection = new Linear(ctx.inputDim, hiddenDim, ctx.rng.fork('attention_net.0'), { init });
    // Attn_Net keeps its layers in one Sequential `module` (Linear, Tanh, [Dropout], Linear).
    const keys = options.gated
      ? { first: 'attention_a.0', gate: 'attention_b.0', out: 'attention_c' }
      : { first: 'module.0', gate: '', out: options.attnDropout > 0 ? 'module.3' : 'module.2' };
    this.scorer = new AttentionScorer(
      { inDim: hiddenDim, hiddenDim: attnDim, branches, gated: options.gated, activation: 'tanh', bias: true, dropout: options.attnDropout, init, keys },
      ctx.rng.fork('attention_net.3'),
    );
    this.inertParameters = [`attention_net.3.${keys.out}.bias`];
    // attention_net = Sequential(Linear, ReLU, Dropout, attention): parameters at indices 0 and 3.
    this.addModule('attention_net', new ModuleList<Module>([this.projection, this.scorer], [0, 3]));
    const classes = Array.from({ length: ctx.numClasses }, (_, c) => c);
    this.instanceClassifiers = this.addModule('instance_classifiers', new ModuleList(classes.map((c) => ctx.makeClassifier(hiddenDim, 2, ctx.rng.fork(`instance_classifiers.${c}`)))));
    if (options.svmLabelsBuffer) this.addModule('instance_loss_fn', new SvmLabels());
  }

  /** h [N, E] (after ReLU and dropout, what the instance classifiers see) and attention A [K, N] softmaxed over N. */
  protected attend(bag: Bag, io: ForwardIO): { h: tf.Tensor2D; attention: tf.Tensor2D } {
    const h = dropout(tf.relu(this.projection.forward(bag.features)), this.options.dropout, io.training, io.rng) as tf.Tensor2D; // [N, E]
    const attention = softmaxOverInstances(this.scorer.forward(h, io)); // [K, N]
    return { h, attention };
  }

  /** The clustering-loss extras when the label is known and kSample > 0 (docs/methods/clam.md#instance-clustering-loss); none otherwise. */
  protected instanceExtras(attention: tf.Tensor2D, h: tf.Tensor2D, bag: Bag, io: ForwardIO): Record<string, tf.Tensor> {
    if (bag.label === undefined || this.options.kSample === 0) return {};
    return instanceClusteringExtras(attention, h, bag.label, (c, rows) => this.instanceClassifiers.at(c).forward(rows, io), {
      kSample: this.options.kSample,
      subtyping: this.options.subtyping,
      numClasses: this.numClasses,
    });
  }
}

/** Torch keys of a CLAM instance classifier built by the linear classifier plugin: drop its `fc` level. */
export const CLAM_INSTANCE_RENAME: readonly [string, string] = ['^instance_classifiers\\.(\\d+)\\.fc\\.', 'instance_classifiers.$1.'];
