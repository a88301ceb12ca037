// Strategy contract (the `strategy` kind: how a training stage drives the model). Kept small on purpose: the
// default strategy `standard` changes nothing, every hook returns fresh tensors and leaks none, and a strategy's
// state survives JSON. The kind is defined in src/registry/contracts/strategy.ts where it is registered; the shapes
// below are the subset this suite calls, typed structurally so the suite builds whether or not the kind exists,
// and the run is skipped with a visible message when no `strategy` kind is registered.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import { Rng } from '../../core/runtime/random.js';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';
import type { Registry } from '../../registry/registry.js';
import type { AggregatorCapabilities, Bag, ForwardIO } from '../../registry/contracts/model.js';
import type { ModelOutput } from '../../registry/contracts/loss.js';
import { buildAggregatorModel } from './aggregator.js';
import { expectNoTensorLeak } from './shared.js';

/** The composed model as a strategy sees it (subset of the kind's StageModel). */
export interface StrategyModelView {
  readonly aggregator: unknown;
  readonly classifier: unknown;
  readonly prescreener: undefined;
  readonly capabilities: AggregatorCapabilities;
  forward(bag: Bag, io: ForwardIO): ModelOutput;
  classify(output: Omit<ModelOutput, 'logits'> & { readonly logits?: tf.Tensor2D }, io: ForwardIO): ModelOutput;
}

/** One training step as hooks receive it (subset of the kind's StrategyStep). */
export interface StrategyStepView {
  readonly model: StrategyModelView;
  readonly bag: Bag;
  readonly label: number;
  readonly numClasses: number;
  readonly io: ForwardIO;
  isTraining(part: string): boolean;
  readonly epoch: number;
  readonly stepInEpoch: number;
  readonly globalStep: number;
  readonly stepsPerEpoch: number;
  readonly totalEpochs: number;
}

/** The hooks this suite exercises; all optional, as in the kind's contract. */
export interface StrategyHooks {
  init?(model: StrategyModelView): void;
  transformBag?(step: StrategyStepView): Bag;
  forward?(step: StrategyStepView): ModelOutput;
  lossTerms?(step: StrategyStepView, output: ModelOutput | undefined): Readonly<Record<string, tf.Scalar>>;
  stepMetrics?(step: StrategyStepView, output: ModelOutput | undefined): Readonly<Record<string, number>>;
  afterUpdate?(info: { readonly globalStep: number; readonly epoch: number }): void;
  state?(): Readonly<Record<string, unknown>>;
  loadState?(state: Readonly<Record<string, unknown>>): void;
  dispose?(): void;
}

const HOOKS = ['transformBag', 'forward', 'lossTerms', 'stepMetrics', 'afterUpdate'] as const;

export interface StrategySuiteOptions {
  /** Registry with the classifier slot, the losses and the aggregator the probe model uses. */
  readonly registry: Registry;
  /** Aggregator of the probe model (default `mean-pool`); strategies whose requirements it misses are skipped. */
  readonly aggregator?: string;
}

/** Named per-instance tensors of a bag (its `views`, when the bag layout has them). */
function viewTensors(bag: Bag): tf.Tensor[] {
  const views = (bag as unknown as { views?: Record<string, tf.Tensor> }).views;
  return views ? Object.values(views) : [];
}

/** Frees what a transformed bag holds that the input bag does not (as the engine does after a step). */
function disposeTransformed(bag: Bag, input: Bag): void {
  const kept = new Set<tf.Tensor>([input.features, ...viewTensors(input)]);
  tf.dispose([bag.features, ...viewTensors(bag)].filter((t) => !kept.has(t)));
}

function modelView(model: Awaited<ReturnType<typeof buildAggregatorModel>>): StrategyModelView {
  return {
    aggregator: model.aggregator,
    classifier: model.classifier,
    prescreener: undefined,
    capabilities: model.capabilities,
    forward: (bag, io) => model.forward(bag, io),
    classify: (output, io) => (output.logits ? { ...output, logits: output.logits } : { ...output, logits: model.classifier?.forward(output.embedding, io) as tf.Tensor2D }),
  };
}

/**
 * Declares the strategy contract. `definitions` is empty when the kind is not registered: then one visibly
 * skipped test says so instead of silently running nothing.
 */
export function strategyContract(definitions: readonly AnyPluginDefinition[], suite: StrategySuiteOptions): void {
  if (definitions.length === 0) {
    describe('strategy contract', () => {
      it.skip('skipped: no plugin of kind "strategy" is registered', () => {});
    });
    return;
  }
  const inputDim = 8;
  const numClasses = 2;
  describe.each(definitions.map((d) => [d.name, d] as const))('strategy/%s contract', (name, definition) => {
    const requires = (definition.capabilities['requiresAggregator'] ?? []) as ReadonlyArray<keyof AggregatorCapabilities>;
    const needsPrescreener = definition.capabilities['requiresTrainedPrescreener'] === true;

    const probe = async (): Promise<{ strategy: StrategyHooks; step: StrategyStepView; close: () => void } | string> => {
      const aggregator = await suite.registry.get('aggregator', suite.aggregator ?? 'mean-pool');
      const model = await buildAggregatorModel(aggregator, suite.registry, { options: {}, inputDim, numClasses, withLosses: true });
      const missing = requires.filter((cap) => !model.capabilities[cap]);
      if (missing.length > 0 || needsPrescreener) {
        model.dispose();
        return `needs ${needsPrescreener ? 'a trained pre-screener' : `aggregator capabilities ${missing.join(', ')}`}, which the probe model lacks`;
      }
      const view = modelView(model);
      const create = definition.create as (options: unknown, ctx: unknown) => StrategyHooks;
      const strategy = create(definition.options.parse({}), { model: view, numClasses, rng: new Rng(0), logger: silentLogger });
      strategy.init?.(view);
      const features = tf.randomNormal([9, inputDim], 0, 1, 'float32', 3) as tf.Tensor2D;
      const step: StrategyStepView = {
        model: view, bag: { slideId: 'contract', features, label: 1 }, label: 1, numClasses, io: { training: true, rng: new Rng(1) },
        isTraining: () => true, epoch: 0, stepInEpoch: 0, globalStep: 0, stepsPerEpoch: 1, totalEpochs: 1,
      };
      return { strategy, step, close: () => { strategy.dispose?.(); features.dispose(); model.dispose(); } };
    };

    it('parses its defaults, and the parsed options survive a JSON round trip', () => {
      const parsed = definition.options.parse({});
      expect(definition.options.parse(JSON.parse(JSON.stringify(parsed)))).toEqual(parsed);
    });

    if (name === 'standard') {
      it('changes nothing: no hooks that alter the bag, the forward or the objective', async () => {
        const probed = await probe();
        if (typeof probed === 'string') throw new Error(`standard: ${probed}`);
        const { strategy, step, close } = probed;
        const transformed = strategy.transformBag?.(step) ?? step.bag;
        expect(transformed, 'the bag is passed through').toBe(step.bag);
        const terms = strategy.lossTerms?.(step, undefined) ?? {};
        expect(Object.keys(terms), 'no extra loss terms').toEqual([]);
        expect(strategy.forward, 'the model forward is used').toBeUndefined();
        close();
      });
    }

    it('leaks no tensors from its hooks across steps', async () => {
      const probed = await probe();
      if (typeof probed === 'string') {
        console.warn(`strategy/${name}: leak check skipped — ${probed}`);
        return;
      }
      const { strategy, step, close } = probed;
      await expectNoTensorLeak(`strategy/${name} hooks`, () => {
        const bag = strategy.transformBag?.(step) ?? step.bag;
        const stepWithBag = { ...step, bag };
        const output = strategy.forward?.(stepWithBag) ?? step.model.forward(bag, step.io);
        const terms = strategy.lossTerms?.(stepWithBag, output) ?? {};
        strategy.stepMetrics?.(stepWithBag, output);
        strategy.afterUpdate?.({ globalStep: 1, epoch: 0 });
        tf.dispose([output as unknown as tf.TensorContainer, ...Object.values(terms)]);
        if (bag !== step.bag) disposeTransformed(bag, step.bag);
      });
      close();
    });

    it('keeps a JSON state that loads back', async () => {
      const probed = await probe();
      if (typeof probed === 'string') return;
      const { strategy, close } = probed;
      const state = strategy.state?.();
      if (state !== undefined) {
        const copy = JSON.parse(JSON.stringify(state)) as Record<string, unknown>;
        expect(copy, 'state survives JSON').toEqual(state);
        strategy.loadState?.(copy);
        expect(strategy.state?.()).toEqual(state);
      }
      expect(HOOKS.every((hook) => strategy[hook] === undefined || typeof strategy[hook] === 'function')).toBe(true);
      close();
    });
  });
}
