// LayerNorm over the last axis as torch.nn.LayerNorm (biased variance, eps inside the square root,
// weight 1 / bias 0 at init), with torch's `weight` / `bias` names.
import * as tf from '@tensorflow/tfjs';
import { Module } from './module.js';

export class LayerNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(readonly dim: number, private readonly eps = 1e-5) {
    super();
    this.weight = this.addParameter('weight', tf.ones([dim]));
    this.bias = this.addParameter('bias', tf.zeros([dim]));
  }

  /** [M, dim] → [M, dim]: (x - mean) / sqrt(var + eps) · weight + bias, per row. */
  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true); // [M, 1] each, variance biased as torch
      const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps))); // [M, dim]
      return tf.add(tf.mul(normed, this.weight), this.bias) as tf.Tensor2D;
    });
  }
}
