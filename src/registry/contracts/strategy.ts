// Training strategies (kind `strategy`): how one stage trains the composed model. A stage's trainer loop is
// the engine's one loop (src/core/engine/trainer.ts); a strategy plugs into it through the hooks below:
// transform the bag, own the step's forward, add loss terms, update its own state after each optimizer step,
// report per-step numbers, hold auxiliary modules (a momentum teacher), save/restore its state for resume and
// start from an earlier stage's checkpoint. Hooks receive the global step and epoch, so schedules continue
// correctly across a resume. The default strategy `standard` implements none of them (plain training).
import type * as tf from '@tensorflow/tfjs';
import type { Logger } from '../../core/logger.js';
import type { Module } from '../../core/nn/module.js';
import type { Rng } from '../../core/runtime/random.js';
import type { ModelOutput } from './loss.js';
import type { Aggregator, AggregatorCapabilities, Bag, Classifier, ForwardIO, Prescreener } from './model.js';

/** A model part a stage can train, freeze or set to a mode; strategies add their own modules by name. */
export type ModelPartName = 'encoder' | 'aggregator' | 'classifier' | 'prescreener';

/** The composed model as a strategy sees it. */
export interface StageModel {
  readonly aggregator: Aggregator;
  /** Absent when the aggregator owns its heads (capability ownsClassifier). */
  readonly classifier: Classifier | undefined;
  /** Absent when the configured pre-screener is `none`. */
  readonly prescreener: Prescreener | undefined;
  readonly capabilities: AggregatorCapabilities;
  /** The composed forward (aggregator → classifier), each part in the mode the stage gave it. */
  forward(bag: Bag, io: ForwardIO): ModelOutput;
  /** Logits of an aggregator output (the classifier slot, or the aggregator's own logits). */
  classify(output: Omit<ModelOutput, 'logits'> & { readonly logits?: tf.Tensor2D }, io: ForwardIO): ModelOutput;
}

/** What a hook knows about the current training step. */
export interface StrategyStep {
  readonly model: StageModel;
  readonly bag: Bag;
  readonly label: number;
  readonly numClasses: number;
  /** The step's stream and mode (training true); fork it by label for each independent draw. */
  readonly io: ForwardIO;
  /** Whether `part` runs in training mode in this stage (the stage's `modes`; trained parts default to train). */
  isTraining(part: string): boolean;
  /** 0-indexed epoch of the stage. */
  readonly epoch: number;
  /** 0-indexed step within the epoch, and optimizer-independent global step of the stage (epoch-major). */
  readonly stepInEpoch: number;
  readonly globalStep: number;
  readonly stepsPerEpoch: number;
  readonly totalEpochs: number;
}

/** State a strategy keeps across a resume (JSON) besides its modules' tensors (saved with the model). */
export type StrategyState = Readonly<Record<string, unknown>>;

export interface Strategy {
  /** Auxiliary modules (a momentum teacher): saved in checkpoints as `strategy.<key>.…`, frozen unless a stage trains them. */
  readonly modules?: Readonly<Record<string, Module>>;
  /**
   * True when the stage's (or model's) configured losses are NOT part of the training objective: the step's
   * loss is only `lossTerms` (HDMIL's LIPN stage trains on its imitation loss; its configured losses still
   * score validation and test).
   */
  readonly replacesModelLosses?: boolean;
  /** Called once per fold after the model holds its starting weights (`from` stage loaded), before any step. */
  init?(model: StageModel): void;
  /** Changes the bag before the forward pass (drop or reorder instances, add views). The result is disposed by the engine unless it is the input. */
  transformBag?(step: StrategyStep): Bag;
  /** The step's forward (default: the composed model's forward); not called when `replacesModelLosses`. */
  forward?(step: StrategyStep): ModelOutput;
  /** Extra loss terms, added with weight 1 to the objective (weights are the strategy's options), logged as `train/loss_<key>`. */
  lossTerms?(step: StrategyStep, output: ModelOutput | undefined): Readonly<Record<string, tf.Scalar>>;
  /** Host numbers of the step (masked counts, ratios), averaged per epoch and logged as `train/<key>`. */
  stepMetrics?(step: StrategyStep, output: ModelOutput | undefined): Readonly<Record<string, number>>;
  /** After each optimizer step (EMA teacher update). `globalStep` counts optimizer steps of the stage. */
  afterUpdate?(info: { readonly globalStep: number; readonly epoch: number }): void;
  /** JSON state for checkpoints; restored with `loadState` on resume. */
  state?(): StrategyState;
  loadState?(state: StrategyState): void;
  dispose?(): void;
}

export interface StrategyContext {
  readonly model: StageModel;
  readonly numClasses: number;
  /** The stage's stream for the strategy's own initialisation. */
  readonly rng: Rng;
  readonly logger: Logger;
  /** D: width of the instances the aggregator reads (the features, or the encoder's output); set by the engine. */
  readonly inputDim?: number;
  /**
   * The model's tensors as built at the fold's start (before any stage trained or loaded them), by state-dict
   * name (`aggregator.…`); present when the stage starts `from` an earlier stage's checkpoint, for strategies that
   * keep only part of it (MHIM-MIL v1 keeps the projection, docs/methods/mhim-mil.md#momentum-teacher).
   */
  readonly initialTensors?: ReadonlyMap<string, tf.Tensor>;
}

export interface StrategyCapabilities {
  /** Bag views the strategy reads (checked against the dataset's). */
  readonly needsViews: readonly string[];
  /** Aggregator capabilities that must be true (gate-distillation: `gateLogits`). */
  readonly requiresAggregator: ReadonlyArray<keyof AggregatorCapabilities>;
  /** Needs a trainable pre-screener that the stage trains. */
  readonly requiresTrainedPrescreener: boolean;
  /**
   * Its hooks still hold when several bags share one optimizer step (`train.bagsPerStep > 1`: hooks run per
   * bag, `afterUpdate` once per step). False for strategies whose per-step state assumes one bag.
   */
  readonly batchedSteps?: boolean;
}

export const DEFAULT_STRATEGY_CAPABILITIES: StrategyCapabilities = { needsViews: [], requiresAggregator: [], requiresTrainedPrescreener: false, batchedSteps: true };
