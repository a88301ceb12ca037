// Lookahead (Zhang, Lucas, Hinton, Ba, NeurIPS 2019, Algorithm 1): the inner optimizer takes k fast steps, then
// the slow weights move a fraction alpha towards the fast ones and the fast weights restart from them:
// phi <- phi + alpha (theta - phi), theta <- phi. TransMIL wraps RAdam with k 6, alpha 0.5 (docs/methods/transmil.md#training-defaults)
// through timm's wrapper, whose slow buffer is first filled at the first sync (slowStart 'first-sync').
import * as tf from '@tensorflow/tfjs';
import { assignState, checkStateKeys, checkStateShapes, readCounter, type ElementwiseOptimizer, type Optimizer, type ParamSlot } from './base.js';

export interface LookaheadSettings {
  readonly k: number;
  readonly alpha: number;
  readonly slowStart: 'initial' | 'first-sync';
}

/** Wraps an element-wise optimizer; adds state `lookahead_step` and `slow/<name>` per parameter. */
export class LookaheadOptimizer implements Optimizer {
  private fastSteps = 0;
  private readonly slow = new Map<string, tf.Variable>();

  constructor(
    private readonly inner: ElementwiseOptimizer,
    private readonly slots: readonly ParamSlot[],
    private readonly settings: LookaheadSettings,
  ) {
    for (const slot of slots) {
      // 'initial': phi_0 = theta_0 (the paper). 'first-sync': overwritten with theta_k at the first sync.
      const start = tf.tidy(() => tf.variable(settings.slowStart === 'initial' ? slot.variable.clone() : tf.zerosLike(slot.variable), false));
      this.slow.set(`slow/${slot.name}`, start);
    }
  }

  step(grads: readonly tf.Tensor[], lr: number): void {
    this.inner.step(grads, lr);
    this.fastSteps += 1;
    if (this.fastSteps % this.settings.k !== 0) return;
    const firstSyncCopy = this.settings.slowStart === 'first-sync' && this.fastSteps === this.settings.k;
    tf.tidy(() => {
      for (const slot of this.slots) {
        const slow = this.slow.get(`slow/${slot.name}`) as tf.Variable;
        if (firstSyncCopy) {
          // phi := theta, so phi + alpha (theta - phi) = theta: the fast weights stay as they are.
          slow.assign(slot.variable.clone());
          continue;
        }
        const next = slow.add(slot.variable.sub(slow).mul(this.settings.alpha)); // phi + alpha (theta - phi)
        slow.assign(next);
        slot.variable.assign(next.clone());
      }
    });
  }

  state(): Record<string, tf.Tensor> {
    const out = this.inner.state();
    out['lookahead_step'] = tf.scalar(this.fastSteps, 'int32');
    for (const [key, slow] of this.slow) out[key] = tf.clone(slow);
    return out;
  }

  loadState(state: Readonly<Record<string, tf.Tensor>>): void {
    const innerKeys = this.inner.stateKeys();
    checkStateKeys(state, [...innerKeys, 'lookahead_step', ...this.slow.keys()]);
    const fastSteps = readCounter(state, 'lookahead_step');
    checkStateShapes(state, this.slow);
    const innerState: Record<string, tf.Tensor> = {};
    for (const key of innerKeys) innerState[key] = state[key] as tf.Tensor;
    this.inner.loadState(innerState);
    assignState(state, this.slow);
    this.fastSteps = fastSteps;
  }

  dispose(): void {
    this.inner.dispose();
    for (const slow of this.slow.values()) slow.dispose();
    this.slow.clear();
  }
}
