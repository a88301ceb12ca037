/**
 * Mean pooling (aggregator/mean-pool)
 * Paper: M. Ilse, J. Tomczak, M. Welling, "Attention-based Deep Multiple Instance Learning", ICML 2018
 *   (the mean operator, a permutation-invariant baseline). arXiv:1802.04712
 * Implements: z = (1/N) Σ_n h_n, optional projection h_n = ReLU(W x_n + b) (docs/methods/pooling.md#embedding-level-pooling);
 *   `level: instance`: bag probability = mean over instances of the instance classifier's softmax (docs/methods/pooling.md#instance-level-pooling)
 * Symbols: x [N,D] instances · h [N,E] projected instances · z [1,E] slide embedding
 * Choices: projection optional (projectDim 0 pools the raw features); dropout after the projection;
 *   the mean is Σ_n h_n / N (a BLAS sgemv on wasm, docs/runtime.md)
 * Checked against: hand-computed means in test/core/nn/pooling.test.ts
 */
import * as tf from '@tensorflow/tfjs';
import { definePlugin } from 'milkit';
import { ProjectedPool, ProjectedPoolOptions } from 'milkit/nn';

export default definePlugin({
  kind: 'aggregator',
  name: 'mean-pool',
  summary: 'mean of (optionally projected) instance features',
  paper: { cite: 'Ilse, Tomczak, Welling, Attention-based Deep Multiple Instance Learning, ICML 2018', arxiv: '1802.04712' },
  options: ProjectedPoolOptions,
  capabilities: { permutationInvariant: true },
  // At the instance level the instance classifier is the aggregator's own, so the model builds no bag classifier.
  capabilitiesFor: (options) => ({ ownsClassifier: options.level === 'instance' }),
  create: (options, ctx) => new ProjectedPool(options, ctx, (h: tf.Tensor2D) => ProjectedPool.mean(h), 'mean'),
});
