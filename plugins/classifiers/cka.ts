/**
 * Chebyshev Kolmogorov-Arnold classifier (classifier/cka)
 * Paper: J. Dong et al., "Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical
 *   Distillation Multi-Instance Learning" (HDMIL), CVPR 2025 — the CKA (Chebyshev Kolmogorov-Arnold) bag and
 *   instance classifiers
 * Implements: t = tanh(x); T_0 = 1, T_1 = t, T_k = 2t T_{k-1} - T_{k-2}; y_o = Σ_i Σ_k Θ[i,o,k] T_k(t_i)
 *   (docs/methods/hdmil.md#cka)
 * Symbols: x [M,I] embeddings · Θ `cheby_coeffs` [I,O,K+1] (stored [I,K+1,O]) · K degree · y [M,O] logits
 * Choices: a single layer by default as in HDMIL (`hiddenDims` adds KAN layers for experiments; HDMIL never
 *   uses them); no bias and no normalisation (the reference builds a LayerNorm list it never applies);
 *   xavier-normal on the 3-D coefficient tensor, std = sqrt(2 / ((I+O)(K+1)))
 * Checked against: test/reference/hdmil_reference.py → test/reference/fixtures/hdmil-cka.json; gradient by
 *   central finite differences; CKA(0) = Σ_i Σ_k Θ[i,o,k] cos(kπ/2) by hand
 */
import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { definePlugin, Module, type Classifier, type ForwardIO, type ModelContext } from '../../src/registry/index.js';
import { ChebyshevKanLayer } from '../../src/core/nn/chebyshev.js';
import { ModuleList } from '../../src/core/nn/containers.js';

export const CkaOptions = z.strictObject({
  degree: z.int().min(0).max(64).default(12).describe('K: highest Chebyshev degree (12 in HDMIL; 16 for TCGA-NSCLC)'),
  hiddenDims: z.array(z.int().positive()).default([]).describe('widths of extra KAN layers between input and output (HDMIL: none)'),
  init: z.enum(['xavier-normal', 'normal']).default('xavier-normal').describe('coefficient init: xavier-normal on the 3-D tensor ("xaiver" in HDMIL) or N(0, (1/(I(K+1)))^2)'),
});
export type CkaOptions = z.output<typeof CkaOptions>;

/** A stack of Chebyshev-KAN layers registered as `act_fun.<i>` (HDMIL's KAN module layout). */
export class CkaClassifier extends Module implements Classifier {
  private readonly layers: ModuleList<ChebyshevKanLayer>;

  constructor(options: CkaOptions, ctx: Pick<ModelContext, 'inputDim' | 'outputDim' | 'rng'>) {
    super();
    const widths = [ctx.inputDim, ...options.hiddenDims, ctx.outputDim];
    const layers = widths.slice(1).map((width, i) => new ChebyshevKanLayer(widths[i] as number, width, options.degree, ctx.rng.fork(`act_fun.${i}`), options.init));
    this.layers = this.addModule('act_fun', new ModuleList(layers));
  }

  forward(x: tf.Tensor2D, _io: ForwardIO): tf.Tensor2D {
    // Each layer squashes its own input with tanh, so no activation sits between layers.
    let y = x; // [M, I]
    for (const layer of this.layers.items) {
      const next = layer.forward(y); // [M, width]
      if (y !== x) y.dispose();
      y = next;
    }
    return y; // [M, O]
  }
}

export default definePlugin({
  kind: 'classifier',
  name: 'cka',
  summary: 'Chebyshev-polynomial Kolmogorov-Arnold classifier (HDMIL)',
  paper: { cite: 'Dong et al., Fast and Accurate Gigapixel Pathological Image Classification with Hierarchical Distillation Multi-Instance Learning, CVPR 2025' },
  options: CkaOptions,
  capabilities: {},
  create: (options, ctx) => new CkaClassifier(options, ctx),
});
