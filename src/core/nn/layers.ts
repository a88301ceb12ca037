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

/** Inverted dropout (kept values scaled by 1/(1-p)); identity at eval or when p = 0. */
export function dropout(x: tf.Tensor, rate: number, training: boolean, rng: Rng): tf.Tensor {
  if (!training || rate <= 0) return x;
  return tf.tidy(() => {
    const keep = tf.less(tf.randomUniform(x.shape, 0, 1, 'float32', rng.seed()), 1 - rate); // bool mask
    return tf.mul(x, tf.mul(tf.cast(keep, 'float32'), 1 / (1 - rate)));
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
