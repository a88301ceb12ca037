// Layers shared by two or more plugins. Weights are stored in the layout fastest for tfjs matmuls
// ([in, out]) and carry the permutation to PyTorch's layout for checkpoint exchange.
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../runtime/random.js';
import { initBias, initWeight, type InitScheme } from './init.js';
import { Module } from './module.js';

export interface LinearOptions {
  readonly bias?: boolean;
  readonly init?: InitScheme;
  /** Bias init when it differs from the weight scheme's usual one (CLAM-2021: xavier weight, zero bias). */
  readonly biasInit?: InitScheme;
}

/** y = x W + b with W stored [in, out] (torch `weight` is [out, in]: perm [1, 0]). */
export class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | undefined;

  constructor(readonly inFeatures: number, readonly outFeatures: number, rng: Rng, options: LinearOptions = {}) {
    super();
    const scheme = options.init ?? 'torch-default';
    const torchWeight = initWeight(scheme, [outFeatures, inFeatures], rng);
    this.weight = this.addParameter('weight', tf.tidy(() => torchWeight.transpose()), { perm: [1, 0] });
    torchWeight.dispose();
    this.bias = options.bias === false
      ? undefined
      : this.addParameter('bias', initBias(options.biasInit ?? scheme, outFeatures, inFeatures, rng));
  }

  /** [M, in] → [M, out]. */
  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy((): tf.Tensor2D => {
      const y = tf.matMul(x, this.weight as tf.Tensor2D) as tf.Tensor2D; // [M, out]
      return this.bias ? (tf.add(y, this.bias) as tf.Tensor2D) : y;
    });
  }
}

/**
 * Supplies dropout keep masks in place of the random draws (reference comparisons): `next` returns the keep mask
 * (1 = kept, 0 = dropped, float32, exactly `shape`) of the next training-mode dropout call that draws a new mask.
 */
export interface DropoutMaskSource {
  next(shape: readonly number[], rate: number): tf.Tensor;
}

interface DropoutMaskScope {
  readonly source: DropoutMaskSource;
  /** Masks by the seed their call drew: a recomputation (activation checkpointing) draws the same seed again. */
  readonly bySeed: Map<number, tf.Tensor>;
}

/**
 * Active mask source, or undefined (the normal case: masks come from the rng). Module state rather than a
 * ForwardIO field because dropout call sites across the plugins pass only a stream, and tfjs forwards and
 * backwards are synchronous, so a scope around them cannot interleave with another forward.
 */
let maskScope: DropoutMaskScope | undefined;

/**
 * Runs `run` (a forward, or a whole `tf.variableGrads` call) with every training-mode dropout taking its keep mask
 * from `source`, in call order. A call that repeats an earlier call's draw (a checkpointed block recomputed in the
 * backward pass forks the same stream) gets that call's mask again instead of a new one, as the rng would give.
 * The masks are released when `run` returns.
 */
export function withDropoutMasks<T>(source: DropoutMaskSource, run: () => T): T {
  const outer = maskScope;
  const scope: DropoutMaskScope = { source, bySeed: new Map() };
  maskScope = scope;
  try {
    return run();
  } finally {
    maskScope = outer;
    tf.dispose([...scope.bySeed.values()]);
  }
}

function suppliedKeepMask(scope: DropoutMaskScope, shape: readonly number[], rate: number, seed: number): tf.Tensor {
  const known = scope.bySeed.get(seed);
  if (known) return known;
  const mask = scope.source.next(shape, rate);
  if (mask.shape.length !== shape.length || mask.shape.some((size, i) => size !== shape[i])) {
    throw new Error(`withDropoutMasks: the supplied mask has shape [${mask.shape.join(', ')}], the dropout call needs [${shape.join(', ')}].`);
  }
  const kept = tf.keep(mask.dtype === 'float32' ? mask : tf.cast(mask, 'float32'));
  scope.bySeed.set(seed, kept);
  return kept;
}

/**
 * The keep mask dropout(x [shape], rate, true, rng) would draw, unscaled: bool from the rng (1 byte per element),
 * or the supplied float 0/1 mask under withDropoutMasks. For a caller that applies the mask in pieces (the row-chunked
 * TransLayer) without the whole float mask and the tensor of ones a dropout of ones would make; the same draw.
 */
export function dropoutKeepMask(shape: readonly number[], rate: number, rng: Rng): tf.Tensor {
  const seed = rng.seed();
  if (maskScope) return tf.clone(suppliedKeepMask(maskScope, shape, rate, seed));
  return tf.tidy(() => tf.less(tf.randomUniform([...shape], 0, 1, 'float32', seed), 1 - rate));
}

/** Inverted dropout (kept values scaled by 1/(1-p)); identity at eval or when p = 0. Masks: the rng, or withDropoutMasks. */
export function dropout(x: tf.Tensor, rate: number, training: boolean, rng: Rng): tf.Tensor {
  if (!training || rate <= 0) return x;
  return tf.tidy(() => {
    const seed = rng.seed();
    const keep = maskScope
      ? suppliedKeepMask(maskScope, x.shape, rate, seed) // [x.shape] 0/1
      : tf.cast(tf.less(tf.randomUniform(x.shape, 0, 1, 'float32', seed), 1 - rate), 'float32');
    return tf.mul(x, tf.mul(keep, 1 / (1 - rate)));
  });
}

/** Activations by config name, shared by classifiers and aggregators. */
export type ActivationName = 'relu' | 'gelu' | 'tanh' | 'sigmoid' | 'elu' | 'leaky-relu' | 'identity';

export function activate(x: tf.Tensor, name: ActivationName): tf.Tensor {
  switch (name) {
    case 'relu':
      return tf.relu(x);
    case 'gelu':
      // Exact (erf) GELU as torch's default: 0.5 x (1 + erf(x / sqrt 2)).
      return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2)))));
    case 'tanh':
      return tf.tanh(x);
    case 'sigmoid':
      return tf.sigmoid(x);
    case 'elu':
      return tf.elu(x);
    case 'leaky-relu':
      return tf.leakyRelu(x, 0.01);
    case 'identity':
      return x;
  }
}
