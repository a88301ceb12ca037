// Loss contract: named finite, non-negative scalar terms; no terms (rather than an error) when a required extra
// is absent (eval outputs lack training-only extras); lower loss for a confident right answer than a confident
// wrong one (losses on the slide logits); finite gradients; flat memory; and the golden case (terms and the
// gradient of their sum with respect to every input).
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';
import { DEFAULT_LOSS_CAPABILITIES, type Loss, type LossCapabilities, type LossContext, type LossTarget, type ModelOutput } from '../../registry/contracts/loss.js';
import type { LabelHierarchy } from '../../registry/contracts/data.js';
import { compareTensor, compareValues, readGolden, tensorOf, type GoldenFile, type GoldenReport } from './golden.js';
import { allFinite, expectDefaultsParse, expectNoTensorLeak, goldenPath, missingGolden, parseOptions, type SuiteOptions } from './shared.js';

export interface LossGoldenCase {
  readonly options: Readonly<Record<string, unknown>>;
  readonly numClasses: number;
  readonly label: number;
  /** Float inputs: `logits`, `embedding`, `instanceScores` or `extras.<name>`; gradients are checked for each. */
  readonly tensors: Readonly<Record<string, unknown>>;
  /** Integer inputs (pseudo-labels), `extras.<name>` → values. */
  readonly intTensors?: Readonly<Record<string, number[]>>;
  /** The label hierarchy handed to the loss (hierarchical losses), and the target's coarse label. */
  readonly hierarchy?: LabelHierarchy;
  readonly coarseLabel?: number;
  /** Training epoch and epoch count of the target (scheduled losses). */
  readonly epoch?: number;
  readonly totalEpochs?: number;
  /**
   * A batch-level case (`computeBatch`): every float tensor carries the bags on axis 0 ([B, ...]), bag b is the
   * output of slice b with label `labels[b]` (and coarse label `coarseLabels[b]`); `label` is ignored.
   */
  readonly batch?: { readonly labels: readonly number[]; readonly coarseLabels?: readonly number[] };
}

export interface LossGoldenExpected {
  /** Term name → value. */
  readonly terms: Readonly<Record<string, number>>;
  /** Input name → d(Σ terms)/d input. */
  readonly grads?: Readonly<Record<string, unknown>>;
}

export type LossGolden = GoldenFile<LossGoldenCase, LossGoldenExpected>;

export function createLoss(definition: AnyPluginDefinition, rawOptions: Readonly<Record<string, unknown>>, numClasses: number, hierarchy?: LabelHierarchy): Loss {
  return (definition.create as (options: unknown, ctx: LossContext) => Loss)(parseOptions(definition, rawOptions), { numClasses, ...(hierarchy ? { hierarchy } : {}) });
}

/** What a case computes with: its loss target(s), and whether it is a batch-level case. */
interface CaseTargets {
  readonly numClasses: number;
  readonly target: LossTarget;
  readonly batch?: readonly LossTarget[];
}

function targetsOf(c: LossGoldenCase): CaseTargets {
  const schedule = { ...(c.epoch !== undefined ? { epoch: c.epoch } : {}), ...(c.totalEpochs !== undefined ? { totalEpochs: c.totalEpochs } : {}) };
  const target: LossTarget = { label: c.label, numClasses: c.numClasses, ...(c.coarseLabel !== undefined ? { coarseLabel: c.coarseLabel } : {}), ...schedule };
  if (!c.batch) return { numClasses: c.numClasses, target };
  const batch = c.batch.labels.map((label, b): LossTarget => {
    const coarse = c.batch?.coarseLabels?.[b];
    return { label, numClasses: c.numClasses, ...(coarse !== undefined ? { coarseLabel: coarse } : {}), ...schedule };
  });
  return { numClasses: c.numClasses, target, batch };
}

/** The terms of named inputs: `compute` on one output, or `computeBatch` over the bags on axis 0 of a batch case. */
function termsOf(loss: Loss, inputs: Readonly<Record<string, tf.Tensor>>, targets: CaseTargets, slices: tf.Tensor[] = []): Record<string, tf.Scalar> {
  if (!targets.batch) return loss.compute(outputFrom(inputs), targets.target);
  const bagSlice = (t: tf.Tensor, b: number): tf.Tensor => {
    const slice = tf.tidy(() => tf.squeeze(tf.slice(t, b, 1), [0]));
    slices.push(slice);
    return slice;
  };
  const outputs = targets.batch.map((_, b) => outputFrom(Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, bagSlice(t, b)]))));
  return loss.computeBatch?.(outputs, targets.batch) ?? {};
}

/** Stand-in embedding for outputs whose inputs have none (no built-in loss reads it); never disposed. */
let placeholderEmbedding: tf.Tensor2D | undefined;

/** A ModelOutput from named input tensors (`logits`, `embedding`, `instanceScores`, `extras.<name>`). */
export function outputFrom(inputs: Readonly<Record<string, tf.Tensor>>): ModelOutput {
  const extras: Record<string, tf.Tensor> = {};
  for (const [key, t] of Object.entries(inputs)) if (key.startsWith('extras.')) extras[key.slice('extras.'.length)] = t;
  const logits = inputs['logits'] as tf.Tensor2D;
  placeholderEmbedding ??= tf.keep(tf.zeros([1, 1]) as tf.Tensor2D);
  const embedding: tf.Tensor2D = (inputs['embedding'] as tf.Tensor2D | undefined) ?? placeholderEmbedding;
  const instanceScores = inputs['instanceScores'] as tf.Tensor2D | undefined;
  return { logits, embedding, ...(instanceScores ? { instanceScores } : {}), ...(Object.keys(extras).length ? { extras } : {}) };
}

/**
 * d(Σ terms)/d input for every named float input. Each input is tied to the sum with weight 0 so inputs the
 * loss does not read get a zero gradient instead of tfjs' "cannot compute gradient" error.
 */
function inputGradients(loss: Loss, floats: Readonly<Record<string, tf.Tensor>>, ints: Readonly<Record<string, tf.Tensor>>, targets: CaseTargets): tf.Tensor[] {
  const names = Object.keys(floats);
  return tf.grads((...xs: tf.Tensor[]) => {
    const byName = Object.fromEntries(names.map((k, i) => [k, xs[i] as tf.Tensor]));
    const terms = Object.values(termsOf(loss, { ...byName, ...ints }, targets));
    const anchors = xs.map((x) => tf.mul(tf.sum(x), 0));
    return tf.addN([...terms, ...anchors]) as tf.Scalar;
  })(names.map((k) => floats[k] as tf.Tensor));
}

function goldenInputs(c: LossGoldenCase): { floats: Record<string, tf.Tensor>; ints: Record<string, tf.Tensor> } {
  return {
    floats: Object.fromEntries(Object.entries(c.tensors).map(([k, v]) => [k, tensorOf(v)])),
    ints: Object.fromEntries(Object.entries(c.intTensors ?? {}).map(([k, v]) => [k, tensorOf(v, 'int32')])),
  };
}

export function checkLossGolden(definition: AnyPluginDefinition, golden: LossGolden): GoldenReport {
  const { case: c, expected, tolerance } = golden;
  const loss = createLoss(definition, c.options, c.numClasses, c.hierarchy);
  const targets = targetsOf(c);
  const { floats, ints } = goldenInputs(c);
  const names = Object.keys(floats);
  const mismatches: string[] = [];
  try {
    const terms = tf.tidy(() => {
      const out = termsOf(loss, { ...floats, ...ints }, targets);
      return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.dataSync()[0] as number]));
    }) as unknown as Record<string, number>;
    const wanted = Object.keys(expected.terms).sort();
    if (Object.keys(terms).sort().join() !== wanted.join()) mismatches.push(`terms: got [${Object.keys(terms).join(', ')}], expected [${wanted.join(', ')}]`);
    for (const key of wanted) mismatches.push(...compareValues(`term "${key}"`, [terms[key] ?? Number.NaN], [], expected.terms[key], tolerance));
    if (expected.grads) {
      const grads = inputGradients(loss, floats, ints, targets);
      names.forEach((key, i) => {
        if (expected.grads?.[key] !== undefined) mismatches.push(...compareTensor(`grad ${key}`, grads[i], expected.grads[key], tolerance));
      });
      tf.dispose(grads);
    }
    return { plugin: `loss/${definition.name}`, mismatches };
  } finally {
    tf.dispose([...Object.values(floats), ...Object.values(ints)]);
  }
}

export interface LossSuiteOptions extends SuiteOptions {
  readonly optionsFor?: (name: string) => Readonly<Record<string, unknown>>;
}

export function lossContract(definitions: readonly AnyPluginDefinition[], suite: LossSuiteOptions = {}): void {
  describe.each(definitions.map((d) => [d.name, d] as const))('loss/%s contract', (name, definition) => {
    const caps: LossCapabilities = { ...DEFAULT_LOSS_CAPABILITIES, ...(definition.capabilities as Partial<LossCapabilities>) };
    const options = suite.optionsFor?.(name) ?? {};
    const goldenFile = goldenPath(suite, name);
    const golden = goldenFile ? readGolden<LossGoldenCase, LossGoldenExpected>(goldenFile, 'loss') : undefined;
    /** Sample inputs: the golden case's (they carry the extras the loss requires), else random logits. */
    const sample = (): { floats: Record<string, tf.Tensor>; ints: Record<string, tf.Tensor>; targets: CaseTargets } =>
      golden
        ? { ...goldenInputs(golden.case), targets: targetsOf(golden.case) }
        : { floats: { logits: tf.randomNormal([1, 3], 0, 1, 'float32', 1) }, ints: {}, targets: { numClasses: 3, target: { label: 1, numClasses: 3 } } };
    const hierarchy = golden?.case.hierarchy ?? { coarseNames: ['c0', 'c1'], fineToCoarse: [0, 0, 1] };
    const needsExtras = caps.requires.length > 0;

    it('parses its defaults, and the parsed options survive a JSON round trip', () => {
      expectDefaultsParse(definition);
    });

    it('returns no terms when a required extra is absent (eval outputs lack training-only extras)', () => {
      if (!needsExtras) return;
      const loss = createLoss(definition, options, 3, hierarchy);
      const logits = tf.randomNormal([1, 3], 0, 1, 'float32', 2) as tf.Tensor2D;
      const terms = loss.compute(outputFrom({ logits }), { label: 0, numClasses: 3 });
      expect(Object.keys(terms)).toEqual([]);
      logits.dispose();
    });

    it.skipIf(needsExtras && !golden)('gives finite, non-negative scalar terms with finite gradients', () => {
      const { floats, ints, targets } = sample();
      const loss = createLoss(definition, options, targets.numClasses, hierarchy);
      const names = Object.keys(floats);
      const terms = termsOf(loss, { ...floats, ...ints }, targets);
      expect(Object.keys(terms).length, 'at least one term when every input is present').toBeGreaterThan(0);
      for (const [key, term] of Object.entries(terms)) {
        expect(term.shape, `term "${key}" is a scalar`).toEqual([]);
        const v = term.dataSync()[0] as number;
        expect(Number.isFinite(v) && v >= -1e-6, `term "${key}" = ${v} is finite and ≥ 0`).toBe(true);
      }
      const grads = inputGradients(loss, floats, ints, targets);
      grads.forEach((g, i) => expect(allFinite(g), `gradient with respect to ${names[i]} is finite`).toBe(true));
      tf.dispose([...Object.values(terms), ...grads, ...Object.values(floats), ...Object.values(ints)]);
    });

    it('scores a confident right answer lower than a confident wrong one (losses on the slide logits)', () => {
      if (needsExtras) return;
      const loss = createLoss(definition, options, 3, hierarchy);
      const value = (logits: number[]): number => tf.tidy(() => {
        const terms = loss.compute(outputFrom({ logits: tf.tensor2d([logits]) }), { label: 1, numClasses: 3 });
        return tf.addN(Object.values(terms)).dataSync()[0] as number;
      });
      expect(value([-2, 3, -2])).toBeLessThan(value([3, -2, -2]));
    });

    it.skipIf(needsExtras && !golden)('leaves tf.memory().numTensors unchanged across calls', async () => {
      const { floats, ints, targets } = sample();
      const loss = createLoss(definition, options, targets.numClasses, hierarchy);
      await expectNoTensorLeak(`loss/${name}`, () => {
        // The bag slices of a batch case are the harness's, freed here; anything else left behind is the loss's leak.
        const slices: tf.Tensor[] = [];
        tf.dispose(Object.values(termsOf(loss, { ...floats, ...ints }, targets, slices)));
        tf.dispose(slices);
      });
      tf.dispose([...Object.values(floats), ...Object.values(ints)]);
    });

    it.skipIf(!golden && !suite.requireGolden)('matches its golden case', () => {
      if (!golden || !goldenFile) throw new Error(missingGolden(suite, 'loss', name));
      expect(checkLossGolden(definition, golden).mismatches, goldenFile).toEqual([]);
    });
  });
}
