// Optimizers, learning-rate schedules and gradient clipping of the training engine. Each update rule matches
// torch 1.13 numerically (test/reference/optim.py): Adam with L2 added to the gradient, AdamW, SGD with
// momentum, RAdam, and the Lookahead wrapper; weight decay can be decoupled and can skip biases/norms.
import type * as tf from '@tensorflow/tfjs';
import type { OptimizerSection } from '../schema.js';
import { AdamOptimizer } from './adam.js';
import { type ElementwiseOptimizer, makeSlots, type Optimizer } from './base.js';
import { LookaheadOptimizer } from './lookahead.js';
import { RAdamOptimizer } from './radam.js';
import { SgdOptimizer } from './sgd.js';

export type { Optimizer } from './base.js';
export { parameterWeightDecay } from './base.js';
export { learningRateAt } from './schedule.js';
export { clipByGlobalNorm, clipGradientsByGlobalNorm } from './clip.js';
export { radamRectification, RADAM_RHO_THRESHOLD } from './radam.js';

/** Builds the optimizer `section` describes over `params` (name = state_dict key, used for state and decay rules). */
export function createOptimizer(section: OptimizerSection, params: ReadonlyArray<readonly [name: string, variable: tf.Variable]>): Optimizer {
  const slots = makeSlots(section, params);
  const decoupledWeightDecay = section.decoupledWeightDecay ?? section.name === 'adamw';
  let inner: ElementwiseOptimizer;
  switch (section.name) {
    case 'adam':
    case 'adamw':
      inner = new AdamOptimizer(slots, { betas: section.betas, eps: section.eps, decoupledWeightDecay });
      break;
    case 'radam':
      inner = new RAdamOptimizer(slots, { betas: section.betas, eps: section.eps, decoupledWeightDecay });
      break;
    case 'sgd':
      inner = new SgdOptimizer(slots, { momentum: section.momentum, decoupledWeightDecay });
      break;
  }
  return section.lookahead === undefined ? inner : new LookaheadOptimizer(inner, slots, section.lookahead);
}
