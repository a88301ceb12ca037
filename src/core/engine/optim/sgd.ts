// SGD with heavy-ball momentum as torch 1.13's torch.optim.SGD (dampening 0, no Nesterov): the momentum buffer
// starts as the first gradient itself, then b_t = mu b_{t-1} + g_t; L2 weight decay is added to the gradient
// (CLAM's optional optimiser) unless decoupled.
import * as tf from '@tensorflow/tfjs';
import { assignInPlace } from '../../nn/in-place.js';
import { ElementwiseOptimizer, type ParamSlot } from './base.js';

export interface SgdSettings {
  readonly momentum: number;
  readonly decoupledWeightDecay: boolean;
}

/** SGD; state per parameter: `momentum_buffer/<name>` (when momentum > 0), plus the shared `step`. */
export class SgdOptimizer extends ElementwiseOptimizer {
  private readonly momentumBuffers: tf.Variable[] | null;

  constructor(slots: readonly ParamSlot[], private readonly settings: SgdSettings) {
    super(slots, settings.decoupledWeightDecay);
    this.momentumBuffers = settings.momentum > 0 ? this.addBuffers('momentum_buffer') : null;
  }

  protected update(index: number, grad: tf.Tensor, lr: number): void {
    const slot = this.slots[index] as ParamSlot;
    let direction = this.coupledGradient(slot, grad); // d_t = g_t (+ wd p)
    if (this.momentumBuffers !== null) {
      const buffer = this.momentumBuffers[index] as tf.Variable;
      // torch starts the buffer as a copy of the first d_t; from a zero buffer mu * 0 + d_1 is that same value.
      const next = buffer.mul(this.settings.momentum).add(direction);
      assignInPlace(buffer, next); // in place: see src/core/nn/in-place.ts
      direction = next;
    }
    assignInPlace(slot.variable, this.decayedParameter(slot, lr).sub(direction.mul(lr)));
  }
}
