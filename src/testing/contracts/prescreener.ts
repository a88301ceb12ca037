// Pre-screener contract: `create` returns null (no pre-screening) or a Prescreener whose `score` is the union
// (max) of its `branchScores`; trainable ones (capability `trainable`) implement branchScores and imitationLoss and
// pass gradients to every weight; flat memory; and the golden case.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import { Rng } from '../../core/runtime/random.js';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';
import type { Classifier, ForwardIO, ModelContext, Prescreener } from '../../registry/contracts/model.js';
import { compareTensor, fillPattern, readGolden, type GoldenFile, type GoldenReport } from './golden.js';
import { allFinite, expectDefaultsParse, expectGradientsFlow, expectNoTensorLeak, goldenPath, maxAbsDiff, missingGolden, parseOptions, presentTensors, type SuiteOptions } from './shared.js';

export interface PrescreenerGoldenCase {
  readonly options: Readonly<Record<string, unknown>>;
  readonly numClasses: number;
  readonly weights?: 'pattern-v1';
  /** Row-major uint8 thumbnails and their shape [N, 16, 16, 3] (scaled to [0, 1] by /255). */
  readonly thumbsUint8?: number[];
  readonly thumbsShape?: number[];
}

export interface PrescreenerGoldenExpected {
  /** `null`: the plugin creates no pre-screener. */
  readonly instance?: null;
  readonly branchScores?: number[][];
  readonly score?: number[];
}

export type PrescreenerGolden = GoldenFile<PrescreenerGoldenCase, PrescreenerGoldenExpected>;

function noClassifier(): Classifier {
  throw new Error('pre-screeners do not build classifier heads');
}

export function createPrescreener(definition: AnyPluginDefinition, rawOptions: Readonly<Record<string, unknown>>, numClasses: number, seed = 0): Prescreener | null {
  const ctx: ModelContext = { inputDim: 0, numClasses, outputDim: numClasses, rng: new Rng(seed), logger: silentLogger, makeClassifier: noClassifier };
  return (definition.create as (options: unknown, ctx: ModelContext) => Prescreener | null)(parseOptions(definition, rawOptions), ctx);
}

function io(training: boolean, seed = 0): ForwardIO {
  return { training, rng: new Rng(seed) };
}

function thumbs(n: number, seed: number): tf.Tensor4D {
  return tf.randomUniform([n, 16, 16, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
}

export function checkPrescreenerGolden(definition: AnyPluginDefinition, golden: PrescreenerGolden): GoldenReport {
  const { case: c, expected, tolerance } = golden;
  const plugin = `prescreener/${definition.name}`;
  const instance = createPrescreener(definition, c.options, c.numClasses);
  if (expected.instance === null) return { plugin, mismatches: instance === null ? [] : ['instance: expected no pre-screener (null)'] };
  if (!instance) return { plugin, mismatches: ['instance: the plugin created no pre-screener'] };
  fillPattern(instance.namedTensors().map(([torchKey, entry]) => ({ torchKey, entry })));
  instance.setTraining(false);
  const input = tf.tidy(() => tf.div(tf.tensor(c.thumbsUint8 ?? [], c.thumbsShape ?? [0, 16, 16, 3], 'float32'), 255)) as tf.Tensor4D;
  try {
    const mismatches: string[] = [];
    if (expected.branchScores) {
      const branch = instance.branchScores?.(input, io(false));
      mismatches.push(...compareTensor('branchScores', branch, expected.branchScores, tolerance));
      tf.dispose(branch);
    }
    if (expected.score) {
      const score = instance.score(input, io(false));
      mismatches.push(...compareTensor('score', score, expected.score, tolerance));
      score.dispose();
    }
    return { plugin, mismatches };
  } finally {
    input.dispose();
    instance.dispose();
  }
}

export function prescreenerContract(definitions: readonly AnyPluginDefinition[], suite: SuiteOptions = {}): void {
  const numClasses = 2;
  describe.each(definitions.map((d) => [d.name, d] as const))('prescreener/%s contract', (name, definition) => {
    const trainable = definition.capabilities['trainable'] === true;

    it('parses its defaults, and the parsed options survive a JSON round trip', () => {
      expectDefaultsParse(definition);
    });

    it('creates a pre-screener, or null, consistently with its trainable capability', () => {
      const instance = createPrescreener(definition, {}, numClasses);
      if (trainable) {
        expect(instance, 'a trainable pre-screener exists').not.toBeNull();
        expect(typeof instance?.branchScores, 'trainable pre-screeners implement branchScores').toBe('function');
        expect(typeof instance?.imitationLoss, 'trainable pre-screeners implement imitationLoss').toBe('function');
      }
      instance?.dispose();
    });

    it('scores [N] finite keep logits, the max over its branch scores [N, K]', () => {
      const instance = createPrescreener(definition, {}, numClasses);
      if (!instance) return;
      instance.setTraining(false);
      const x = thumbs(5, 1);
      const score = instance.score(x, io(false));
      expect(score.shape).toEqual([5]);
      expect(allFinite(score)).toBe(true);
      const branch = instance.branchScores?.(x, io(false));
      if (branch) {
        expect(branch.shape[0]).toBe(5);
        const union = tf.max(branch, 1);
        expect(maxAbsDiff(union.dataSync(), score.dataSync()), 'score is the union (max) of the branch scores').toBeLessThan(1e-5);
        tf.dispose([union, branch]);
      }
      tf.dispose([x, score]);
      instance.dispose();
    });

    it('trains: a finite imitation loss with a finite, non-zero gradient for every weight', () => {
      const instance = createPrescreener(definition, {}, numClasses);
      if (!instance?.branchScores || !instance.imitationLoss) {
        instance?.dispose();
        return;
      }
      instance.setTraining(true);
      const x = thumbs(6, 2);
      const targets = tf.tensor2d([1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 1], [6, 2]);
      const { value, grads } = tf.variableGrads(() => {
        const scores = instance.branchScores?.(x, io(true, 5)) as tf.Tensor2D;
        return instance.imitationLoss?.(scores, targets) as tf.Scalar;
      }, instance.trainableVariables());
      expect(allFinite(value)).toBe(true);
      expectGradientsFlow(instance, grads, 'the imitation loss');
      tf.dispose([value, x, targets, ...Object.values(grads)]);
      instance.dispose();
    });

    it('initialises the same for the same seed', () => {
      const x = thumbs(3, 3);
      const run = (seed: number): number[] => {
        const instance = createPrescreener(definition, {}, numClasses, seed);
        if (!instance) return [];
        instance.setTraining(false);
        const score = instance.score(x, io(false));
        const values = Array.from(score.dataSync());
        score.dispose();
        instance.dispose();
        return values;
      };
      expect(run(1)).toEqual(run(1));
      x.dispose();
    });

    it('leaves tf.memory().numTensors unchanged across scoring calls', async () => {
      const instance = createPrescreener(definition, {}, numClasses);
      if (!instance) return;
      const x = thumbs(4, 4);
      await expectNoTensorLeak(`prescreener/${name} score`, () => {
        tf.dispose(presentTensors([instance.score(x, io(false)), instance.branchScores?.(x, io(false))]));
      });
      x.dispose();
      instance.dispose();
    });

    const golden = goldenPath(suite, name);
    it.skipIf(!golden && !suite.requireGolden)('matches its golden case', () => {
      if (!golden) throw new Error(missingGolden(suite, 'prescreener', name));
      const report = checkPrescreenerGolden(definition, readGolden<PrescreenerGoldenCase, PrescreenerGoldenExpected>(golden, 'prescreener'));
      expect(report.mismatches, golden).toEqual([]);
    });
  });
}
