// Rectified Adam (Liu et al., ICLR 2020) as torch 1.13's torch.optim.RAdam: the adaptive step is used only when
// the SMA length rho_t exceeds 5, otherwise the bias-corrected momentum alone (an SGD-with-momentum step).
// Weight decay is torch's L2 by default, or decoupled (p <- p (1 - lr wd) before the update) as in the RAdam
// TransMIL trains with (docs/methods/training.md#radam).
import * as tf from '@tensorflow/tfjs';
import type { ParamSlot } from './base.js';
import { AdamOptimizer } from './adam.js';

/** torch 1.13's rectification threshold: the adaptive update applies when rho_t > 5. */
export const RADAM_RHO_THRESHOLD = 5;

/** rho_t and the variance rectification term r_t at step t (r_t is null while rho_t <= 5). */
export function radamRectification(beta2: number, step: number): { rho: number; rect: number | null } {
  const rhoInf = 2 / (1 - beta2) - 1;
  const rho = rhoInf - (2 * step * beta2 ** step) / (1 - beta2 ** step);
  if (!(rho > RADAM_RHO_THRESHOLD)) return { rho, rect: null };
  return { rho, rect: Math.sqrt(((rho - 4) * (rho - 2) * rhoInf) / ((rhoInf - 4) * (rhoInf - 2) * rho)) };
}

/** RAdam: Adam's moments and state (`exp_avg/<name>`, `exp_avg_sq/<name>`, `step`), a rectified step. */
export class RAdamOptimizer extends AdamOptimizer {
  protected override update(index: number, grad: tf.Tensor, lr: number, step: number): void {
    const slot = this.slots[index] as ParamSlot;
    const [beta1, beta2] = this.settings.betas;
    const { m, v } = this.moments(index, this.coupledGradient(slot, grad));
    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2 = 1 - beta2 ** step;
    const mHat = m.div(biasCorrection1); // bias-corrected first moment
    const { rect } = radamRectification(beta2, step);
    const delta =
      rect === null
        ? mHat.mul(lr) // warm-up regime: variance of the adaptive lr is intractable
        : mHat.mul(lr).mul(tf.scalar(Math.sqrt(biasCorrection2)).div(v.sqrt().add(this.settings.eps))).mul(rect);
    this.commit(index, m, v, this.decayedParameter(slot, lr).sub(delta));
  }
}
