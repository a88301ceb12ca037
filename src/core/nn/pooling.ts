// Fixed (non-learned) pooling over instances with an optional ReLU projection, shared by the mean-pool and
// max-pool baselines.
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { Aggregator, AggregatorOutput, Bag, ForwardIO, ModelContext } from '../../registry/contracts/model.js';
import { Module } from './module.js';
import { Linear, dropout } from './layers.js';

export const ProjectedPoolOptions = z.strictObject({
  projectDim: z.int().min(0).default(0).describe('E: width of a ReLU projection before pooling (0 = pool the raw features)'),
  dropout: z.number().min(0).lt(1).default(0).describe('dropout on projected instances while training'),
});
export type ProjectedPoolOptions = z.output<typeof ProjectedPoolOptions>;

/** Pools [N, E] → [1, E] with `reduce` after an optional projection h = dropout(ReLU(x W + b)). */
export class ProjectedPool extends Module implements Aggregator {
  readonly embeddingDim: number;
  private readonly fc: Linear | undefined;

  constructor(
    private readonly options: ProjectedPoolOptions,
    ctx: ModelContext,
    private readonly reduce: (h: tf.Tensor2D) => tf.Tensor2D,
  ) {
    super();
    this.fc = options.projectDim > 0 ? this.addModule('fc', new Linear(ctx.inputDim, options.projectDim, ctx.rng)) : undefined;
    this.embeddingDim = options.projectDim > 0 ? options.projectDim : ctx.inputDim;
  }

  forward(bag: Bag, io: ForwardIO): AggregatorOutput {
    return tf.tidy(() => {
      const h = this.fc
        ? (dropout(tf.relu(this.fc.forward(bag.features)), this.options.dropout, io.training, io.rng) as tf.Tensor2D)
        : bag.features; // [N, E]
      return { embedding: this.reduce(h) }; // [1, E]
    });
  }
}
