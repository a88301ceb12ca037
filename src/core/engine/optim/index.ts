// Optimizers, learning-rate schedules and gradient clipping of the training engine. Each update rule matches
// torch 1.13 numerically (test/reference/optim.py): Adam with L2 added to the gradient, AdamW, SGD with
// momentum, RAdam, and the Lookahead wrapper; weight decay can be decoupled and can skip biases/norms.
import type * as tf from '@tensorflow/tfjs';
import type { OptimizerSection } from '../schema.js';
import { ConfigError } from '../../errors.js';
import { AdamOptimizer } from './adam.js';
import { type ElementwiseOptimizer, makeSlots, type Optimizer } from './base.js';
import { FusedAdamOptimizer } from './fused-adam.js';
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
  if (section.fused === true && section.name !== 'adam' && section.name !== 'adamw') {
    throw new ConfigError('unsupported-option', `train.optimizer.fused is only implemented for adam and adamw (got name: ${section.name}).`, {
      hint: 'Remove train.optimizer.fused or switch train.optimizer.name to adam/adamw.',
    });
  }
  let inner: ElementwiseOptimizer;
  switch (section.name) {
    case 'adam':
    case 'adamw':
      {
        const settings = { betas: section.betas, eps: section.eps, decoupledWeightDecay };
        inner = section.fused ?? true ? new FusedAdamOptimizer(slots, settings) : new AdamOptimizer(slots, settings);
      }
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
