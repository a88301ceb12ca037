// Composes the configured plugins into one MIL model: aggregator → (classifier unless the aggregator owns
// its heads) → logits, an optional pre-screener part, plus the loss slots. Checks before any tensor exists
// that every loss finds the extras it requires among what the aggregator provides. Stages set which parts run
// in training mode and which loss slots apply; the model screens (pre-screener mask, then the aggregator on
// the kept instances) once a stage has trained its pre-screener.
import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../errors.js';
import type { Logger } from '../logger.js';
import { Module } from '../nn/module.js';
import type { Rng } from '../runtime/random.js';
import type { Registry, ResolvedPlugin } from '../../registry/registry.js';
import {
  DEFAULT_AGGREGATOR_CAPABILITIES,
  DEFAULT_ENCODER_CAPABILITIES,
  type Aggregator,
  type AggregatorCapabilities,
  type Bag,
  type Classifier,
  type Encoder,
  type ForwardIO,
  type ModelContext,
  type Prescreener,
} from '../../registry/contracts/model.js';
import { DEFAULT_PRESCREENER_CAPABILITIES, type PrescreenerCapabilities } from '../../registry/kinds.js';
import type { StageModel } from '../../registry/contracts/strategy.js';
import { DEFAULT_LOSS_CAPABILITIES, type Loss, type LossCapabilities, type LossTarget, type ModelOutput } from '../../registry/contracts/loss.js';
import type { LabelHierarchy } from '../../registry/contracts/data.js';

export interface ModelSlots {
  readonly aggregator: ResolvedPlugin<'aggregator'>;
  readonly classifier: ResolvedPlugin<'classifier'>;
  /** Optional: a pre-screener part (built when the plugin returns one). */
  readonly prescreener?: ResolvedPlugin<'prescreener'>;
  /** Optional: a trainable instance encoder before the aggregator (built when the plugin returns one). */
  readonly encoder?: ResolvedPlugin<'encoder'>;
  readonly losses: Readonly<Record<string, ResolvedPlugin<'loss'> & { readonly weight: number }>>;
}

export interface ModelDims {
  readonly inputDim: number;
  readonly numClasses: number;
  /** The data's label hierarchy (the C classes are its fine level), handed to model parts and losses. */
  readonly hierarchy?: LabelHierarchy;
}

/** Where in training a loss is computed (epoch schedules); absent outside training. */
export interface LossSchedule {
  readonly epoch: number;
  readonly totalEpochs: number;
}

interface LossSlot {
  readonly slot: string;
  readonly weight: number;
  readonly loss: Loss;
}

export interface MilModelOptions {
  /** Stream of the pre-screener's initialisation (default `rng.fork('prescreener')`). */
  readonly prescreenerRng?: Rng;
}

/**
 * The trainable model of one fold. State-dict paths are prefixed by part: `encoder.…`, `aggregator.…`,
 * `classifier.…`, `prescreener.…`. With an encoder, the aggregator reads the encoded instances (width E of the
 * encoder) in place of the dataset's features, and gradients flow through both (docs/encoders.md).
 */
export class MilModel extends Module implements StageModel {
  readonly encoder: Encoder | undefined;
  /** The bag view the encoder reads (undefined without an encoder). */
  readonly encoderView: string | undefined;
  readonly aggregator: Aggregator;
  readonly classifier: Classifier | undefined;
  readonly prescreener: Prescreener | undefined;
  readonly capabilities: AggregatorCapabilities;
  readonly prescreenerCapabilities: PrescreenerCapabilities;
  /** Pipeline mode: the pre-screener's mask selects the instances the aggregator reads (set by the stage that trains it). */
  screening = false;
  private lossSlots: readonly LossSlot[];
  private readonly numClasses: number;
  /** The label hierarchy the model was built for, if any. */
  readonly hierarchy: LabelHierarchy | undefined;
  /** Parts held in eval mode while the model trains (a stage's `modes`); empty = every part trains. */
  private evalParts: ReadonlySet<string> = new Set();

  constructor(registry: Registry, slots: ModelSlots, dims: ModelDims, rng: Rng, logger: Logger, options: MilModelOptions = {}) {
    super();
    this.numClasses = dims.numClasses;
    this.hierarchy = dims.hierarchy;
    const aggregatorCapabilities = registry.capabilities(slots.aggregator, DEFAULT_AGGREGATOR_CAPABILITIES);
    checkLossRequirements(registry, slots, aggregatorCapabilities);
    // Built first so its initial weights do not depend on the aggregator's draws; absent → the model is unchanged.
    const encoder = slots.encoder ? registry.create(slots.encoder, { rng: rng.fork('encoder'), logger }) : null;
    this.encoder = encoder ? this.addModule('encoder', encoder) : undefined;
    this.encoderView = encoder && slots.encoder ? registry.capabilities(slots.encoder, DEFAULT_ENCODER_CAPABILITIES).inputView : undefined;
    // The views the forward reads: the aggregator's, plus the encoder's raw instances.
    this.capabilities = this.encoderView === undefined ? aggregatorCapabilities
      : { ...aggregatorCapabilities, needsViews: [...new Set([...aggregatorCapabilities.needsViews, this.encoderView])] };
    const makeClassifier = (inDim: number, outDim: number, classifierRng: Rng): Classifier =>
      registry.create(slots.classifier, { inputDim: inDim, numClasses: dims.numClasses, outputDim: outDim, rng: classifierRng, logger, makeClassifier });
    const aggregatorCtx: ModelContext = {
      inputDim: this.encoder ? this.encoder.outputDim : dims.inputDim, numClasses: dims.numClasses, outputDim: dims.numClasses, rng: rng.fork('aggregator'), logger, makeClassifier,
      ...(dims.hierarchy ? { hierarchy: dims.hierarchy } : {}),
    };
    this.aggregator = this.addModule('aggregator', registry.create(slots.aggregator, aggregatorCtx));
    this.classifier = this.capabilities.ownsClassifier
      ? undefined
      : this.addModule('classifier', makeClassifier(this.aggregator.embeddingDim, dims.numClasses, rng.fork('classifier')));
    this.prescreenerCapabilities = slots.prescreener ? registry.capabilities(slots.prescreener, DEFAULT_PRESCREENER_CAPABILITIES) : DEFAULT_PRESCREENER_CAPABILITIES;
    const prescreener = slots.prescreener
      ? registry.create(slots.prescreener, { ...aggregatorCtx, rng: options.prescreenerRng ?? rng.fork('prescreener') })
      : null;
    this.prescreener = prescreener ? this.addModule('prescreener', prescreener) : undefined;
    this.lossSlots = makeLossSlots(registry, slots.losses, dims.numClasses, dims.hierarchy);
  }

  /** Names of the parts this model has (`aggregator`, `classifier` unless the aggregator owns its heads, `prescreener` when configured). */
  partNames(): string[] {
    return [...(this.encoder ? ['encoder'] : []), 'aggregator', ...(this.classifier ? ['classifier'] : []), ...(this.prescreener ? ['prescreener'] : [])];
  }

  /** Replaces the loss slots (a stage's `losses`), after checking their requirements as at construction. */
  useLosses(registry: Registry, slots: ModelSlots): void {
    checkLossRequirements(registry, slots, this.capabilities);
    this.lossSlots = makeLossSlots(registry, slots.losses, this.numClasses, this.hierarchy);
  }

  /** Keeps these parts in eval mode while training (a stage's `modes`). */
  setEvalParts(parts: Iterable<string>): void {
    this.evalParts = new Set(parts);
  }

  /** Whether `part` runs in training mode when the model trains. */
  partTraining(part: string, training: boolean): boolean {
    return training && !this.evalParts.has(part);
  }

  override setTraining(training: boolean): this {
    super.setTraining(training);
    for (const part of this.evalParts) this.part(part)?.setTraining(false);
    return this;
  }

  /** A part by name. */
  part(name: string): Module | undefined {
    if (name === 'encoder') return this.encoder;
    if (name === 'aggregator') return this.aggregator;
    if (name === 'classifier') return this.classifier;
    if (name === 'prescreener') return this.prescreener;
    return undefined;
  }

  /** Forward pass of one bag; `logits` is always [1, C]. Each part runs in its stage mode. */
  forward(bag: Bag, io: ForwardIO): ModelOutput {
    return tf.tidy(() => ({ ...this.classify(this.aggregator.forward(this.encode(bag, io), this.partIo('aggregator', io)), io) })) as unknown as ModelOutput;
  }

  /**
   * The bag the aggregator reads: with an encoder, `features` are the encoded raw instances [N, E] (a new tensor,
   * to be freed by the caller's tidy); without one, the bag itself.
   */
  encode(bag: Bag, io: ForwardIO): Bag {
    if (!this.encoder || this.encoderView === undefined) return bag;
    const instances = bag.views?.[this.encoderView];
    if (instances === undefined) throw new Error(`encoder: bag ${bag.slideId} has no "${this.encoderView}" view (the engine builds the views in capabilities.needsViews)`);
    return { ...bag, features: this.encoder.forward(instances, this.partIo('encoder', io)) };
  }

  /** Logits of an aggregator output: its own, or the classifier slot's on its embedding. */
  classify(out: Omit<ModelOutput, 'logits'> & { readonly logits?: tf.Tensor2D }, io: ForwardIO): ModelOutput {
    if (out.logits) return { ...out, logits: out.logits };
    if (!this.classifier) throw new Error('aggregator declares ownsClassifier but returned no logits');
    const logits = this.classifier.forward(out.embedding, this.partIo('classifier', io)); // [K, C]
    // Single-branch aggregators give K = 1; a K > 1 embedding without own heads is averaged over branches.
    return { ...out, logits: logits.shape[0] === 1 ? logits : (tf.mean(logits, 0, true) as tf.Tensor2D) };
  }

  /** `io` with the part's mode. */
  partIo(part: string, io: ForwardIO): ForwardIO {
    const training = this.partTraining(part, io.training);
    return training === io.training ? io : { ...io, training };
  }

  /**
   * Weighted loss terms of one output. Keys are `<slot>` or `<slot>_<term>`; `total` is their weighted sum.
   * Terms are returned unweighted (for logging) along with the weighted total.
   */
  losses(output: ModelOutput, label: number, numClasses: number, schedule?: LossSchedule): { total: tf.Scalar; terms: Record<string, tf.Scalar> } {
    const target = this.target(label, numClasses, schedule);
    return this.weighted((loss) => loss.compute(output, target));
  }

  /** True when some active loss slot has terms spanning the bags of a step (`computeBatch`). */
  hasBatchLosses(): boolean {
    return this.lossSlots.some(({ loss }) => loss.computeBatch !== undefined);
  }

  /**
   * Weighted batch-level terms over the bags of one optimizer step (`train.bagsPerStep`), keyed like `losses`;
   * only slots whose loss implements `computeBatch` contribute.
   */
  batchLosses(outputs: readonly ModelOutput[], labels: readonly number[], numClasses: number, schedule?: LossSchedule): { total: tf.Scalar; terms: Record<string, tf.Scalar> } {
    const targets = labels.map((label) => this.target(label, numClasses, schedule));
    return this.weighted((loss) => loss.computeBatch?.(outputs, targets) ?? {});
  }

  /** The loss target of a slide label: its coarse class when the model has a hierarchy, the schedule in training. */
  target(label: number, numClasses: number, schedule?: LossSchedule): LossTarget {
    const coarse = this.hierarchy?.fineToCoarse[label];
    return {
      label, numClasses,
      ...(coarse !== undefined && coarse >= 0 ? { coarseLabel: coarse } : {}),
      ...(schedule ? { epoch: schedule.epoch, totalEpochs: schedule.totalEpochs } : {}),
    };
  }

  private weighted(computeTerms: (loss: Loss) => Record<string, tf.Scalar>): { total: tf.Scalar; terms: Record<string, tf.Scalar> } {
    const terms: Record<string, tf.Scalar> = {};
    let total: tf.Scalar = tf.scalar(0);
    for (const { slot, weight, loss } of this.lossSlots) {
      for (const [term, value] of Object.entries(computeTerms(loss))) {
        const key = term === '' ? slot : `${slot}_${term}`;
        terms[key] = value;
        if (weight !== 0) {
          const next = tf.add(total, tf.mul(value, weight)) as tf.Scalar;
          total.dispose();
          total = next;
        }
      }
    }
    return { total, terms };
  }

  /** Trainable variables with their state-dict names, in a stable order. */
  namedTrainable(): Array<readonly [string, tf.Variable]> {
    return this.namedTensors()
      .filter(([, entry]) => entry.trainable)
      .map(([name, entry]) => [name, entry.variable] as const);
  }
}

function makeLossSlots(registry: Registry, losses: ModelSlots['losses'], numClasses: number, hierarchy: LabelHierarchy | undefined): LossSlot[] {
  return Object.entries(losses).map(([slot, resolved]) => ({ slot, weight: resolved.weight, loss: registry.create(resolved, { numClasses, ...(hierarchy ? { hierarchy } : {}) }) }));
}

function checkLossRequirements(registry: Registry, slots: ModelSlots, capabilities: AggregatorCapabilities): void {
  for (const [slot, resolved] of Object.entries(slots.losses)) {
    const lossCaps: LossCapabilities = registry.capabilities(resolved, DEFAULT_LOSS_CAPABILITIES);
    const missing = lossCaps.requires.filter((name) => !capabilities.provides.includes(name));
    if (missing.length > 0) {
      throw new ConfigError(
        'loss-requirement-unmet',
        `model.losses.${slot}: loss "${resolved.name}" needs ${missing.map((m) => `"${m}"`).join(', ')} from the aggregator, but "${slots.aggregator.name}" provides ${capabilities.provides.length ? capabilities.provides.map((p) => `"${p}"`).join(', ') : 'no extras'}.`,
        { hint: `Remove model.losses.${slot} (~model.losses.${slot}) or choose an aggregator that provides them.` },
      );
    }
  }
}
