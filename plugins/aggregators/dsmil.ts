/**
 * Dual-stream MIL (aggregator/dsmil)
 * Paper: B. Li, Y. Li, K. W. Eliceiri, "Dual-stream Multiple Instance Learning Network for Whole Slide Image
 *   Classification with Self-supervised Contrastive Learning", CVPR 2021. arXiv:2011.08939
 * Implements: Eq. 1 instance stream c = W_0 h with max-pooling ĉ_j = max_n c_{n,j}; Eq. 2-4 critical instance
 *   m_j = argmax_n c_{n,j}, queries Q = q(H), attention U = softmax_n(⟨q_n, q_{m_j}⟩ / √|q|), class embeddings
 *   B = Uᵀ V; Eq. 5 bag logits by a Conv1d over all C class embeddings (docs/methods/dsmil.md#structure)
 * Symbols: H=x [N,D] · c [N,C] instance logits · Q [N,Q] (Q = 128) · q_m [C,Q] · A [C,N] attention (softmax over N) ·
 *   V [N,D] · B [C,D] class embeddings · W_fcc [C_in,D,C_out] (torch Conv1d [C_out,C_in,D]) · logits [1,C]
 * Choices: the instance classifier i_classifier is the classifier slot (linear reproduces DSMIL); value net V = x by
 *   default (current code) or Dropout-Linear-ReLU (`passingV`, MHIM's variant); orthogonal weights with zero bias
 *   (current code). `binarySingleLogit` reproduces the 1-output binary setting (Camelyon16): heads of width 1 and
 *   logits [0, s], so softmax gives sigmoid(s) and cross-entropy equals BCE on s. `projectDim` adds MHIM-MIL's
 *   student projection (Linear-activation-dropout) before both streams; the forward is split there (capability
 *   `parts`), and pool also returns the instance logits. The original's patch dropout
 *   (default 0) is not implemented. Losses: binary-cross-entropy (weight 0.5) + dsmil-max-instance (0.5).
 * Checked against: test/reference/dsmil.py → test/reference/fixtures/dsmil*.safetensors
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, Module, PluginError, type Aggregator, type AggregatorOutput, type AggregatorParts, type Bag, type Classifier, type ForwardIO, type ModelContext, type TorchNaming } from 'milkit';
import type { Rng } from 'milkit';
import { activate, gatherRows, initBias, initWeight, Linear, dropout } from 'milkit/nn';

export const DsmilOptions = z.strictObject({
  queryDim: z.int().positive().default(128).describe('width of the query network q (128 in DSMIL)'),
  nonlinearQuery: z.boolean().default(true).describe('q = Linear-ReLU-Linear-Tanh (default) instead of one Linear'),
  passingV: z.boolean().default(false).describe('value net V = ReLU(Linear(Dropout(x))) instead of V = x'),
  dropoutV: z.number().min(0).lt(1).default(0).describe('dropout before the value Linear while training (passingV only)'),
  binarySingleLogit: z.boolean().default(false).describe('binary task with one output per stream (DSMIL on Camelyon16): logits [0, s]'),
  init: z.enum(['orthogonal', 'xavier-normal', 'torch-default']).default('orthogonal').describe('weight initialisation (non-default schemes start biases at 0)'),
  projectDim: z.int().min(0).default(0).describe('width of a projection Linear-activation-dropout before both streams (0 = none, DSMIL; MHIM-MIL\'s student: 512)'),
  projectActivation: z.enum(['relu', 'gelu']).default('relu').describe('activation of the projection (MHIM-MIL v1 relu, v2 gelu)'),
  projectDropout: z.number().min(0).lt(1).default(0.25).describe('dropout on the projected instances while training (projection only)'),
});
export type DsmilOptions = z.output<typeof DsmilOptions>;

/** b_classifier: query net, value net and the Conv1d bag head over the C class embeddings. */
class DsmilBagClassifier extends Module {
  readonly q1: Linear;
  readonly q2: Linear | undefined;
  readonly v: Linear | undefined;
  /** Conv1d weight stored [C_in, D, C_out] (torch [C_out, C_in, D]: perm [2, 0, 1]). */
  readonly fccWeight: tf.Variable;
  readonly fccBias: tf.Variable;

  constructor(options: DsmilOptions, inputDim: number, heads: number, rng: Rng) {
    super();
    const init = options.init;
    if (options.nonlinearQuery) {
      this.q1 = this.addModule('q.0', new Linear(inputDim, options.queryDim, rng.fork('q.0'), { init }));
      this.q2 = this.addModule('q.2', new Linear(options.queryDim, options.queryDim, rng.fork('q.2'), { init }));
    } else {
      this.q1 = this.addModule('q', new Linear(inputDim, options.queryDim, rng.fork('q'), { init }));
      this.q2 = undefined;
    }
    this.v = options.passingV ? this.addModule('v.1', new Linear(inputDim, inputDim, rng.fork('v.1'), { init })) : undefined;
    const torchWeight = initWeight(init, [heads, heads, inputDim], rng.fork('fcc.weight'));
    this.fccWeight = this.addParameter('fcc.weight', tf.tidy(() => tf.transpose(torchWeight, [1, 2, 0])), { perm: [2, 0, 1] });
    torchWeight.dispose();
    this.fccBias = this.addParameter('fcc.bias', initBias(init, heads, heads * inputDim, rng.fork('fcc.bias')));
  }

  /** Q = q(x): [M, D] → [M, Q]. */
  query(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const first = this.q1.forward(x); // [M, Q]
      return this.q2 ? (tf.tanh(this.q2.forward(tf.relu(first) as tf.Tensor2D)) as tf.Tensor2D) : first; // [M, Q]
    });
  }
}

/** Per class, the first instance of largest logit in c [N, K] (torch's argmax), read on the host: K row indices. */
function criticalRows(c: tf.Tensor2D): Int32Array {
  const [n, heads] = c.shape;
  const values = c.dataSync();
  const rows = new Int32Array(heads);
  for (let j = 0; j < heads; j += 1) {
    let best = values[j]!;
    for (let i = 1; i < n; i += 1) {
      const v = values[i * heads + j]!;
      // Strictly greater keeps the first maximum; a NaN wins as in torch.argmax.
      if (v > best || (Number.isNaN(v) && !Number.isNaN(best))) {
        best = v;
        rows[j] = i;
      }
    }
  }
  return rows;
}

class DsmilAggregator extends Module implements Aggregator {
  readonly embeddingDim: number;
  readonly torchNaming: TorchNaming = { renames: [['^i_classifier\\.fc\\.0\\.fc\\.', 'i_classifier.fc.0.']] };
  private readonly heads: number;
  private readonly instanceClassifier: Classifier;
  private readonly bagClassifier: DsmilBagClassifier;
  private readonly projection: Linear | undefined;

  constructor(private readonly options: DsmilOptions, ctx: ModelContext) {
    super();
    if (options.binarySingleLogit && ctx.numClasses !== 2) {
      throw new PluginError('invalid-option', `aggregator "dsmil": binarySingleLogit needs a binary task (got ${ctx.numClasses} classes).`, { hint: 'Set binarySingleLogit: false for multi-class tasks.' });
    }
    this.heads = options.binarySingleLogit ? 1 : ctx.numClasses;
    this.embeddingDim = options.projectDim > 0 ? options.projectDim : ctx.inputDim;
    // MHIM-MIL's DSMIL student projects first (torch key patch_to_emb.0); the projection rng fork is new, so the
    // other layers draw the same initial weights with or without it.
    this.projection = options.projectDim > 0
      ? this.addModule('patch_to_emb.0', new Linear(ctx.inputDim, options.projectDim, ctx.rng.fork('patch_to_emb'), { init: options.init === 'orthogonal' ? 'xavier-normal' : options.init }))
      : undefined;
    // FCLayer keeps its Linear in a Sequential `fc`: torch key i_classifier.fc.0.
    this.instanceClassifier = this.addModule('i_classifier.fc.0', ctx.makeClassifier(this.embeddingDim, this.heads, ctx.rng.fork('i_classifier')));
    this.bagClassifier = this.addModule('b_classifier', new DsmilBagClassifier(options, this.embeddingDim, this.heads, ctx.rng.fork('b_classifier')));
  }

  /** [1, K] → [1, 2] as [0, s] in single-logit mode, unchanged otherwise. */
  private asLogits(x: tf.Tensor2D): tf.Tensor2D {
    return this.options.binarySingleLogit ? (tf.concat([tf.zeros([1, 1]), x], 1) as tf.Tensor2D) : x;
  }

  /**
   * The forward split at the instances both streams read (capability `parts`): h = x without a projection, or the
   * projected x (Linear, activation, dropout). pool(h) is everything after; it also returns the instance logits c
   * (`extras.instanceLogits`, [N, K]) that MHIM-MIL masks by.
   */
  readonly parts: AggregatorParts = {
    project: (bag, io) => tf.tidy(() => (this.projection
      ? (dropout(activate(this.projection.forward(bag.features), this.options.projectActivation), this.options.projectDropout, io.training, io.rng) as tf.Tensor2D)
      : tf.clone(bag.features))), // [N, E]
    pool: (h, _bag, io) => this.pool(h, io),
  };

  forward(bag: Bag, io: ForwardIO): AggregatorOutput {
    return tf.tidy(() => {
      const h = this.parts.project(bag, io); // [N, E]
      return { ...this.pool(h, io) };
    });
  }

  private pool(h: tf.Tensor2D, io: ForwardIO): AggregatorOutput {
    return tf.tidy(() => {
      const x = h; // [N, E]
      const c = this.instanceClassifier.forward(x, io); // [N, K]  Eq. 1 instance logits
      // Critical instances m_j = argmax_n c_{n,j}, taken on the host (the first maximum, as torch.argmax).
      const n = x.shape[0];
      const rows = n === 1 ? new Int32Array(this.heads) : criticalRows(c); // [K]
      // ĉ_j = max_n c_{n,j} read at m_j: the same values as a max over N, and its gradient goes to that one entry, as
      // torch's max(dim=0) routes it (tfjs's Max gradient compares all N·K entries with the maximum instead: an Equal
      // over [N, K] that cost 10 ms per step at N = 50,000 on wasm).
      const cMax = tf.reshape(tf.gather(tf.reshape(c, [-1]), Int32Array.from(rows, (row, j) => row * this.heads + j)), [1, this.heads]) as tf.Tensor2D; // [1, K]
      const q = this.bagClassifier.query(x); // [N, Q]
      // The critical queries q_m = q(x_m) are taken as rows of Q (q acts row by row, so they are the same values and
      // carry the same gradient to x and to q's weights as torch's q(x[argmax])) instead of a second pass of q over
      // gathered rows (gatherRows: a gather forward, a scatter-add of K rows backward), with no selection matrix.
      const qMax = n === 1
        ? (tf.tile(q, [this.heads, 1]) as tf.Tensor2D)
        : gatherRows(q, rows); // [K, Q]
      // ⟨q_m, q_n⟩ / √Q as [K, N] straight from the matmul (no transpose), softmax over instances per class.
      const a = tf.softmax(tf.div(tf.matMul(qMax, q, false, true), Math.sqrt(this.options.queryDim))) as tf.Tensor2D; // [K, N]
      const v = this.bagClassifier.v
        ? (tf.relu(this.bagClassifier.v.forward(dropout(x, this.options.dropoutV, io.training, io.rng) as tf.Tensor2D)) as tf.Tensor2D)
        : x; // [N, D]
      const b = tf.matMul(a, v) as tf.Tensor2D; // [K, D]  B = Aᵀ V (A stored transposed)
      const flatB = tf.reshape(b, [1, -1]); // [1, K·D]
      const fcc = tf.reshape(this.bagClassifier.fccWeight, [-1, this.heads]); // [K·D, K]  Conv1d as one matmul
      const bagLogits = tf.add(tf.matMul(flatB, fcc), this.bagClassifier.fccBias) as tf.Tensor2D; // [1, K]  Eq. 5
      return {
        embedding: b,
        logits: this.asLogits(bagLogits),
        instanceScores: a,
        extras: { maxInstanceLogits: this.asLogits(cMax), instanceLogits: c },
      };
    });
  }
}

export default definePlugin({
  kind: 'aggregator',
  name: 'dsmil',
  summary: 'dual-stream MIL: max-instance stream and critical-instance attention stream with a Conv1d bag head',
  paper: { cite: 'Li, Li, Eliceiri, Dual-stream Multiple Instance Learning Network for Whole Slide Image Classification with Self-supervised Contrastive Learning, CVPR 2021', arxiv: '2011.08939' },
  options: DsmilOptions,
  capabilities: { instanceScores: true, permutationInvariant: true, ownsClassifier: true, provides: ['maxInstanceLogits', 'instanceLogits'], parts: true },
  create: (options, ctx) => new DsmilAggregator(options, ctx),
});
