// Composes the configured plugins into one MIL model: aggregator → (classifier unless the aggregator owns
// its heads) → logits, plus the loss slots. Checks before any tensor exists that every loss finds the
// extras it requires among what the aggregator provides.
import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../errors.js';
import type { Logger } from '../logger.js';
import { Module } from '../nn/module.js';
import type { Rng } from '../runtime/random.js';
import type { Registry, ResolvedPlugin } from '../../registry/registry.js';
import {
  DEFAULT_AGGREGATOR_CAPABILITIES,
  type Aggregator,
  type AggregatorCapabilities,
  type Bag,
  type Classifier,
  type ForwardIO,
  type ModelContext,
} from '../../registry/contracts/model.js';
import { DEFAULT_LOSS_CAPABILITIES, type Loss, type LossCapabilities, type ModelOutput } from '../../registry/contracts/loss.js';

export interface ModelSlots {
  readonly aggregator: ResolvedPlugin<'aggregator'>;
  readonly classifier: ResolvedPlugin<'classifier'>;
  readonly losses: Readonly<Record<string, ResolvedPlugin<'loss'> & { readonly weight: number }>>;
}

export interface ModelDims {
  readonly inputDim: number;
  readonly numClasses: number;
}

interface LossSlot {
  readonly slot: string;
  readonly weight: number;
  readonly loss: Loss;
}

/** The trainable model of one fold. State-dict paths are prefixed by slot: `aggregator.…`, `classifier.…`. */
export class MilModel extends Module {
  readonly aggregator: Aggregator;
  readonly classifier: Classifier | undefined;
  readonly capabilities: AggregatorCapabilities;
  private readonly lossSlots: readonly LossSlot[];

  constructor(registry: Registry, slots: ModelSlots, dims: ModelDims, rng: Rng, logger: Logger) {
    super();
    this.capabilities = registry.capabilities(slots.aggregator, DEFAULT_AGGREGATOR_CAPABILITIES);
    checkLossRequirements(registry, slots, this.capabilities);
    const makeClassifier = (inDim: number, outDim: number, classifierRng: Rng): Classifier =>
      registry.create(slots.classifier, { inputDim: inDim, numClasses: dims.numClasses, outputDim: outDim, rng: classifierRng, logger, makeClassifier });
    const aggregatorCtx: ModelContext = { inputDim: dims.inputDim, numClasses: dims.numClasses, outputDim: dims.numClasses, rng: rng.fork('aggregator'), logger, makeClassifier };
    this.aggregator = this.addModule('aggregator', registry.create(slots.aggregator, aggregatorCtx));
    this.classifier = this.capabilities.ownsClassifier
      ? undefined
      : this.addModule('classifier', makeClassifier(this.aggregator.embeddingDim, dims.numClasses, rng.fork('classifier')));
    this.lossSlots = Object.entries(slots.losses).map(([slot, resolved]) => ({
      slot,
      weight: resolved.weight,
      loss: registry.create(resolved, { numClasses: dims.numClasses }),
    }));
  }

  /** Forward pass of one bag; `logits` is always [1, C]. */
  forward(bag: Bag, io: ForwardIO): ModelOutput {
    return tf.tidy(() => {
      const out = this.aggregator.forward(bag, io);
      if (out.logits) return { ...out, logits: out.logits };
      if (!this.classifier) throw new Error('aggregator declares ownsClassifier but returned no logits');
      const logits = this.classifier.forward(out.embedding, io); // [K, C]
      // Single-branch aggregators give K = 1; a K > 1 embedding without own heads is averaged over branches.
      return { ...out, logits: logits.shape[0] === 1 ? logits : (tf.mean(logits, 0, true) as tf.Tensor2D) };
    });
  }

  /**
   * Weighted loss terms of one output. Keys are `<slot>` or `<slot>_<term>`; `total` is their weighted sum.
   * Terms are returned unweighted (for logging) along with the weighted total.
   */
  losses(output: ModelOutput, label: number, numClasses: number): { total: tf.Scalar; terms: Record<string, tf.Scalar> } {
    const terms: Record<string, tf.Scalar> = {};
    let total: tf.Scalar = tf.scalar(0);
    for (const { slot, weight, loss } of this.lossSlots) {
      for (const [term, value] of Object.entries(loss.compute(output, { label, numClasses }))) {
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
