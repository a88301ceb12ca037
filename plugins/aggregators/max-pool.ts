/**
 * Max pooling (aggregator/max-pool)
 * Paper: M. Ilse, J. Tomczak, M. Welling, "Attention-based Deep Multiple Instance Learning", ICML 2018
 *   (the max operator, a permutation-invariant baseline). arXiv:1802.04712
 * Implements: z_e = max_n h_{n,e}, optional projection h_n = ReLU(W x_n + b) (docs/methods/pooling.md#embedding-level-pooling);
 *   `level: instance`: bag positive probability = max over instances of the instance classifier's (docs/methods/pooling.md#instance-level-pooling)
 * Symbols: x [N,D] instances · h [N,E] projected instances · z [1,E] slide embedding
 * Choices: projection optional (projectDim 0 pools the raw features); dropout after the projection;
 *   the gradient goes to the first row holding each maximum (one row per feature, as torch's max(dim))
 * Checked against: hand-computed maxima in test/core/nn/pooling.test.ts
 */
import * as tf from '@tensorflow/tfjs';
import { definePlugin } from 'milkit';
import { ProjectedPool, ProjectedPoolOptions } from 'milkit/nn';

export default definePlugin({
  kind: 'aggregator',
  name: 'max-pool',
  summary: 'element-wise max of (optionally projected) instance features',
  paper: { cite: 'Ilse, Tomczak, Welling, Attention-based Deep Multiple Instance Learning, ICML 2018', arxiv: '1802.04712' },
  options: ProjectedPoolOptions,
  capabilities: { permutationInvariant: true },
  // At the instance level the instance classifier is the aggregator's own, so the model builds no bag classifier.
  capabilitiesFor: (options) => ({ ownsClassifier: options.level === 'instance' }),
  create: (options, ctx) => new ProjectedPool(options, ctx, (h: tf.Tensor2D) => ProjectedPool.max(h), 'max'),
});
