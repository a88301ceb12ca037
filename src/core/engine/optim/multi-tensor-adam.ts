// Adam/AdamW whose update runs once over a flat vector of many parameters instead of once per parameter tensor: the
// gradients, parameters and moments of every tensor up to `flatMaxSize` values are concatenated per weight-decay
// group, the ~15 element-wise kernels of the update run once per group, and the results are copied back into each
// variable's own buffer (assignSegmentsInPlace). Each element sees exactly the float32 operations of the unfused
// update (adam.ts) with the same scalars, so the result is bit-identical; what changes is the number of kernel
// dispatches and scalar uploads, which dominate for the small tensors of a model (biases, gains, small heads).
// Larger tensors keep the per-tensor kernels: for them the concatenation and the copy back cost more than the
// dispatches they save. docs/methods/training.md#adam-with-l2-weight-decay.
import * as tf from '@tensorflow/tfjs';
import { assignSegmentsInPlace } from '../../nn/in-place.js';
import { AdamOptimizer, type AdamSettings } from './adam.js';
import { checkGradients, checkLearningRate, type ParamSlot } from './base.js';

/** Tensors up to this many values join the flat update; larger ones are updated one by one. */
export const MULTI_TENSOR_ADAM_MAX_SIZE = 65536;

/** Adam/AdamW with the same state (`exp_avg/<name>`, `exp_avg_sq/<name>`, `step`) as AdamOptimizer. */
export class MultiTensorAdamOptimizer extends AdamOptimizer {
  /** Slot indices of the flat groups (one per weight-decay coefficient) and of the tensors updated one by one. */
  private readonly groups: ReadonlyArray<{ readonly weightDecay: number; readonly indices: readonly number[] }>;
  private readonly single: readonly number[];

  constructor(slots: readonly ParamSlot[], settings: AdamSettings, flatMaxSize = MULTI_TENSOR_ADAM_MAX_SIZE) {
    super(slots, settings);
    const byDecay = new Map<number, number[]>();
    const single: number[] = [];
    slots.forEach((slot, index) => {
      if (slot.variable.size > flatMaxSize || slot.variable.dtype !== 'float32') {
        single.push(index);
        return;
      }
      byDecay.set(slot.weightDecay, [...(byDecay.get(slot.weightDecay) ?? []), index]);
    });
    // A group of one gains nothing from the flat path.
    for (const [decay, indices] of [...byDecay]) {
      if (indices.length < 2) {
        single.push(...indices);
        byDecay.delete(decay);
      }
    }
    this.groups = [...byDecay].map(([weightDecay, indices]) => ({ weightDecay, indices }));
    this.single = single;
  }

  override step(grads: readonly tf.Tensor[], lr: number): void {
    checkGradients(this.slots, grads);
    checkLearningRate(lr);
    this.steps += 1;
    const step = this.steps;
    tf.tidy(() => {
      for (const index of this.single) this.update(index, grads[index] as tf.Tensor, lr, step);
      for (const group of this.groups) this.updateGroup(group.indices, group.weightDecay, grads, lr, step);
    });
  }

  /** The unfused update (AdamOptimizer.update) of the slots `indices`, which share `weightDecay`, on their concatenation. */
  private updateGroup(indices: readonly number[], weightDecay: number, grads: readonly tf.Tensor[], lr: number, step: number): void {
    const [beta1, beta2] = this.settings.betas;
    // In a tidy of its own: the reshaped views share the variables' buffers, and a shared buffer cannot be written in place.
    const flat = (tensors: tf.Tensor[]): tf.Tensor1D => tf.tidy(() => tf.concat(tensors.map((t) => tf.reshape(t, [-1])) as tf.Tensor1D[]));
    const variables = indices.map((i) => (this.slots[i] as ParamSlot).variable);
    const expAvg = indices.map((i) => this.expAvg[i] as tf.Variable);
    const expAvgSq = indices.map((i) => this.expAvgSq[i] as tf.Variable);
    const p = flat(variables);
    const rawGrad = flat(indices.map((i) => grads[i] as tf.Tensor));
    const decoupled = this.settings.decoupledWeightDecay;
    const g = !decoupled && weightDecay !== 0 ? rawGrad.add(p.mul(weightDecay)) : rawGrad; // g + wd p (L2)
    const m = flat(expAvg).mul(beta1).add(g.mul(1 - beta1)); // m_t
    const v = flat(expAvgSq).mul(beta2).add(g.mul(g).mul(1 - beta2)); // v_t
    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2 = 1 - beta2 ** step;
    const denom = v.sqrt().div(Math.sqrt(biasCorrection2)).add(this.settings.eps);
    const base = decoupled && weightDecay !== 0 ? p.mul(1 - lr * weightDecay) : p;
    const next = base.sub(m.div(denom).mul(lr / biasCorrection1));
    assignSegmentsInPlace(expAvg, m);
    assignSegmentsInPlace(expAvgSq, v);
    assignSegmentsInPlace(variables, next);
  }
}
