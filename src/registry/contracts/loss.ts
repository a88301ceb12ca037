// Loss plugins: read the model's named outputs, return named scalar terms. The engine multiplies each
// loss slot by its configured weight, sums them, and logs every term per epoch.
import type * as tf from '@tensorflow/tfjs';
import type { AggregatorOutput } from './model.js';

/** The composed model's outputs: the aggregator's, with `logits` always present. */
export interface ModelOutput extends AggregatorOutput {
  /** [1, C] slide logits. */
  readonly logits: tf.Tensor2D;
}

export interface LossTarget {
  /** Slide label in [0, C). */
  readonly label: number;
  readonly numClasses: number;
}

export interface Loss {
  /** Named scalar terms (unweighted); one term is usual, `{ '': ce }` is logged under the slot name. */
  compute(output: ModelOutput, target: LossTarget): Record<string, tf.Scalar>;
}

export interface LossCapabilities {
  /** Names of `extras` this loss reads; the engine checks the aggregator provides them before training. */
  readonly requires: readonly string[];
}

export const DEFAULT_LOSS_CAPABILITIES: LossCapabilities = { requires: [] };

export interface LossContext {
  readonly numClasses: number;
}
