/**
 * CLAM, single attention branch (aggregator/clam-sb)
 * Paper: M. Y. Lu, D. F. K. Williamson, T. Y. Chen, R. J. Chen, M. Barbieri, F. Mahmood, "Data-efficient and weakly
 *   supervised computational pathology on whole-slide images", Nat. Biomed. Eng. 5, 555-570 (2021). doi:10.1038/s41551-020-00682-w
 * Implements: projection h = ReLU(W1 x) (dropout), gated attention a = W_c(tanh(W_a h) ⊙ sigm(W_b h)) with softmax over
 *   N, slide embedding M = A h; instance-level clustering selection for the loss/clam-instance term (docs/methods/clam.md#layers,
 *   docs/methods/clam.md#instance-clustering-loss)
 * Symbols: x [N,D] · h [N,E] (E = 512) · A [1,N] attention · M [1,E] slide embedding (to the `model.classifier` slot,
 *   torch `classifiers`) · instance classifiers c = 0..C-1: [E→2] (classifier slot, torch `instance_classifiers.c`)
 * Choices: the single attention row ranks instances for every class (as the reference); k is clamped to N for bags
 *   smaller than kSample (the reference errors); the clustering extras are produced whenever the label is known;
 *   xavier-normal init with zero bias (CLAM 2021) by default — set the classifier slot's init to match. Bag loss and
 *   weights come from the config: CLAM uses 0.7·CE(bag) + 0.3·clam-instance(svm). The int64 buffer
 *   `instance_loss_fn.labels` of the original's SVM loss is carried (`svmLabelsBuffer`, off for CE-trained
 *   checkpoints) so exports load strictly in PyTorch; imports accept checkpoints without it.
 * Checked against: test/reference/clam.py → test/reference/fixtures/clam-sb*.safetensors
 */
import * as tf from '@tensorflow/tfjs';
import { definePlugin, type Aggregator, type AggregatorOutput, type Bag, type ForwardIO, type ModelContext, type TorchNaming } from '../../src/registry/index.js';
import { CLAM_INSTANCE_RENAME, ClamBody, ClamOptions } from '../../src/core/nn/clam.js';
import { INSTANCE_CLUSTERING_EXTRAS } from '../../src/core/nn/instance-clustering.js';

class ClamSbAggregator extends ClamBody implements Aggregator {
  readonly torchNaming: TorchNaming = {
    classifierPrefix: 'classifiers',
    renames: [['^classifiers\\.fc\\.', 'classifiers.'], CLAM_INSTANCE_RENAME],
    optionalOnImport: ['instance_loss_fn.labels'],
  };

  constructor(options: ClamOptions, ctx: ModelContext) {
    super(options, ctx, 1);
  }

  forward(bag: Bag, io: ForwardIO): AggregatorOutput {
    return tf.tidy(() => {
      const { h, attention } = this.attend(bag, io); // [N, E], [1, N]
      const m = tf.matMul(attention, h) as tf.Tensor2D; // [1, E]  M = A h
      return { embedding: m, instanceScores: attention, extras: this.instanceExtras(attention, h, bag, io) };
    });
  }
}

export default definePlugin({
  kind: 'aggregator',
  name: 'clam-sb',
  summary: 'CLAM single-branch gated attention with instance-level clustering',
  paper: { cite: 'Lu et al., Data-efficient and weakly supervised computational pathology on whole-slide images, Nat. Biomed. Eng. 2021', doi: '10.1038/s41551-020-00682-w' },
  options: ClamOptions,
  capabilities: { instanceScores: true, permutationInvariant: true, provides: [...INSTANCE_CLUSTERING_EXTRAS] },
  create: (options, ctx) => new ClamSbAggregator(options, ctx),
});
