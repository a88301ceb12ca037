// Shared machinery of milkit's optimizers: per-parameter weight decay, on-device state buffers, gradient and
// learning-rate checks, and the named state used by checkpoints. The update rules live in adam.ts, radam.ts,
// sgd.ts and lookahead.ts.
import * as tf from '@tensorflow/tfjs';
import { DataError, NumericsError, PluginError } from '../../errors.js';
import type { OptimizerSection } from '../schema.js';

export interface Optimizer {
  /** One update of every variable from `grads` (same order as the variables given at creation) at learning rate `lr`. */
  step(grads: readonly tf.Tensor[], lr: number): void;
  /** Named state tensors (moments, step counters, slow weights) for checkpoints; `loadState` restores them exactly. */
  state(): Record<string, tf.Tensor>;
  loadState(state: Readonly<Record<string, tf.Tensor>>): void;
  dispose(): void;
}

/** One optimised variable with the weight-decay coefficient that applies to it (0 when excluded). */
export interface ParamSlot {
  readonly name: string;
  readonly variable: tf.Variable;
  readonly weightDecay: number;
}

/** A glob over dotted parameter names, `*` matching any run of characters (dots included), anchored at both ends. */
function globToRegExp(glob: string): RegExp {
  const escaped = glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`);
}

/** Weight-decay coefficient of the parameter `name` of rank `rank` under `section` (0 = not decayed). */
export function parameterWeightDecay(section: OptimizerSection, name: string, rank: number): number {
  if (section.weightDecay === 0) return 0;
  // timm's add_weight_decay (TransMIL) exempts every 1-D tensor: LayerNorm gains/biases and Linear biases.
  if (!section.decayVectors && rank === 1) return 0;
  if (section.excludeFromDecay.some((glob) => globToRegExp(glob).test(name))) return 0;
  return section.weightDecay;
}

/** Builds the slots for `params`, rejecting duplicate names (state keys would collide). */
export function makeSlots(section: OptimizerSection, params: ReadonlyArray<readonly [string, tf.Variable]>): ParamSlot[] {
  const seen = new Set<string>();
  return params.map(([name, variable]) => {
    if (seen.has(name)) {
      throw new PluginError('duplicate-parameter', `parameter name "${name}" is given to the optimizer twice.`, {
        hint: 'Every optimised variable needs its own dotted name (its state_dict key).',
      });
    }
    seen.add(name);
    return { name, variable, weightDecay: parameterWeightDecay(section, name, variable.rank) };
  });
}

/** Throws unless `grads` lines up one-to-one, shape for shape, with `slots`. */
export function checkGradients(slots: readonly ParamSlot[], grads: readonly tf.Tensor[]): void {
  if (grads.length !== slots.length) {
    throw new NumericsError('gradient-mismatch', `got ${grads.length} gradients for ${slots.length} optimised variables.`, {
      hint: 'Pass one gradient per variable, in the order the variables were given to createOptimizer.',
    });
  }
  slots.forEach((slot, i) => {
    const grad = grads[i] as tf.Tensor;
    if (!tf.util.arraysEqual(grad.shape, slot.variable.shape)) {
      throw new NumericsError(
        'gradient-mismatch',
        `gradient ${i} has shape [${grad.shape.join(', ')}] but parameter "${slot.name}" has shape [${slot.variable.shape.join(', ')}].`,
        { hint: 'Pass one gradient per variable, in the order the variables were given to createOptimizer.' },
      );
    }
  });
}

export function checkLearningRate(lr: number): void {
  if (!Number.isFinite(lr) || lr < 0) {
    throw new NumericsError('invalid-learning-rate', `learning rate must be a finite number >= 0 (got ${lr}).`, {
      hint: 'Check train.optimizer.lr and the schedule settings (train.schedule, gamma, minLr).',
    });
  }
}

function stateMismatch(message: string): DataError {
  return new DataError('optimizer-state-mismatch', message, {
    hint: 'The checkpoint was written with different train.optimizer settings or model parameters; resume with the same configuration.',
  });
}

/** Reads a non-negative integer counter stored as a scalar tensor (host read once, at resume). */
export function readCounter(state: Readonly<Record<string, tf.Tensor>>, key: string): number {
  const tensor = state[key];
  if (tensor === undefined) throw stateMismatch(`optimizer state lacks "${key}".`);
  const value = tensor.size === 1 ? (tensor.dataSync()[0] as number) : Number.NaN;
  if (!Number.isInteger(value) || value < 0) throw stateMismatch(`optimizer state "${key}" must be one integer >= 0 (got ${value}).`);
  return value;
}

/** Checks that `state` has exactly the keys `expected` (nothing missing, nothing foreign). */
export function checkStateKeys(state: Readonly<Record<string, tf.Tensor>>, expected: readonly string[]): void {
  const missing = expected.filter((key) => state[key] === undefined);
  const known = new Set(expected);
  const foreign = Object.keys(state).filter((key) => !known.has(key));
  if (missing.length > 0 || foreign.length > 0) {
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`missing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (+${missing.length - 5} more)` : ''}`);
    if (foreign.length > 0) parts.push(`unexpected ${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ` (+${foreign.length - 5} more)` : ''}`);
    throw stateMismatch(`optimizer state does not match this optimizer: ${parts.join('; ')}.`);
  }
}

/** Throws unless every `targets` entry has a same-shaped tensor in `state` (checked before anything is assigned). */
export function checkStateShapes(state: Readonly<Record<string, tf.Tensor>>, targets: ReadonlyMap<string, tf.Variable>): void {
  for (const [key, target] of targets) {
    const source = state[key];
    if (source === undefined) throw stateMismatch(`optimizer state lacks "${key}".`);
    if (!tf.util.arraysEqual(target.shape, source.shape)) {
      throw stateMismatch(`optimizer state "${key}" has shape [${source.shape.join(', ')}], expected [${target.shape.join(', ')}].`);
    }
  }
}

/** Copies the `state` tensors into their `targets` variables (each variable then holds its own reference). */
export function assignState(state: Readonly<Record<string, tf.Tensor>>, targets: ReadonlyMap<string, tf.Variable>): void {
  tf.tidy(() => {
    for (const [key, target] of targets) {
      const source = state[key] as tf.Tensor;
      target.assign(source.dtype === 'float32' ? source : tf.cast(source, 'float32'));
    }
  });
}

/**
 * Base of the element-wise optimizers: owns the step counter and one named buffer set per slot, runs every
 * update inside a single tf.tidy so intermediate tensors never outlive a step, and applies the two weight-decay
 * flavours (L2 added to the gradient as torch's Adam/SGD/RAdam, or decoupled p <- p (1 - lr wd) as AdamW).
 */
export abstract class ElementwiseOptimizer implements Optimizer {
  protected steps = 0;
  private readonly buffers = new Map<string, tf.Variable>();

  protected constructor(
    protected readonly slots: readonly ParamSlot[],
    private readonly decoupledDecay: boolean,
  ) {}

  /** Creates a zero-initialised, non-trainable state buffer `kind/<param name>` for every slot. */
  protected addBuffers(kind: string): tf.Variable[] {
    return this.slots.map((slot) => {
      const buffer = tf.tidy(() => tf.variable(tf.zerosLike(slot.variable), false));
      this.buffers.set(`${kind}/${slot.name}`, buffer);
      return buffer;
    });
  }

  /** The update of one slot; `step` is 1 on the first call. Runs inside tf.tidy. */
  protected abstract update(index: number, grad: tf.Tensor, lr: number, step: number): void;

  step(grads: readonly tf.Tensor[], lr: number): void {
    checkGradients(this.slots, grads);
    checkLearningRate(lr);
    this.steps += 1;
    const step = this.steps;
    tf.tidy(() => {
      grads.forEach((grad, i) => this.update(i, grad, lr, step));
    });
  }

  /** torch's coupled decay: the gradient becomes g + wd p. */
  protected coupledGradient(slot: ParamSlot, grad: tf.Tensor): tf.Tensor {
    if (this.decoupledDecay || slot.weightDecay === 0) return grad;
    return grad.add(slot.variable.mul(slot.weightDecay));
  }

  /** The parameter the update is applied to: p (1 - lr wd) under decoupled decay, p otherwise. */
  protected decayedParameter(slot: ParamSlot, lr: number): tf.Tensor {
    if (!this.decoupledDecay || slot.weightDecay === 0) return slot.variable;
    return slot.variable.mul(1 - lr * slot.weightDecay);
  }

  /** Keys `state()` returns and `loadState` requires. */
  stateKeys(): string[] {
    return ['step', ...this.buffers.keys()];
  }

  state(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = { step: tf.scalar(this.steps, 'int32') };
    for (const [key, buffer] of this.buffers) out[key] = tf.clone(buffer);
    return out;
  }

  loadState(state: Readonly<Record<string, tf.Tensor>>): void {
    checkStateKeys(state, this.stateKeys());
    const steps = readCounter(state, 'step');
    checkStateShapes(state, this.buffers);
    assignState(state, this.buffers);
    this.steps = steps;
  }

  dispose(): void {
    for (const buffer of this.buffers.values()) buffer.dispose();
    this.buffers.clear();
  }
}
