// Adam/AdamW with the update of each parameter tensor fused into one pass instead of ~13 tensor kernels. On the wasm
// backend every tensor is updated in place by one SIMD function on the heap (src/core/runtime/heap-kernels.ts).
// Elsewhere, small tensors (biases, gains, small heads) are updated in one host loop, for which the per-kernel
// dispatch costs more than the arithmetic, and large tensors keep the kernel path, where SIMD loops beat a scalar
// host loop (measured: a 512×1024 weight takes several times longer on the host). Every float32 operation of the unfused update (adam.ts) is replayed
// in the same order, each rounded with Math.fround: a single +, -, ×, ÷ or √ of float32 operands computed in
// float64 and rounded once to float32 is the correctly rounded float32 result, which is what the cpu and wasm
// kernels compute — so both paths are bit-identical to AdamOptimizer (test/core/engine/optim/fused-adam.test.ts
// checks it on both backends). docs/methods/training.md#adam-with-l2-weight-decay.
import * as tf from '@tensorflow/tfjs';
import { hostFloatValues as floatValues } from '../../nn/host-values.js';
import { assignInPlace } from '../../nn/in-place.js';
import { adamStepOnHeap, type AdamStepScalars } from '../../runtime/heap-kernels.js';
import { AdamOptimizer } from './adam.js';
import { checkGradients, checkLearningRate, type ParamSlot } from './base.js';

const f32 = Math.fround;

/** Tensors up to this many elements are updated on the host; larger ones by the tensor kernels. */
export const FUSED_ADAM_HOST_MAX_SIZE = 16384;

/** Adam/AdamW with the same state (`exp_avg/<name>`, `exp_avg_sq/<name>`, `step`) as AdamOptimizer. */
export class FusedAdamOptimizer extends AdamOptimizer {
  override step(grads: readonly tf.Tensor[], lr: number): void {
    checkGradients(this.slots, grads);
    checkLearningRate(lr);
    this.steps += 1;
    const step = this.steps;
    const [beta1, beta2] = this.settings.betas;
    // The scalars the unfused update multiplies or divides by, as the float32 tensors tfjs makes of them.
    const b1 = f32(beta1);
    const oneMinusB1 = f32(1 - beta1);
    const b2 = f32(beta2);
    const oneMinusB2 = f32(1 - beta2);
    const sqrtBc2 = f32(Math.sqrt(1 - beta2 ** step));
    const eps = f32(this.settings.eps);
    const stepSize = f32(lr / (1 - beta1 ** step));
    const decoupled = this.settings.decoupledWeightDecay;

    // On wasm: every tensor in one SIMD pass in place on the heap (src/core/runtime/heap-kernels.wat), where its
    // buffers are its own. Otherwise large tensors take the unfused kernels (same numbers, SIMD speed) and small ones
    // the host loop below.
    const onHeap = this.slots.map((slot, index) => {
      const wd = slot.weightDecay;
      return adamStepOnHeap(slot.variable, grads[index] as tf.Tensor, this.expAvg[index] as tf.Variable, this.expAvgSq[index] as tf.Variable, {
        b1, oneMinusB1, b2, oneMinusB2, sqrtBc2, eps, stepSize,
        coupledWeightDecay: !decoupled && wd !== 0 ? f32(wd) : 0,
        decay: decoupled && wd !== 0 ? f32(1 - lr * wd) : 1,
      });
    });
    const onHost = this.slots.map((slot, index) => !onHeap[index] && slot.variable.size <= FUSED_ADAM_HOST_MAX_SIZE);
    tf.tidy(() => {
      grads.forEach((grad, index) => {
        if (!onHeap[index] && !onHost[index]) this.update(index, grad, lr, step);
      });
    });
    // Small tensors, pass 1: compute every new value into host arrays (no tensor is created while heap views are live).
    const hostSlots = onHost.flatMap((host, index) => (host ? [index] : []));
    const results = hostSlots.map((index) => {
      const slot = this.slots[index] as ParamSlot;
      const p = floatValues(slot.variable);
      const g = floatValues(grads[index] as tf.Tensor);
      const mOld = floatValues(this.expAvg[index] as tf.Variable);
      const vOld = floatValues(this.expAvgSq[index] as tf.Variable);
      return updateSlot(slot, p, g, mOld, vOld, { b1, oneMinusB1, b2, oneMinusB2, sqrtBc2, eps, stepSize, lr, decoupled });
    });
    // Pass 2: upload and swap in.
    results.forEach(({ m, v, next }, position) => {
      const index = hostSlots[position] as number;
      const slot = this.slots[index] as ParamSlot;
      const shape = slot.variable.shape;
      for (const [target, values] of [[this.expAvg[index], m], [this.expAvgSq[index], v], [slot.variable, next]] as const) {
        const fresh = tf.tensor(values, shape, 'float32');
        assignInPlace(target as tf.Variable, fresh);
        fresh.dispose(); // the variable keeps its own reference
      }
    });
  }
}

/** The heap kernel's step scalars; the per-parameter decay terms are derived from `lr` and `decoupled` per slot. */
interface StepScalars extends Omit<AdamStepScalars, 'coupledWeightDecay' | 'decay'> {
  readonly lr: number;
  readonly decoupled: boolean;
}

/** One parameter's update; the comments give the unfused tensor expression each line replays. */
function updateSlot(slot: ParamSlot, p: Float32Array, g: Float32Array, mOld: Float32Array, vOld: Float32Array, s: StepScalars): { m: Float32Array; v: Float32Array; next: Float32Array } {
  const size = p.length;
  const m = new Float32Array(size);
  const v = new Float32Array(size);
  const next = new Float32Array(size);
  const wd = slot.weightDecay;
  const coupledWd = !s.decoupled && wd !== 0 ? f32(wd) : 0; // g + p·wd
  const decayFactor = s.decoupled && wd !== 0 ? f32(1 - s.lr * wd) : 1; // p·(1 − lr·wd)
  const { b1, oneMinusB1, b2, oneMinusB2, sqrtBc2, eps, stepSize } = s;
  for (let i = 0; i < size; i += 1) {
    const pi = p[i] as number;
    const gi = coupledWd === 0 ? (g[i] as number) : f32((g[i] as number) + f32(pi * coupledWd));
    const mi = f32(f32((mOld[i] as number) * b1) + f32(gi * oneMinusB1)); // m·β1 + g·(1 − β1)
    const vi = f32(f32((vOld[i] as number) * b2) + f32(f32(gi * gi) * oneMinusB2)); // v·β2 + g·g·(1 − β2)
    const denom = f32(f32(f32(Math.sqrt(vi)) / sqrtBc2) + eps); // √v / √bc2 + eps
    const base = decayFactor === 1 ? pi : f32(pi * decayFactor);
    m[i] = mi;
    v[i] = vi;
    next[i] = f32(base - f32(f32(mi / denom) * stepSize)); // p − (m / denom)·(lr / bc1)
  }
  return { m, v, next };
}
