// BatchNorm over the channel (last) axis with PyTorch's semantics: batch statistics (biased variance) in
// training, an update of the running buffers with momentum and the UNBIASED variance, running stats at eval.
import * as tf from '@tensorflow/tfjs';
import { Module } from './module.js';

export interface BatchNormOptions {
  readonly eps?: number;
  /** Weight of the new batch statistic in the running average (torch `momentum`). */
  readonly momentum?: number;
}

/** torch.nn.BatchNorm2d / BatchNorm1d: weight, bias, and buffers running_mean, running_var, num_batches_tracked. */
export class BatchNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  readonly runningMean: tf.Variable;
  readonly runningVar: tf.Variable;
  readonly batchesTracked: tf.Variable;
  private readonly eps: number;
  private readonly momentum: number;

  constructor(readonly channels: number, options: BatchNormOptions = {}) {
    super();
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    this.weight = this.addParameter('weight', tf.ones([channels]));
    this.bias = this.addParameter('bias', tf.zeros([channels]));
    this.runningMean = this.addBuffer('running_mean', tf.zeros([channels]));
    this.runningVar = this.addBuffer('running_var', tf.ones([channels]));
    this.batchesTracked = this.addBuffer('num_batches_tracked', tf.scalar(0, 'int32'));
  }

  /**
   * [..., C] → [..., C]. With `training`, normalises by the statistics over every axis but the last and
   * updates the running buffers (outside the gradient); otherwise uses the running statistics.
   */
  forward<T extends tf.Tensor>(x: T, training: boolean): T {
    return tf.tidy(() => {
      const axes = x.shape.slice(0, -1).map((_, i) => i);
      if (!training) {
        const scale = tf.div(this.weight, tf.sqrt(tf.add(this.runningVar, this.eps))); // [C]
        return tf.add(tf.mul(tf.sub(x, this.runningMean), scale), this.bias) as T;
      }
      const { mean, variance } = tf.moments(x, axes); // [C], [C]  biased variance
      this.updateRunningStats(mean, variance, x.size / this.channels);
      const normalised = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, this.eps))); // [..., C]
      return tf.add(tf.mul(normalised, this.weight), this.bias) as T;
    });
  }

  /** The eval-mode map as y = x·scale + shift, [C] each: what folds into a preceding convolution. */
  inferenceAffine(): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
    return tf.tidy(() => {
      const scale = tf.div(this.weight, tf.sqrt(tf.add(this.runningVar, this.eps))) as tf.Tensor1D; // γ / √(σ² + ε)
      const shift = tf.sub(this.bias, tf.mul(this.runningMean, scale)) as tf.Tensor1D; // β - μ·scale
      return { scale, shift };
    });
  }

  private updateRunningStats(mean: tf.Tensor, variance: tf.Tensor, count: number): void {
    const m = this.momentum;
    // torch uses the unbiased variance for the running estimate; a single value per channel has none (torch
    // refuses that case in training), so the biased one (0) is kept.
    const correction = count > 1 ? count / (count - 1) : 1;
    tf.tidy(() => {
      const batchMean = tf.clone(mean);
      const batchVar = tf.mul(variance, correction);
      this.runningMean.assign(tf.add(tf.mul(this.runningMean, 1 - m), tf.mul(batchMean, m)));
      this.runningVar.assign(tf.add(tf.mul(this.runningVar, 1 - m), tf.mul(batchVar, m)));
      this.batchesTracked.assign(tf.add(this.batchesTracked, tf.scalar(1, 'int32')));
    });
  }
}
