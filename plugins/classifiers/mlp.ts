/**
 * Multi-layer perceptron head (classifier/mlp)
 * Paper: the MLP bag/instance heads of MIL baselines, e.g. M. Ilse, J. M. Tomczak, M. Welling, "Attention-based Deep
 *   Multiple Instance Learning", ICML 2018 (fully-connected heads on the bag embedding). arXiv:1802.04712
 * Implements: logits = W_L(… drop(act(W_1 z + b_1)) …) + b_L (docs/methods/conventions.md#linear-layers)
 * Symbols: z [M,E] embeddings · hidden widths H_1..H_{L-1} · logits [M,out]
 * Choices: torch Sequential layout (Linear, activation, Dropout per hidden layer), so keys are layers.0, layers.3, …;
 *   no hidden layers = a linear head; init selectable (docs/methods/conventions.md#initialisations)
 * Checked against: hand-computed two-layer forward in test/plugins/classifiers/mlp.test.ts
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, Module, type Classifier, type ForwardIO, type ModelContext } from '../../src/registry/index.js';
import { Linear, activate, dropout } from '../../src/core/nn/layers.js';

export const MlpOptions = z.strictObject({
  hiddenDims: z.array(z.int().positive()).default([256]).describe('widths of the hidden layers, in order ([] = linear head)'),
  activation: z.enum(['relu', 'gelu', 'tanh', 'sigmoid', 'elu', 'leaky-relu']).default('relu').describe('non-linearity after each hidden layer'),
  dropout: z.number().min(0).lt(1).default(0).describe('dropout after each hidden activation while training'),
  bias: z.boolean().default(true).describe('learn biases'),
  init: z.enum(['torch-default', 'xavier-normal', 'kaiming-normal', 'orthogonal']).default('torch-default').describe('weight initialisation (non-default schemes start biases at 0)'),
});
export type MlpOptions = z.output<typeof MlpOptions>;

class MlpClassifier extends Module implements Classifier {
  private readonly layers: Linear[];

  constructor(private readonly options: MlpOptions, ctx: ModelContext) {
    super();
    const widths = [ctx.inputDim, ...options.hiddenDims, ctx.outputDim];
    // Sequential(Linear, act, Dropout, …, Linear): Linear i sits at index 3i.
    this.layers = widths.slice(1).map((out, i) =>
      this.addModule(`layers.${3 * i}`, new Linear(widths[i] as number, out, ctx.rng.fork(`layers.${3 * i}`), { init: options.init, bias: options.bias })));
  }

  forward(x: tf.Tensor2D, io: ForwardIO): tf.Tensor2D {
    return tf.tidy(() => {
      let h = x; // [M, E]
      this.layers.forEach((layer, i) => {
        h = layer.forward(h); // [M, width_i]
        if (i < this.layers.length - 1) h = dropout(activate(h, this.options.activation), this.options.dropout, io.training, io.rng) as tf.Tensor2D;
      });
      return h; // [M, out]
    });
  }
}

export default definePlugin({
  kind: 'classifier',
  name: 'mlp',
  summary: 'multi-layer perceptron head (hidden widths, activation, dropout)',
  options: MlpOptions,
  capabilities: {},
  create: (options, ctx) => new MlpClassifier(options, ctx),
});
