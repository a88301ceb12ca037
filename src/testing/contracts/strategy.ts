// Strategy contract (the `strategy` kind: how a training stage drives the model). Kept small on purpose: the
// default strategy `standard` changes nothing, every hook returns fresh tensors and leaks none, a strategy's
// state survives JSON, and its golden case (one training step of a pattern-v1 model on a fixed bag: the step's
// logits, loss terms and step metrics, computed independently in PyTorch) matches. The kind is defined in src/registry/contracts/strategy.ts where it is registered; the shapes
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
import { MilModel } from '../../core/engine/model.js';
import { torchEntries } from '../../core/nn/state-dict.js';
import { buildAggregatorModel } from './aggregator.js';
import { compareTensor, compareValues, fillPattern, readGolden, tensorOf, type GoldenFile, type GoldenReport } from './golden.js';
import { expectNoTensorLeak, goldenPath, missingGolden, type SuiteOptions } from './shared.js';

/** The composed model as a strategy sees it (subset of the kind's StageModel). */
export interface StrategyModelView {
  readonly aggregator: unknown;
  readonly classifier: unknown;
  /** The pre-screener part, when the model has one (typed loosely: the suite only passes it through). */
  readonly prescreener: unknown;
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

export interface StrategySuiteOptions extends SuiteOptions {
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

/** A plugin slot of the golden model: its name and options, as in a config. */
type SlotSpec = { readonly name: string } & Readonly<Record<string, unknown>>;

export interface StrategyGoldenCase {
  /** Strategy options (over its defaults). */
  readonly options: Readonly<Record<string, unknown>>;
  /** The composed model of the step; every weight from the shared pattern (golden.ts `patternValues`). */
  readonly model: {
    readonly aggregator: SlotSpec;
    readonly classifier: SlotSpec;
    readonly prescreener?: SlotSpec;
    readonly inputDim: number;
    readonly numClasses: number;
    readonly weights: 'pattern-v1';
  };
  /** Which parts run in training mode in the stage (`step.isTraining(part)`); a part not listed runs in eval mode. */
  readonly training: Readonly<Record<string, boolean>>;
  readonly label: number;
  /** [N, D] instance features. */
  readonly x: number[][];
  /** The bag's thumbs view, drawn from a formula instead of stored (see `formulaThumbs`). */
  readonly thumbs?: { readonly formula: 'thumbs-quadratic-v1'; readonly shape: readonly [number, number, number, number] };
}

export interface StrategyGoldenExpected {
  /** [1, C] logits of the step's forward; absent when the strategy replaces the model's losses (no forward runs). */
  readonly logits?: number[][];
  /** Every loss term the strategy adds, by key; exactly these keys. */
  readonly lossTerms: Readonly<Record<string, number>>;
  /** Every step metric the strategy reports, by key; exactly these keys. */
  readonly stepMetrics: Readonly<Record<string, number>>;
}

export type StrategyGolden = GoldenFile<StrategyGoldenCase, StrategyGoldenExpected>;

/**
 * "thumbs-quadratic-v1": uint8 value i of the row-major block is (7i² + 13i + 5) mod 251, scaled by 1/255.
 * Thumbnails are a formula so a golden with a few dozen 16×16×3 thumbnails stays a few KB; the integers are
 * exact in both languages (i² < 2^53), and the quadratic keeps neighbouring pixels from repeating.
 */
export function formulaThumbs(shape: readonly [number, number, number, number]): tf.Tensor4D {
  const size = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i += 1) values[i] = ((7 * i * i + 13 * i + 5) % 251) / 255;
  return tf.tensor4d(values, [...shape]);
}

/** Compares a record of host numbers with the expected record: same keys, each value within tolerance. */
function compareRecord(what: string, actual: Readonly<Record<string, number>>, expected: Readonly<Record<string, number>>, tolerance: StrategyGolden['tolerance']): string[] {
  const actualKeys = Object.keys(actual).sort();
  const expectedKeys = Object.keys(expected).sort();
  if (actualKeys.join() !== expectedKeys.join()) return [`${what}: keys [${actualKeys.join(', ')}], expected [${expectedKeys.join(', ')}]`];
  return expectedKeys.flatMap((key) => compareValues(`${what} "${key}"`, [actual[key] as number], [], expected[key], tolerance));
}

/**
 * Runs one training step of the golden case the way the engine's trainer does (transformBag, then the
 * strategy's forward or the composed model's unless the strategy replaces the model's losses, then lossTerms
 * and stepMetrics on the same step) and compares the logits, the loss terms and the step metrics. Returns the
 * mismatches (empty = pass); never throws on a numeric mismatch, so a test can show a wrong strategy is caught.
 */
export async function checkStrategyGolden(definition: AnyPluginDefinition, golden: StrategyGolden, registry: Registry): Promise<GoldenReport> {
  const { case: c, expected, tolerance } = golden;
  const { aggregator, classifier, prescreener, inputDim, numClasses } = c.model;
  const model = new MilModel(registry, {
    aggregator: await registry.resolve('aggregator', aggregator, { key: 'model.aggregator' }),
    classifier: await registry.resolve('classifier', classifier, { key: 'model.classifier' }),
    ...(prescreener ? { prescreener: await registry.resolve('prescreener', prescreener, { key: 'model.prescreener' }) } : {}),
    losses: {},
  }, { inputDim, numClasses }, new Rng(0), silentLogger);
  fillPattern(torchEntries(model));
  // The pre-screener's torch keys are its own (no part prefix), as in its PyTorch module and its golden case.
  if (model.prescreener) fillPattern(model.prescreener.namedTensors().map(([torchKey, entry]) => ({ torchKey, entry })));
  const isTraining = (part: string): boolean => c.training[part] === true;
  model.setTraining(true);
  model.setEvalParts(model.partNames().filter((part) => !isTraining(part)));

  const features = tensorOf(c.x) as tf.Tensor2D;
  const thumbs = c.thumbs ? formulaThumbs(c.thumbs.shape) : undefined;
  const input: Bag = { slideId: 'golden', features, label: c.label, views: thumbs ? { thumbs } : {} };
  const create = definition.create as (options: unknown, ctx: unknown) => StrategyHooks & { readonly replacesModelLosses?: boolean };
  const strategy = create(definition.options.parse(c.options), { model, numClasses, rng: new Rng(0), logger: silentLogger });
  const plugin = `strategy/${definition.name}`;
  try {
    strategy.init?.(model);
    const stepOf = (bag: Bag): StrategyStepView => ({
      model, bag, label: c.label, numClasses, io: { training: true, rng: new Rng(1) }, isTraining,
      epoch: 0, stepInEpoch: 0, globalStep: 0, stepsPerEpoch: 1, totalEpochs: 1,
    });
    const mismatches: string[] = [];
    let lossTerms: Record<string, number> = {};
    let stepMetrics: Readonly<Record<string, number>> = {};
    // One scope for the step, as the engine's gradient tape gives it: whatever the hooks leave is freed here.
    tf.tidy(() => {
      const bag = strategy.transformBag?.(stepOf(input)) ?? input;
      const step = stepOf(bag);
      const output = strategy.replacesModelLosses ? undefined : (strategy.forward?.(step) ?? model.forward(bag, step.io));
      if (expected.logits) mismatches.push(...compareTensor('logits', output?.logits, expected.logits, tolerance));
      else if (output) mismatches.push('logits: the step ran a forward, but the golden expects none (the strategy replaces the model\'s losses)');
      const terms = strategy.lossTerms?.(step, output) ?? {};
      lossTerms = Object.fromEntries(Object.entries(terms).map(([key, term]) => [key, term.dataSync()[0] as number]));
      stepMetrics = strategy.stepMetrics?.(step, output) ?? {};
    });
    mismatches.push(...compareRecord('lossTerms', lossTerms, expected.lossTerms, tolerance), ...compareRecord('stepMetrics', stepMetrics, expected.stepMetrics, tolerance));
    return { plugin, mismatches };
  } finally {
    strategy.dispose?.();
    tf.dispose([features, ...(thumbs ? [thumbs] : [])]);
    model.dispose();
  }
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

    /**
     * The probe model: the suite's aggregator (default `mean-pool`) when it has every capability the strategy
     * requires, else the first registered aggregator (by name) that has them, so a strategy such as one needing
     * attention parts is still probed instead of skipped.
     */
    const probeModel = async (): Promise<Awaited<ReturnType<typeof buildAggregatorModel>> | string> => {
      const preferred = suite.aggregator ?? 'mean-pool';
      const registered = suite.registry.names('aggregator');
      const candidates = [preferred, ...[...registered].filter((n) => n !== preferred).sort()].filter((n) => registered.includes(n));
      for (const candidate of candidates) {
        const aggregator = await suite.registry.get('aggregator', candidate);
        const model = await buildAggregatorModel(aggregator, suite.registry, { options: {}, inputDim, numClasses, withLosses: true });
        if (requires.every((cap) => model.capabilities[cap])) return model;
        model.dispose();
      }
      return `needs aggregator capabilities ${requires.join(', ')}, which no registered aggregator has`;
    };

    const probe = async (): Promise<{ strategy: StrategyHooks; step: StrategyStepView; close: () => void } | string> => {
      if (needsPrescreener) return 'needs a trained pre-screener, which the probe cannot provide';
      const model = await probeModel();
      if (typeof model === 'string') return model;
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

    it('leaks no tensors from its hooks across steps', async (context) => {
      const probed = await probe();
      if (typeof probed === 'string') {
        context.skip(`strategy/${name}: leak check skipped — ${probed}`);
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

    it('keeps a JSON state that loads back', async (context) => {
      const probed = await probe();
      if (typeof probed === 'string') {
        context.skip(`strategy/${name}: state check skipped — ${probed}`);
        return;
      }
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

    const golden = goldenPath(suite, name);
    it.skipIf(!golden && !suite.requireGolden)('matches its golden case', async () => {
      if (!golden) throw new Error(missingGolden(suite, 'strategy', name));
      const report = await checkStrategyGolden(definition, readGolden<StrategyGoldenCase, StrategyGoldenExpected>(golden, 'strategy'), suite.registry);
      expect(report.mismatches, `${report.plugin} golden case`).toEqual([]);
    });
  });
}
