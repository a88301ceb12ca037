// Adam (Kingma & Ba 2015) as torch 1.13 computes it, with either weight-decay flavour: L2 added to the
// gradient (torch.optim.Adam: HDMIL, CLAM, MHIM-MIL, DTFD-MIL, DSMIL) or decoupled (torch.optim.AdamW,
// Loshchilov & Hutter 2019). docs/methods/training.md#adam-with-l2-weight-decay.
import * as tf from '@tensorflow/tfjs';
import { assignInPlace } from '../../nn/in-place.js';
import { ElementwiseOptimizer, type ParamSlot } from './base.js';

export interface AdamSettings {
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly decoupledWeightDecay: boolean;
}

/** Adam/AdamW; state per parameter: `exp_avg/<name>` (m), `exp_avg_sq/<name>` (v), plus the shared `step` t. */
export class AdamOptimizer extends ElementwiseOptimizer {
  protected readonly expAvg: tf.Variable[];
  protected readonly expAvgSq: tf.Variable[];

  constructor(slots: readonly ParamSlot[], protected readonly settings: AdamSettings) {
    super(slots, settings.decoupledWeightDecay);
    this.expAvg = this.addBuffers('exp_avg');
    this.expAvgSq = this.addBuffers('exp_avg_sq');
  }

  /** m_t and v_t of parameter `index` from its gradient g_t (L2 already added under coupled decay). */
  protected moments(index: number, g: tf.Tensor): { m: tf.Tensor; v: tf.Tensor } {
    const [beta1, beta2] = this.settings.betas;
    const m = (this.expAvg[index] as tf.Variable).mul(beta1).add(g.mul(1 - beta1)); // m_t
    const v = (this.expAvgSq[index] as tf.Variable).mul(beta2).add(g.mul(g).mul(1 - beta2)); // v_t
    return { m, v };
  }

  /** Stores the moments and the new parameter value. */
  protected commit(index: number, m: tf.Tensor, v: tf.Tensor, next: tf.Tensor): void {
    // In place: parameters and moments keep their buffers, so the wasm heap's layout repeats every step.
    assignInPlace(this.expAvg[index] as tf.Variable, m);
    assignInPlace(this.expAvgSq[index] as tf.Variable, v);
    assignInPlace((this.slots[index] as ParamSlot).variable, next);
  }

  protected update(index: number, grad: tf.Tensor, lr: number, step: number): void {
    const slot = this.slots[index] as ParamSlot;
    const [beta1, beta2] = this.settings.betas;
    const { m, v } = this.moments(index, this.coupledGradient(slot, grad)); // g_t (+ wd p under L2)
    // Bias corrections in float64 on the host, as torch does with the Python step count.
    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2 = 1 - beta2 ** step;
    const denom = v.sqrt().div(Math.sqrt(biasCorrection2)).add(this.settings.eps); // sqrt(v_t / bc2) + eps
    this.commit(index, m, v, this.decayedParameter(slot, lr).sub(m.div(denom).mul(lr / biasCorrection1)));
  }
}
