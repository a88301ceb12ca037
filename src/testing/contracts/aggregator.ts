// Aggregator contract: shapes (at small and at default options), declared capabilities honoured (normalised
// instance scores, every `provides` extra and no undeclared one, permutation invariance, own logits, keep masks,
// gate logits, the project/pool split, the views it needs), gradients reaching every non-inert weight, seeded
// determinism, flat memory, and the plugin's golden case. Runs on whatever tfjs backend is active; switches on
// capabilities, never on names.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { MilModel } from '../../core/engine/model.js';
import { silentLogger } from '../../core/logger.js';
import { torchEntries } from '../../core/nn/state-dict.js';
import { Rng } from '../../core/runtime/random.js';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';
import type { Registry, ResolvedPlugin } from '../../registry/registry.js';
import { DEFAULT_AGGREGATOR_CAPABILITIES, type AggregatorCapabilities, type Bag, type ForwardIO } from '../../registry/contracts/model.js';
import { DEFAULT_LOSS_CAPABILITIES, type LossCapabilities, type ModelOutput } from '../../registry/contracts/loss.js';
import type { LabelHierarchy } from '../../registry/contracts/data.js';
import { compareTensor, fillPattern, readGolden, tensorOf, type GoldenFile, type GoldenReport } from './golden.js';
import { allFinite, expectDefaultsParse, expectNoTensorLeak, goldenPath, maxAbsDiff, missingGolden, type SuiteOptions } from './shared.js';

export interface AggregatorGoldenCase {
  /** Plugin options (over its defaults). */
  readonly options: Readonly<Record<string, unknown>>;
  readonly inputDim: number;
  readonly numClasses: number;
  /** The classifier slot (`{ name: 'linear' }`), for aggregators that do not own their heads. */
  readonly classifier: { readonly name: string } & Readonly<Record<string, unknown>>;
  /** How weights are set: the shared deterministic pattern (see golden.ts `patternValues`). */
  readonly weights: 'pattern-v1';
  /** [N, D] instance features. */
  readonly x: number[][];
  /** Integer tensors injected into `io.injected` (e.g. DTFD's pseudo-bag permutation). */
  readonly injected?: Readonly<Record<string, number[]>>;
  /** The label hierarchy the model is built with (hierarchical aggregators); default: the suite's. */
  readonly hierarchy?: LabelHierarchy;
}

export interface AggregatorGoldenExpected {
  /** [1, C] eval-mode logits. */
  readonly logits: number[][];
  readonly embedding?: number[][];
  readonly instanceScores?: number[][];
  readonly extras?: Readonly<Record<string, unknown>>;
}

export type AggregatorGolden = GoldenFile<AggregatorGoldenCase, AggregatorGoldenExpected>;

export interface AggregatorSuiteOptions extends SuiteOptions {
  /** Supplies the classifier slot (`linear`) and the losses the model trains with. */
  readonly registry: Registry;
  /** Options per plugin name for the generic checks (keep models small so the suite stays fast). */
  readonly optionsFor?: (name: string) => Readonly<Record<string, unknown>>;
  /** D of the generic checks (default 16). */
  readonly inputDim?: number;
  /** Bag loss slot trained alongside every loss whose required extras the aggregator provides (default cross-entropy). */
  readonly bagLoss?: string;
}

function resolvedOf(definition: AnyPluginDefinition, options: Readonly<Record<string, unknown>>): ResolvedPlugin<'aggregator'> {
  return { kind: 'aggregator', name: definition.name, options: definition.options.parse(options) as Record<string, unknown>, definition };
}

/** Declared capabilities, plus those the options decide (`capabilitiesFor`) when options are given. */
function capabilitiesOf(definition: AnyPluginDefinition, options?: Readonly<Record<string, unknown>>): AggregatorCapabilities {
  const optionDependent = options && definition.capabilitiesFor
    ? (definition.capabilitiesFor as (parsed: unknown) => Partial<AggregatorCapabilities>)(definition.options.parse(options))
    : {};
  return { ...DEFAULT_AGGREGATOR_CAPABILITIES, ...(definition.capabilities as Partial<AggregatorCapabilities>), ...optionDependent };
}

interface BuildSpec {
  readonly options: Readonly<Record<string, unknown>>;
  readonly inputDim: number;
  readonly numClasses: number;
  readonly classifier?: { readonly name: string } & Readonly<Record<string, unknown>>;
  readonly seed?: number;
  /** Attach the bag loss and every loss the aggregator's extras satisfy. */
  readonly withLosses?: boolean;
  readonly bagLoss?: string;
  /** Label hierarchy of the data (default: each class its own coarse class, so hierarchical aggregators build). */
  readonly hierarchy?: LabelHierarchy;
}

/** The suite's default hierarchy: C fine classes, each alone in its coarse class. */
export function flatHierarchy(numClasses: number): LabelHierarchy {
  return { coarseNames: Array.from({ length: numClasses }, (_, c) => `coarse-${c}`), fineToCoarse: Array.from({ length: numClasses }, (_, c) => c) };
}

/** The model the engine would build around this aggregator (classifier slot and losses from `registry`). */
export async function buildAggregatorModel(definition: AnyPluginDefinition, registry: Registry, spec: BuildSpec): Promise<MilModel> {
  const classifier = await registry.resolve('classifier', spec.classifier ?? { name: 'linear' }, { key: 'model.classifier' });
  const losses: Record<string, ResolvedPlugin<'loss'> & { weight: number }> = {};
  if (spec.withLosses) {
    const provides = new Set(capabilitiesOf(definition).provides);
    losses['bag'] = { ...(await registry.resolve('loss', { name: spec.bagLoss ?? 'cross-entropy' }, { key: 'model.losses.bag' })), weight: 1 };
    for (const name of registry.names('loss')) {
      const lossDefinition = await registry.get('loss', name);
      const { requires } = { ...DEFAULT_LOSS_CAPABILITIES, ...(lossDefinition.capabilities as Partial<LossCapabilities>) };
      if (requires.length > 0 && requires.every((r) => provides.has(r))) losses[name] = { ...(await registry.resolve('loss', { name }, { key: `model.losses.${name}` })), weight: 1 };
    }
  }
  return new MilModel(registry, { aggregator: resolvedOf(definition, spec.options), classifier, losses }, {
    inputDim: spec.inputDim, numClasses: spec.numClasses, hierarchy: spec.hierarchy ?? flatHierarchy(spec.numClasses),
  }, new Rng(spec.seed ?? 0), silentLogger);
}

/** Per-instance tensors beside the features, by view name (`coords`, `thumbs`, `keepMask`). */
type Views = Record<string, tf.Tensor>;
const viewsOfBag = new WeakMap<Bag, Views>();

/**
 * A bag carrying `views` both under `bag.views` and as top-level fields: the two bag layouts aggregators read
 * (named views, or the older `coords` / `thumbs` / `keepMask` fields), so the suite runs against either.
 */
function makeBag(slideId: string, features: tf.Tensor2D, views: Views, label?: number): Bag {
  const bag = { slideId, features, ...(label === undefined ? {} : { label }), ...views, views } as unknown as Bag;
  viewsOfBag.set(bag, views);
  return bag;
}

/** The views an aggregator declares it reads: `needsViews`, or the older `needsCoords` / `needsThumbs` flags. */
export function neededViews(definition: AnyPluginDefinition): string[] {
  const caps = definition.capabilities;
  const listed = Array.isArray(caps['needsViews']) ? (caps['needsViews'] as unknown[]).map(String) : [];
  return [...new Set([...listed, ...(caps['needsCoords'] === true ? ['coords'] : []), ...(caps['needsThumbs'] === true ? ['thumbs'] : [])])];
}

/** A synthetic view of n rows: a 5-wide grid of 256-pixel patches, or seeded thumbnails in [0, 1]. */
function syntheticView(name: string, n: number): tf.Tensor {
  if (name === 'coords') return tf.tidy(() => tf.mul(tf.stack([tf.range(0, n).mod(5), tf.floorDiv(tf.range(0, n, 1, 'int32'), 5).toFloat()], 1), 256));
  if (name === 'thumbs') return tf.randomUniform([n, 16, 16, 3], 0, 1, 'float32', n);
  throw new Error(`the aggregator contract cannot build the bag view "${name}"; only coords and thumbs are synthesised`);
}

/** A bag with every view the aggregator declares it needs. */
function bagFor(views: readonly string[], features: tf.Tensor2D, label?: number): Bag {
  const n = features.shape[0];
  return makeBag('contract', features, Object.fromEntries(views.map((name) => [name, syntheticView(name, n)])), label);
}

/** The same bag with more views (a keep mask). */
function withViews(bag: Bag, extra: Views): Bag {
  return makeBag(bag.slideId, bag.features, { ...(viewsOfBag.get(bag) ?? {}), ...extra }, bag.label);
}

/** The bag's rows reordered, views included. */
function permutedBag(bag: Bag, order: tf.Tensor1D): Bag {
  const views = Object.fromEntries(Object.entries(viewsOfBag.get(bag) ?? {}).map(([name, t]) => [name, tf.gather(t, order)]));
  return makeBag(`${bag.slideId}-permuted`, tf.gather(bag.features, order) as tf.Tensor2D, views, bag.label);
}

/** Frees the bag's views (and its features unless they are shared with other bags). */
function disposeBag(bag: Bag, withFeatures = true): void {
  tf.dispose([...(withFeatures ? [bag.features] : []), ...Object.values(viewsOfBag.get(bag) ?? {})]);
}

function forwardIo(training: boolean, seed = 0, injected?: Record<string, tf.Tensor>): ForwardIO {
  return injected ? { training, rng: new Rng(seed), injected } : { training, rng: new Rng(seed) };
}

function logitsOf(model: MilModel, bag: Bag, io: ForwardIO): number[] {
  const out = model.forward(bag, io);
  const values = Array.from(out.logits.dataSync());
  tf.dispose(out as unknown as tf.TensorContainer);
  return values;
}

/**
 * Builds the golden case's model, fills its weights with the shared pattern, runs one eval forward on the
 * golden input and compares every expected output. Returns the mismatches (empty = pass); never throws on a
 * numeric mismatch, so a test can show that a wrong implementation is caught.
 */
export async function checkAggregatorGolden(definition: AnyPluginDefinition, golden: AggregatorGolden, registry: Registry): Promise<GoldenReport> {
  const { case: c, expected, tolerance } = golden;
  const model = await buildAggregatorModel(definition, registry, { options: c.options, inputDim: c.inputDim, numClasses: c.numClasses, classifier: c.classifier, ...(c.hierarchy ? { hierarchy: c.hierarchy } : {}) });
  fillPattern(torchEntries(model));
  const x = tensorOf(c.x) as tf.Tensor2D;
  const injected = c.injected ? Object.fromEntries(Object.entries(c.injected).map(([k, v]) => [k, tensorOf(v, 'int32')])) : undefined;
  try {
    model.setTraining(false);
    const out = model.forward({ slideId: 'golden', features: x }, forwardIo(false, 0, injected));
    const mismatches = [
      ...compareTensor('logits', out.logits, expected.logits, tolerance),
      ...(expected.embedding ? compareTensor('embedding', out.embedding, expected.embedding, tolerance) : []),
      ...(expected.instanceScores ? compareTensor('instanceScores', out.instanceScores, expected.instanceScores, tolerance) : []),
      ...Object.entries(expected.extras ?? {}).flatMap(([key, value]) => compareTensor(`extras.${key}`, out.extras?.[key], value, tolerance)),
    ];
    tf.dispose(out as unknown as tf.TensorContainer);
    return { plugin: `aggregator/${definition.name}`, mismatches };
  } finally {
    x.dispose();
    if (injected) tf.dispose(Object.values(injected));
    model.dispose();
  }
}

/** Declares the aggregator contract for each definition. */
export function aggregatorContract(definitions: readonly AnyPluginDefinition[], suite: AggregatorSuiteOptions): void {
  const inputDim = suite.inputDim ?? 16;
  const numClasses = 2;

  describe.each(definitions.map((d) => [d.name, d] as const))('aggregator/%s contract', (name, definition) => {
    const options = suite.optionsFor?.(name) ?? {};
    const caps = capabilitiesOf(definition, options);
    const views = neededViews(definition);
    const build = (seed = 0, withLosses = true): Promise<MilModel> =>
      buildAggregatorModel(definition, suite.registry, { options, inputDim, numClasses, seed, withLosses, ...(suite.bagLoss ? { bagLoss: suite.bagLoss } : {}) });
    const features = (n: number, seed: number): tf.Tensor2D => tf.randomNormal([n, inputDim], 0, 1, 'float32', seed) as tf.Tensor2D;

    it('parses its defaults, and the parsed options survive a JSON round trip', () => {
      expectDefaultsParse(definition);
    });

    it('builds with its default options and gives contract shapes', async () => {
      const model = await buildAggregatorModel(definition, suite.registry, { options: {}, inputDim, numClasses });
      model.setTraining(false);
      const bag = bagFor(views, features(5, 2));
      const out = model.forward(bag, forwardIo(false));
      expect(out.logits.shape).toEqual([1, numClasses]);
      expect(out.embedding.shape[1]).toBe(model.aggregator.embeddingDim);
      expect(allFinite(out.logits)).toBe(true);
      tf.dispose(out as unknown as tf.TensorContainer);
      disposeBag(bag);
      model.dispose();
    });

    it.each([1, 7, 65])('gives contract shapes, finite values and declared instance scores for N = %i', async (n) => {
      const model = await build();
      model.setTraining(false);
      const bag = bagFor(views, features(n, n));
      const out = model.forward(bag, forwardIo(false));
      const [k, e] = out.embedding.shape;
      expect(e, 'embedding width = embeddingDim').toBe(model.aggregator.embeddingDim);
      expect(k).toBeGreaterThanOrEqual(1);
      expect(out.logits.shape).toEqual([1, numClasses]);
      expect(allFinite(out.embedding) && allFinite(out.logits), 'finite embedding and logits').toBe(true);
      if (caps.instanceScores) {
        const scores = out.instanceScores;
        expect(scores, 'instanceScores is declared, so it is filled').toBeDefined();
        expect(scores?.shape[1]).toBe(n);
        expect(allFinite(scores as tf.Tensor)).toBe(true);
        // Scores are normalised attention: entries in [0, 1], and each branch's row is one distribution over the
        // instances (sum 1), several over disjoint pseudo-bags (DTFD-MIL: sum = their count), or empty when a
        // gated branch kept nothing (DMIN: sum 0). A row summing to anything else is not normalised.
        const values = scores?.dataSync() ?? new Float32Array();
        for (const v of values) expect(v >= -1e-6 && v <= 1 + 1e-5, `instance score ${v} lies in [0, 1]`).toBe(true);
        const sums = tf.tidy(() => tf.sum(scores as tf.Tensor, 1).dataSync());
        for (const s of sums) expect(Math.abs(s - Math.round(s)), `instance-score row sum ${s} is a whole number of distributions`).toBeLessThan(1e-3);
      }
      for (const key of Object.keys(out.extras ?? {})) expect(caps.provides, `extra "${key}" is declared in provides`).toContain(key);
      tf.dispose(out as unknown as tf.TensorContainer);
      disposeBag(bag);
      model.dispose();
    });

    it('returns logits itself exactly when it declares ownsClassifier, and honours a keep mask when it declares branchKeepMask', async () => {
      const model = await build();
      model.setTraining(false);
      const bag = bagFor(views, features(8, 4));
      const raw = model.aggregator.forward(bag, forwardIo(false));
      expect(raw.logits !== undefined, 'aggregator logits present ⇔ ownsClassifier').toBe(caps.ownsClassifier);
      if (caps.ownsClassifier) expect(raw.logits?.shape).toEqual([1, numClasses]);
      if (caps.branchKeepMask) {
        // Branch k keeps rows 0..k+1 only: every branch still pools something, and the output stays well formed.
        const branches = raw.embedding.shape[0];
        const keepMask = tf.tidy(() => tf.cast(tf.lessEqual(tf.range(0, 8).reshape([8, 1]), tf.range(1, branches + 1).reshape([1, branches])), 'float32')) as tf.Tensor2D;
        const masked = model.forward(withViews(bag, { keepMask }), forwardIo(false));
        expect(masked.embedding.shape).toEqual(raw.embedding.shape);
        expect(allFinite(masked.logits)).toBe(true);
        tf.dispose([keepMask, masked as unknown as tf.TensorContainer]);
      }
      tf.dispose(raw as unknown as tf.TensorContainer);
      disposeBag(bag);
      model.dispose();
    });

    it('splits its forward into project and pool when it declares parts', async () => {
      if (definition.capabilities['parts'] !== true) return;
      const model = await build();
      model.setTraining(false);
      // Typed structurally: `parts` belongs to the stages-era Aggregator contract.
      const parts = (model.aggregator as unknown as { parts?: { project(bag: Bag, io: ForwardIO): tf.Tensor2D; pool(h: tf.Tensor2D, bag: Bag, io: ForwardIO): { embedding: tf.Tensor2D } } }).parts;
      expect(parts, 'capability parts is declared, so aggregator.parts exists').toBeDefined();
      const bag = bagFor(views, features(10, 6));
      const whole = model.aggregator.forward(bag, forwardIo(false));
      const h = parts?.project(bag, forwardIo(false)) as tf.Tensor2D;
      const split = parts?.pool(h, bag, forwardIo(false));
      expect(maxAbsDiff(split?.embedding.dataSync() ?? [], whole.embedding.dataSync()), 'pool(project(bag)) = forward(bag)').toBeLessThan(1e-5);
      tf.dispose([h, split as unknown as tf.TensorContainer, whole as unknown as tf.TensorContainer]);
      disposeBag(bag);
      model.dispose();
    });

    it('produces every declared extra while training', async () => {
      const model = await build();
      model.setTraining(true);
      const bag = bagFor(views, features(12, 3), 1);
      const out = model.forward(bag, forwardIo(true, 1));
      for (const key of caps.provides) {
        expect(out.extras?.[key], `extra "${key}" is in provides, so a training forward produces it`).toBeDefined();
        expect(allFinite(out.extras?.[key] as tf.Tensor), `extra "${key}" is finite`).toBe(true);
      }
      tf.dispose(out as unknown as tf.TensorContainer);
      disposeBag(bag);
      model.dispose();
    });

    it('honours its declared permutation invariance (or dependence)', async () => {
      const model = await build();
      model.setTraining(false);
      const bag = bagFor(views, features(7, 21));
      const order = tf.tensor1d([3, 0, 6, 1, 5, 2, 4], 'int32');
      const shuffled = permutedBag(bag, order);
      const a = logitsOf(model, bag, forwardIo(false, 1));
      const b = logitsOf(model, shuffled, forwardIo(false, 1));
      const diff = maxAbsDiff(a, b);
      if (caps.permutationInvariant) expect(diff, 'declared permutation-invariant').toBeLessThan(1e-4);
      else expect(diff, 'declared order-dependent: the order should matter').toBeGreaterThan(1e-6);
      disposeBag(bag);
      disposeBag(shuffled);
      order.dispose();
      model.dispose();
    });

    it('gives per-branch gate logits [N, K] when it declares gateLogits', async () => {
      const model = await build();
      if (!caps.gateLogits) {
        expect(model.aggregator.gateLogits, 'gateLogits is implemented only when declared').toBeUndefined();
        model.dispose();
        return;
      }
      const bag = bagFor(views, features(9, 5));
      const gates = model.aggregator.gateLogits?.(bag, forwardIo(false));
      expect(gates?.shape[0]).toBe(9);
      expect(allFinite(gates as tf.Tensor)).toBe(true);
      tf.dispose(gates);
      disposeBag(bag);
      model.dispose();
    });

    it('gives every non-inert trainable weight a finite, non-zero gradient (summed over both labels)', async () => {
      const model = await build();
      const variables = model.trainableVariables();
      if (variables.length === 0) return; // parameter-free pooling
      const bag0 = bagFor(views, features(65, 31), 0);
      const bag1 = { ...bag0, label: 1 };
      const { value, grads } = tf.variableGrads(() => {
        const totals = [bag0, bag1].map((bag) => {
          const out: ModelOutput = model.forward(bag, forwardIo(true, 7));
          return model.losses(out, bag.label as number, numClasses).total;
        });
        return tf.addN(totals) as tf.Scalar;
      }, variables);
      const byName = new Map(model.namedTrainable().map(([key, v]) => [v.name, key]));
      const inert = new Set((model.aggregator.inertParameters ?? []).map((key) => `aggregator.${key}`));
      for (const v of variables) {
        const key = byName.get(v.name) as string;
        const g = grads[v.name];
        if (inert.has(key)) {
          if (g) expect(allFinite(g), `${key} gradient is finite`).toBe(true);
          continue;
        }
        expect(g, `${key} has a gradient`).toBeDefined();
        expect(allFinite(g as tf.Tensor), `${key} gradient is finite`).toBe(true);
        expect(tf.tidy(() => tf.max(tf.abs(g as tf.Tensor)).dataSync()[0]), `${key} gradient is non-zero (else declare it in inertParameters)`).toBeGreaterThan(0);
      }
      tf.dispose([value, ...Object.values(grads)]);
      disposeBag(bag0);
      model.dispose();
    });

    it('gives the same output for the same seed and a different one for another seed', async () => {
      const x = features(7, 41);
      const run = async (seed: number): Promise<number[]> => {
        const model = await build(seed, false);
        model.setTraining(false);
        const bag = bagFor(views, x);
        const logits = logitsOf(model, bag, forwardIo(false, 5));
        const params = model.trainableVariables().length;
        disposeBag(bag, false);
        model.dispose();
        return params > 0 ? logits : [...logits, Number.NaN];
      };
      const [a, b, c] = [await run(1), await run(1), await run(2)];
      expect(a).toEqual(b);
      if (!a.some(Number.isNaN)) expect(a, 'another seed initialises other weights').not.toEqual(c);
      x.dispose();
    });

    it('leaves tf.memory().numTensors unchanged across training steps', async () => {
      const model = await build();
      const bag = bagFor(views, features(33, 51), 1);
      await expectNoTensorLeak(`aggregator/${name} training step`, () => {
        const { value, grads } = tf.variableGrads(() => model.losses(model.forward(bag, forwardIo(true, 3)), 1, numClasses).total, model.trainableVariables());
        tf.dispose([value, ...Object.values(grads)]);
      });
      disposeBag(bag);
      model.dispose();
    });

    const golden = goldenPath(suite, name);
    it.skipIf(!golden && !suite.requireGolden)('matches its golden case', async () => {
      if (!golden) throw new Error(missingGolden(suite, 'aggregator', name));
      const report = await checkAggregatorGolden(definition, readGolden<AggregatorGoldenCase, AggregatorGoldenExpected>(golden, 'aggregator'), suite.registry);
      expect(report.mismatches, `${golden}`).toEqual([]);
    });
  });
}
