/**
 * Linear classifier (classifier/linear)
 * Paper: the bag-level head every MIL method here ends with, e.g. M. Lu et al., "Data-efficient and weakly
 *   supervised computational pathology on whole-slide images" (CLAM), Nat. Biomed. Eng. 2021. doi:10.1038/s41551-020-00682-w
 * Implements: logits = z W + b (docs/methods/conventions.md#linear-layers)
 * Symbols: z [M,E] embeddings · W [E,C] (torch [C,E]) · logits [M,C]
 * Choices: init selectable as the originals differ (docs/methods/conventions.md#initialisations)
 * Checked against: hand-computed affine map in test/plugins/classifiers/linear.test.ts
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, Module, type Classifier, type ForwardIO, type ModelContext } from '../../src/registry/index.js';
import { Linear } from '../../src/core/nn/layers.js';

export const LinearOptions = z.strictObject({
  init: z.enum(['torch-default', 'xavier-normal', 'kaiming-normal', 'orthogonal', 'zeros']).default('torch-default').describe('weight initialisation (bias: torch-default draws, else zeros)'),
  bias: z.boolean().default(true).describe('learn a bias'),
});
export type LinearOptions = z.output<typeof LinearOptions>;

class LinearClassifier extends Module implements Classifier {
  private readonly fc: Linear;

  constructor(options: LinearOptions, ctx: ModelContext) {
    super();
    // Registered under `fc`, so the state_dict keys are `fc.weight` / `fc.bias` relative to the slot.
    this.fc = this.addModule('fc', new Linear(ctx.inputDim, ctx.outputDim, ctx.rng, { init: options.init, bias: options.bias }));
  }

  forward(x: tf.Tensor2D, _io: ForwardIO): tf.Tensor2D {
    return this.fc.forward(x); // [M, C]
  }
}

export default definePlugin({
  kind: 'classifier',
  name: 'linear',
  summary: 'affine map from the slide embedding to class logits',
  options: LinearOptions,
  capabilities: {},
  create: (options, ctx) => new LinearClassifier(options, ctx),
});
