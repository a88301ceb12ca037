// A torch-like module tree over tfjs variables: named parameters and buffers whose dotted paths are the
// original implementations' state_dict keys, so checkpoints exchange with PyTorch by name.
import * as tf from '@tensorflow/tfjs';

/**
 * How a milkit tensor maps onto the PyTorch tensor of the same key: `perm` is the axis permutation from
 * milkit's layout to torch's (Linear weights are stored [in, out] here and [out, in] in torch: perm [1, 0]).
 */
export interface TorchLayout {
  readonly perm?: readonly number[];
}

export interface NamedTensorEntry {
  readonly variable: tf.Variable;
  /** false for buffers such as BatchNorm running statistics. */
  readonly trainable: boolean;
  readonly torch: TorchLayout;
}

/** Base class of every model part (aggregator, classifier, prescreener, shared layers). */
export abstract class Module {
  private readonly ownTensors = new Map<string, NamedTensorEntry>();
  private readonly ownChildren = new Map<string, Module>();
  private trainingMode = true;

  /** Registers a trainable parameter, taking ownership of `init`. */
  protected addParameter(name: string, init: tf.Tensor, torch: TorchLayout = {}): tf.Variable {
    return this.addTensor(name, init, true, torch);
  }

  /** Registers a non-trainable buffer (running mean/var, counters), taking ownership of `init`. */
  protected addBuffer(name: string, init: tf.Tensor, torch: TorchLayout = {}): tf.Variable {
    return this.addTensor(name, init, false, torch);
  }

  /** Registers a child module under `name` (a state_dict path segment such as `attention_net` or `0`). */
  protected addModule<M extends Module>(name: string, child: M): M {
    if (this.ownChildren.has(name) || this.ownTensors.has(name)) throw new Error(`duplicate module name "${name}"`);
    this.ownChildren.set(name, child);
    return child;
  }

  private addTensor(name: string, init: tf.Tensor, trainable: boolean, torch: TorchLayout): tf.Variable {
    if (this.ownChildren.has(name) || this.ownTensors.has(name)) throw new Error(`duplicate tensor name "${name}"`);
    const variable = tf.variable(init, trainable);
    init.dispose();
    this.ownTensors.set(name, { variable, trainable, torch });
    return variable;
  }

  /** Every tensor of the tree with its dotted path, parameters and buffers, in registration order. */
  namedTensors(prefix = ''): Array<[string, NamedTensorEntry]> {
    const out: Array<[string, NamedTensorEntry]> = [];
    for (const [name, entry] of this.ownTensors) out.push([prefix + name, entry]);
    for (const [name, child] of this.ownChildren) out.push(...child.namedTensors(`${prefix}${name}.`));
    return out;
  }

  /** Trainable variables, in a stable order (what optimizers and gradient calls use). */
  trainableVariables(): tf.Variable[] {
    return this.namedTensors()
      .filter(([, entry]) => entry.trainable)
      .map(([, entry]) => entry.variable);
  }

  /** Switches dropout/noise/BatchNorm behaviour for the whole tree. */
  setTraining(training: boolean): this {
    this.trainingMode = training;
    for (const child of this.ownChildren.values()) child.setTraining(training);
    return this;
  }

  get training(): boolean {
    return this.trainingMode;
  }

  /** Frees every variable of the tree. */
  dispose(): void {
    for (const entry of this.ownTensors.values()) entry.variable.dispose();
    for (const child of this.ownChildren.values()) child.dispose();
  }
}
