/**
 * CLAM, one attention branch per class (aggregator/clam-mb)
 * Paper: M. Y. Lu, D. F. K. Williamson, T. Y. Chen, R. J. Chen, M. Barbieri, F. Mahmood, "Data-efficient and weakly
 *   supervised computational pathology on whole-slide images", Nat. Biomed. Eng. 5, 555-570 (2021). doi:10.1038/s41551-020-00682-w
 * Implements: projection h = ReLU(W1 x) (dropout), gated attention with C output columns, softmax over N per class,
 *   class embeddings M = A h, logit_c = f_c(M_c) with one bag head per class; instance-level clustering selection on
 *   row c of A for class c (docs/methods/clam.md#layers, docs/methods/clam.md#instance-clustering-loss)
 * Symbols: x [N,D] · h [N,E] · A [C,N] attention · M [C,E] class embeddings · f_c [E→1] bag heads (classifier slot,
 *   torch `classifiers.c`) · instance classifiers [E→2] (torch `instance_classifiers.c`) · logits [1,C]
 * Choices: heads are built by the classifier slot (linear reproduces CLAM); k clamped to N for small bags (the
 *   reference errors); clustering extras whenever the label is known; xavier-normal init with zero bias (CLAM 2021)
 *   by default. CLAM's total loss is 0.7·CE + 0.3·clam-instance. `instance_loss_fn.labels` as in clam-sb.
 * Checked against: test/reference/clam.py → test/reference/fixtures/clam-mb*.safetensors
 */
import * as tf from '@tensorflow/tfjs';
import { definePlugin, PluginError, type Aggregator, type AggregatorOutput, type Bag, type Classifier, type ForwardIO, type ModelContext, type TorchNaming } from '../../src/registry/index.js';
import { CLAM_INSTANCE_RENAME, ClamBody, ClamOptions } from '../../src/core/nn/clam.js';
import { ModuleList } from '../../src/core/nn/containers.js';
import { INSTANCE_CLUSTERING_EXTRAS } from '../../src/core/nn/instance-clustering.js';

class ClamMbAggregator extends ClamBody implements Aggregator {
  readonly torchNaming: TorchNaming = {
    renames: [['^classifiers\\.(\\d+)\\.fc\\.', 'classifiers.$1.'], CLAM_INSTANCE_RENAME],
    optionalOnImport: ['instance_loss_fn.labels'],
  };
  private readonly bagClassifiers: ModuleList<Classifier>;

  constructor(options: ClamOptions, ctx: ModelContext) {
    super(options, ctx, ctx.numClasses);
    if (ctx.numClasses < 2) {
      throw new PluginError('invalid-class-count', `aggregator "clam-mb" needs at least 2 classes (got ${ctx.numClasses}).`, { hint: 'Use clam-sb for a single output.' });
    }
    const classes = Array.from({ length: ctx.numClasses }, (_, c) => c);
    this.bagClassifiers = this.addModule('classifiers', new ModuleList(classes.map((c) => ctx.makeClassifier(this.embeddingDim, 1, ctx.rng.fork(`classifiers.${c}`)))));
  }

  forward(bag: Bag, io: ForwardIO): AggregatorOutput {
    return tf.tidy(() => {
      const { h, attention } = this.attend(bag, io); // [N, E], [C, N]
      const m = tf.matMul(attention, h) as tf.Tensor2D; // [C, E]  M = A h
      const perClass = this.bagClassifiers.items.map((head, c) => head.forward(tf.slice(m, [c, 0], [1, -1]) as tf.Tensor2D, io)); // C × [1, 1]
      const logits = tf.concat(perClass, 1) as tf.Tensor2D; // [1, C]
      return { embedding: m, logits, instanceScores: attention, extras: this.instanceExtras(attention, h, bag, io) };
    });
  }
}

export default definePlugin({
  kind: 'aggregator',
  name: 'clam-mb',
  summary: 'CLAM multi-branch gated attention (one branch and bag head per class) with instance-level clustering',
  paper: { cite: 'Lu et al., Data-efficient and weakly supervised computational pathology on whole-slide images, Nat. Biomed. Eng. 2021', doi: '10.1038/s41551-020-00682-w' },
  options: ClamOptions,
  capabilities: { instanceScores: true, permutationInvariant: true, ownsClassifier: true, provides: [...INSTANCE_CLUSTERING_EXTRAS] },
  create: (options, ctx) => new ClamMbAggregator(options, ctx),
});
