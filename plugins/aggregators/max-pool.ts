/**
 * Max pooling (aggregator/max-pool)
 * Paper: M. Ilse, J. Tomczak, M. Welling, "Attention-based Deep Multiple Instance Learning", ICML 2018
 *   (the max operator, a permutation-invariant baseline). arXiv:1802.04712
 * Implements: z_e = max_n h_{n,e}, optional projection h_n = ReLU(W x_n + b) (docs/methods/pooling.md#embedding-level-pooling)
 * Symbols: x [N,D] instances · h [N,E] projected instances · z [1,E] slide embedding
 * Choices: projection optional (projectDim 0 pools the raw features); dropout after the projection
 * Checked against: hand-computed maxima in test/plugins/aggregators/pooling.test.ts
 */
import * as tf from '@tensorflow/tfjs';
import { definePlugin } from '../../src/registry/index.js';
import { ProjectedPool, ProjectedPoolOptions } from '../../src/core/nn/pooling.js';

export default definePlugin({
  kind: 'aggregator',
  name: 'max-pool',
  summary: 'element-wise max of (optionally projected) instance features',
  paper: { cite: 'Ilse, Tomczak, Welling, Attention-based Deep Multiple Instance Learning, ICML 2018', arxiv: '1802.04712' },
  options: ProjectedPoolOptions,
  capabilities: { permutationInvariant: true },
  create: (options, ctx) => new ProjectedPool(options, ctx, (h) => tf.max(h, 0, true) as tf.Tensor2D),
});
