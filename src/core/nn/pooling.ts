// Fixed (non-learned) pooling over instances with an optional ReLU projection, shared by the mean-pool and
// max-pool baselines, at the embedding level (pool, then classify) or the instance level (classify, then pool).
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { Aggregator, AggregatorOutput, Bag, Classifier, ForwardIO, ModelContext } from '../../registry/contracts/model.js';
import { hostFloatValues } from './host-values.js';
import { Module } from './module.js';
import { Linear, dropout } from './layers.js';

export const ProjectedPoolOptions = z.strictObject({
  projectDim: z.int().min(0).default(0).describe('E: width of a ReLU projection before pooling (0 = pool the raw features)'),
  dropout: z.number().min(0).lt(1).default(0).describe('dropout on projected instances while training'),
  level: z.enum(['embedding', 'instance']).default('embedding').describe('embedding: pool the instances, then classify the bag; instance: classify every instance (the classifier slot), then pool the instance probabilities (mi-Net style, Ilse et al.\'s instance+mean / instance+max)'),
});
export type ProjectedPoolOptions = z.output<typeof ProjectedPoolOptions>;

type GradSave = (tensors: tf.Tensor[]) => void;

// Mean over instances as Σ_n h_n / N: on wasm with native BLAS the leading-axis Sum is one sgemv, where the stock
// Mean kernel transposes [N, E] first (~10× slower at N = 8k). The gradient dh = 1·(dz / N) is one outer
// product (one write of [N, E]); the stock gradient builds ones [N, E] and multiplies (three passes).
const meanOverInstancesOp = tf.customGrad((...args: Array<tf.Tensor | GradSave>) => {
  const h = args[0] as tf.Tensor2D;
  const rows = h.shape[0];
  return {
    value: tf.tidy(() => tf.div(tf.sum(h, 0, true), rows)),
    gradFunc: (dy: tf.Tensor) => tf.tidy(() => [tf.matMul(tf.ones([rows, 1]), tf.div(dy, rows) as tf.Tensor2D)]),
  };
});

/** z = (1/N) Σ_n h_n: [N, E] → [1, E]. */
export function meanOverInstances(h: tf.Tensor2D): tf.Tensor2D {
  if (h.shape[0] === 0) return tf.mean(h, 0, true) as tf.Tensor2D;
  return meanOverInstancesOp(h) as tf.Tensor2D;
}

/**
 * d max_n h[n, e] / dh: dz[e] at the first row holding the column maximum, 0 elsewhere (one index per column as
 * torch's max(dim) backward; the stock tfjs gradient gives dz to every tied row and costs three broadcast passes).
 */
function maxOverInstancesGradient(h: tf.Tensor2D, z: tf.Tensor, dz: tf.Tensor): tf.Tensor2D {
  const [rows, cols] = h.shape;
  const values = hostFloatValues(h);
  const maxima = hostFloatValues(z);
  const upstream = Float32Array.from(hostFloatValues(dz));
  const argmax = new Int32Array(cols).fill(-1);
  // Rows from first to last, keeping the first row that holds each maximum, and stopping once every column has one.
  let missing = cols;
  for (let n = 0; n < rows && missing > 0; n += 1) {
    const offset = n * cols;
    for (let e = 0; e < cols; e += 1) {
      if (values[offset + e] === maxima[e] && argmax[e] === -1) {
        argmax[e] = n;
        missing -= 1;
      }
    }
  }
  // dh holds one value per column. On wasm it is zero-filled in the heap by the Fill kernel (`tf.fill`; `tf.zeros`
  // builds a host array and uploads it) and the values are written into its fresh buffer: building [N, E] on the host
  // and uploading it (an allocation, a zeroing and a copy of 16 MB at N = 8,000, E = 512) cost more than the scan.
  const wasm = tf.getBackend() === 'wasm';
  const dhTensor = wasm ? (tf.fill([rows, cols], 0, 'float32') as tf.Tensor2D) : undefined;
  const dh = dhTensor ? hostFloatValues(dhTensor) : new Float32Array(rows * cols);
  for (let e = 0; e < cols; e += 1) {
    const n = argmax[e] as number;
    if (n >= 0) dh[n * cols + e] = upstream[e] as number; // a NaN maximum matches no row: no gradient
  }
  return dhTensor ?? tf.tensor2d(dh, [rows, cols]);
}

// Max over instances as a [N, 1] max-pool window on [1, N, 1, E]: XNNPACK reduces along contiguous channels,
// where the stock Max kernel transposes [N, E] first (~25× slower on wasm at N = 8k).
const maxOverInstancesOp = tf.customGrad((...args: Array<tf.Tensor | GradSave>) => {
  const h = args[0] as tf.Tensor2D;
  const [rows, cols] = h.shape;
  const z = tf.tidy(() => tf.reshape(tf.maxPool(tf.reshape(h, [1, rows, 1, cols]) as tf.Tensor4D, [rows, 1], 1, 'valid'), [1, cols]));
  (args[1] as GradSave)([h, z]);
  return {
    value: z,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [maxOverInstancesGradient(saved[0] as tf.Tensor2D, saved[1] as tf.Tensor, dy)],
  };
});

/** z_e = max_n h[n, e]: [N, E] → [1, E]. */
export function maxOverInstances(h: tf.Tensor2D): tf.Tensor2D {
  if (h.shape[0] === 0 || h.dtype !== 'float32') return tf.max(h, 0, true) as tf.Tensor2D;
  return maxOverInstancesOp(h) as tf.Tensor2D;
}

/** Pools [N, E] → [1, E] with `reduce` after an optional projection h = dropout(ReLU(x W + b)). */
/**
 * Instance-level pooling (docs/methods/pooling.md#instance-level-pooling): per-instance class log-probabilities
 * log p [N, C] (log-softmax of the instance logits) pooled into bag log-probabilities, returned as bag logits
 * (softmax(log p_bag) = p_bag). Mean: p_bag = (1/N) Σ_n p_n, as log Σ_n exp(log p_n) − log N. Max: for C = 2 the
 * positive-class probability is θ = max_n p_n1 and p_bag = [1 − θ, θ] (Ilse et al.'s instance+max); since
 * 1 − max_n p_n1 = min_n p_n0, both entries are taken in log space, log p_bag = [min_n log p_n0, max_n log p_n1].
 * For C > 2 each class takes its maximum over instances and the vector is renormalised (log-sum-exp). Working in
 * log space keeps a gradient where a probability rounds to 0 or 1 in float32 (a clamp there would stop training).
 */
export function poolInstanceProbabilities(instanceLogits: tf.Tensor2D, reduce: 'mean' | 'max'): tf.Tensor2D {
  return tf.tidy(() => {
    const [rows, classes] = instanceLogits.shape;
    const logP = tf.logSoftmax(instanceLogits) as tf.Tensor2D; // [N, C]
    if (reduce === 'mean') return tf.sub(tf.logSumExp(logP, 0, true), Math.log(rows)) as tf.Tensor2D; // [1, C]
    if (classes === 2) {
      const positive = maxOverInstances(tf.slice(logP, [0, 1], [-1, 1]) as tf.Tensor2D); // [1, 1]  log θ
      const negative = tf.neg(maxOverInstances(tf.neg(tf.slice(logP, [0, 0], [-1, 1])) as tf.Tensor2D)); // [1, 1]  log(1 − θ)
      return tf.concat([negative, positive], 1) as tf.Tensor2D; // [1, 2]
    }
    const maxima = maxOverInstances(logP); // [1, C]
    return tf.sub(maxima, tf.logSumExp(maxima, 1, true)) as tf.Tensor2D;
  });
}

export class ProjectedPool extends Module implements Aggregator {
  /** The reductions of the mean-pool and max-pool plugins (reachable through the class they already import). */
  static readonly mean = meanOverInstances;
  static readonly max = maxOverInstances;
  readonly embeddingDim: number;
  private readonly fc: Linear | undefined;
  /** The instance classifier at `level: instance` (the classifier slot's plugin, torch key `classifier`). */
  private readonly instanceClassifier: Classifier | undefined;

  constructor(
    private readonly options: ProjectedPoolOptions,
    ctx: ModelContext,
    private readonly reduce: (h: tf.Tensor2D) => tf.Tensor2D,
    /** Which reduction `reduce` is, for the instance level (it pools probabilities, not embeddings). */
    private readonly reduction: 'mean' | 'max' = 'mean',
  ) {
    super();
    this.fc = options.projectDim > 0 ? this.addModule('fc', new Linear(ctx.inputDim, options.projectDim, ctx.rng)) : undefined;
    this.embeddingDim = options.projectDim > 0 ? options.projectDim : ctx.inputDim;
    this.instanceClassifier = options.level === 'instance'
      ? this.addModule('classifier', ctx.makeClassifier(this.embeddingDim, ctx.numClasses, ctx.rng.fork('classifier')))
      : undefined;
  }

  forward(bag: Bag, io: ForwardIO): AggregatorOutput {
    return tf.tidy(() => {
      const h = this.fc
        ? (dropout(tf.relu(this.fc.forward(bag.features)), this.options.dropout, io.training, io.rng) as tf.Tensor2D)
        : bag.features; // [N, E]
      const embedding = this.reduce(h); // [1, E]
      if (!this.instanceClassifier) return { embedding };
      const instanceLogits = this.instanceClassifier.forward(h, io); // [N, C]
      return { embedding, logits: poolInstanceProbabilities(instanceLogits, this.reduction) }; // logits [1, C]
    });
  }
}
