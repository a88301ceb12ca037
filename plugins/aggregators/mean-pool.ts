/**
 * Mean pooling (aggregator/mean-pool)
 * Paper: M. Ilse, J. Tomczak, M. Welling, "Attention-based Deep Multiple Instance Learning", ICML 2018
 *   (the mean operator, a permutation-invariant baseline). arXiv:1802.04712
 * Implements: z = (1/N) Σ_n h_n, optional projection h_n = ReLU(W x_n + b) (docs/methods/pooling.md#embedding-level-pooling)
 * Symbols: x [N,D] instances · h [N,E] projected instances · z [1,E] slide embedding
 * Choices: projection optional (projectDim 0 pools the raw features); dropout after the projection
 * Checked against: hand-computed means in test/plugins/aggregators/pooling.test.ts
 */
import * as tf from '@tensorflow/tfjs';
import { definePlugin } from '../../src/registry/index.js';
import { ProjectedPool, ProjectedPoolOptions } from '../../src/core/nn/pooling.js';

export default definePlugin({
  kind: 'aggregator',
  name: 'mean-pool',
  summary: 'mean of (optionally projected) instance features',
  paper: { cite: 'Ilse, Tomczak, Welling, Attention-based Deep Multiple Instance Learning, ICML 2018', arxiv: '1802.04712' },
  options: ProjectedPoolOptions,
  capabilities: { permutationInvariant: true },
  create: (options, ctx) => new ProjectedPool(options, ctx, (h) => tf.mean(h, 0, true) as tf.Tensor2D),
});
