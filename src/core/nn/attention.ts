// Attention scoring networks of the attention-MIL family (Ilse et al. 2018, docs/methods/abmil.md#attention-pooling): plain
// a = w(act(V h)) and gated a = w(tanh(V h) ⊙ sigmoid(U h)), with the original repositories' key names.
import * as tf from '@tensorflow/tfjs';
import type { ForwardIO } from '../../registry/contracts/model.js';
import type { Rng } from '../runtime/random.js';
import type { InitScheme } from './init.js';
import { Linear, activate, dropout, type ActivationName } from './layers.js';
import { Module } from './module.js';

/** State-dict names of the three layers (e.g. CLAM `attention_a.0`, `attention_b.0`, `attention_c`). */
export interface AttentionKeys {
  /** V: the tanh (or `activation`) branch. */
  readonly first: string;
  /** U: the sigmoid gate branch (gated only). */
  readonly gate: string;
  /** w: the output layer with one column per attention branch. */
  readonly out: string;
}

export interface AttentionScorerOptions {
  readonly inDim: number;
  /** L: hidden width of V and U. */
  readonly hiddenDim: number;
  /** K: attention branches (1, or one per class). */
  readonly branches: number;
  readonly gated: boolean;
  /** Non-linearity of the V branch: tanh in Ilse/CLAM/DTFD, ReLU in MHIM's baseline. */
  readonly activation: ActivationName;
  /** Bias on V, U and w. */
  readonly bias: boolean;
  /** Dropout after act(V h) and after sigmoid(U h) while training (CLAM: 0.25). */
  readonly dropout: number;
  readonly init: InitScheme;
  readonly keys: AttentionKeys;
}

/** The V, U and w layers of an attention network. */
export interface AttentionLayers {
  readonly v: Linear;
  readonly u: Linear | undefined;
  readonly w: Linear;
}

/** Builds V, U (gated only) and w; the caller registers them under `options.keys` (or uses `AttentionScorer`). */
export function buildAttentionLayers(options: AttentionScorerOptions, rng: Rng): AttentionLayers {
  const { inDim, hiddenDim, branches, bias, init, keys } = options;
  return {
    v: new Linear(inDim, hiddenDim, rng.fork(keys.first), { init, bias }),
    u: options.gated ? new Linear(inDim, hiddenDim, rng.fork(keys.gate), { init, bias }) : undefined,
    w: new Linear(hiddenDim, branches, rng.fork(keys.out), { init, bias }),
  };
}

/** Raw attention scores [N, K] of instance embeddings h [N, E] (softmax is the caller's, over N). */
export function attentionScores(layers: AttentionLayers, options: Pick<AttentionScorerOptions, 'activation' | 'dropout'>, h: tf.Tensor2D, io: ForwardIO): tf.Tensor2D {
  return tf.tidy(() => {
    const a = dropout(activate(layers.v.forward(h), options.activation), options.dropout, io.training, io.rng) as tf.Tensor2D; // [N, L]  act(V h)
    if (!layers.u) return layers.w.forward(a); // [N, K]  plain: w a
    const b = dropout(tf.sigmoid(layers.u.forward(h)), options.dropout, io.training, io.rng) as tf.Tensor2D; // [N, L]  sigm(U h)
    return layers.w.forward(tf.mul(a, b) as tf.Tensor2D); // [N, K]  gated: w (a ⊙ b)
  });
}

/** An attention network as one module whose children carry `options.keys` (CLAM `attention_a.0` …). */
export class AttentionScorer extends Module {
  private readonly layers: AttentionLayers;

  constructor(private readonly options: AttentionScorerOptions, rng: Rng) {
    super();
    const built = buildAttentionLayers(options, rng);
    this.layers = {
      v: this.addModule(options.keys.first, built.v),
      u: built.u ? this.addModule(options.keys.gate, built.u) : undefined,
      w: this.addModule(options.keys.out, built.w),
    };
  }

  /** h [N, E] → raw scores [N, K]. */
  forward(h: tf.Tensor2D, io: ForwardIO): tf.Tensor2D {
    return attentionScores(this.layers, this.options, h, io);
  }
}

/** Softmax over instances of raw scores [N, K] → attention [K, N] (each row sums to 1; docs/methods/conventions.md#softmax-axis). */
export function softmaxOverInstances(scores: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.softmax(tf.transpose(scores)) as tf.Tensor2D);
}
