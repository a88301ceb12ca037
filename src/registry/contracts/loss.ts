// Loss plugins: read the model's named outputs, return named scalar terms. The engine multiplies each
// loss slot by its configured weight, sums them, and logs every term per epoch.
import type * as tf from '@tensorflow/tfjs';
import type { AggregatorOutput } from './model.js';
import type { LabelHierarchy } from './data.js';

/** The composed model's outputs: the aggregator's, with `logits` always present. */
export interface ModelOutput extends AggregatorOutput {
  /** [1, C] slide logits. */
  readonly logits: tf.Tensor2D;
}

export interface LossTarget {
  /** Slide label in [0, C) (the fine label of a hierarchical task). */
  readonly label: number;
  readonly numClasses: number;
  /** Coarse class of the label, when the data has a label hierarchy (docs/methods/hmil.md#label-hierarchy). */
  readonly coarseLabel?: number;
  /**
   * 0-based training epoch and the stage's epoch count, for losses with epoch schedules (HMIL's α and SupCon
   * temperature). Absent outside training (test evaluation): scheduled losses then use epoch 0.
   */
  readonly epoch?: number;
  readonly totalEpochs?: number;
}

export interface Loss {
  /** Named scalar terms (unweighted); one term is usual, `{ '': ce }` is logged under the slot name. */
  compute(output: ModelOutput, target: LossTarget): Record<string, tf.Scalar>;
  /**
   * Terms over every bag of one optimizer step (`train.bagsPerStep`), e.g. SupCon, whose positives span bags.
   * Added once per step on top of the mean of the per-bag terms; the validation loss adds it over groups of
   * `train.bagsPerStep` validation bags (the same groups every epoch), test losses and predictions never (they are
   * per bag). Outputs and targets are in the same order; the outputs are eval-mode ones in validation.
   */
  computeBatch?(outputs: readonly ModelOutput[], targets: readonly LossTarget[]): Record<string, tf.Scalar>;
}

export interface LossCapabilities {
  /** Names of `extras` this loss reads; the engine checks the aggregator provides them before training. */
  readonly requires: readonly string[];
  /** Reads the label hierarchy (`LossContext.hierarchy`, coarse labels); the preflight checks the data has one. */
  readonly needsHierarchy?: boolean;
}

export const DEFAULT_LOSS_CAPABILITIES: LossCapabilities = { requires: [], needsHierarchy: false };

export interface LossContext {
  readonly numClasses: number;
  /** The data's label hierarchy, when it has one (hierarchical losses need the fine → coarse map). */
  readonly hierarchy?: LabelHierarchy;
}
