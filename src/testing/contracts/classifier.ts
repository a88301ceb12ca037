// Classifier contract: [M, in] → [M, out] finite logits, eval-mode determinism, gradients to every weight, seeded
// initialisation, flat memory, and the golden case.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import { Rng } from '../../core/runtime/random.js';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';
import type { Classifier, ForwardIO, ModelContext } from '../../registry/contracts/model.js';
import { compareTensor, fillPattern, readGolden, tensorOf, type GoldenFile, type GoldenReport } from './golden.js';
import { allFinite, expectDefaultsParse, expectNoTensorLeak, goldenPath, missingGolden, parseOptions, type SuiteOptions } from './shared.js';

export interface ClassifierGoldenCase {
  readonly options: Readonly<Record<string, unknown>>;
  readonly inputDim: number;
  readonly outputDim: number;
  readonly weights: 'pattern-v1';
  /** [M, in] embeddings. */
  readonly z: number[][];
}

export interface ClassifierGoldenExpected {
  /** [M, out] eval-mode logits. */
  readonly logits: number[][];
}

export type ClassifierGolden = GoldenFile<ClassifierGoldenCase, ClassifierGoldenExpected>;

export interface ClassifierSuiteOptions extends SuiteOptions {
  /** Options per plugin name for the generic checks. */
  readonly optionsFor?: (name: string) => Readonly<Record<string, unknown>>;
}

/** Creates a classifier for [inputDim → outputDim] the way MilModel does (nested heads use the same plugin). */
export function createClassifier(definition: AnyPluginDefinition, rawOptions: Readonly<Record<string, unknown>>, inputDim: number, outputDim: number, seed = 0): Classifier {
  const options = parseOptions(definition, rawOptions);
  const create = definition.create as (options: unknown, ctx: ModelContext) => Classifier;
  const makeClassifier = (inDim: number, outDim: number, rng: Rng): Classifier => create(options, { inputDim: inDim, outputDim: outDim, numClasses: outputDim, rng, logger: silentLogger, makeClassifier });
  return makeClassifier(inputDim, outputDim, new Rng(seed));
}

function io(training: boolean, seed = 0): ForwardIO {
  return { training, rng: new Rng(seed) };
}

/** Fills the golden's pattern weights, runs the golden input and returns the mismatches (empty = pass). */
export function checkClassifierGolden(definition: AnyPluginDefinition, golden: ClassifierGolden): GoldenReport {
  const { case: c, expected, tolerance } = golden;
  const classifier = createClassifier(definition, c.options, c.inputDim, c.outputDim);
  fillPattern(classifier.namedTensors().map(([torchKey, entry]) => ({ torchKey, entry })));
  const z = tensorOf(c.z) as tf.Tensor2D;
  try {
    classifier.setTraining(false);
    const logits = classifier.forward(z, io(false));
    const mismatches = compareTensor('logits', logits, expected.logits, tolerance);
    logits.dispose();
    return { plugin: `classifier/${definition.name}`, mismatches };
  } finally {
    z.dispose();
    classifier.dispose();
  }
}

/** Declares the classifier contract for each definition. */
export function classifierContract(definitions: readonly AnyPluginDefinition[], suite: ClassifierSuiteOptions = {}): void {
  const inDim = 12;
  const outDim = 3;
  describe.each(definitions.map((d) => [d.name, d] as const))('classifier/%s contract', (name, definition) => {
    const options = suite.optionsFor?.(name) ?? {};
    const z = (m: number, seed: number): tf.Tensor2D => tf.randomNormal([m, inDim], 0, 1, 'float32', seed) as tf.Tensor2D;

    it('parses its defaults, and the parsed options survive a JSON round trip', () => {
      expectDefaultsParse(definition);
    });

    it.each([1, 5])('maps [%i, in] to finite [M, out] logits, the same twice at eval', (m) => {
      const classifier = createClassifier(definition, options, inDim, outDim);
      classifier.setTraining(false);
      const x = z(m, m);
      const a = classifier.forward(x, io(false, 1));
      const b = classifier.forward(x, io(false, 2));
      expect(a.shape).toEqual([m, outDim]);
      expect(allFinite(a)).toBe(true);
      expect(Array.from(b.dataSync()), 'eval forward does not depend on the step rng').toEqual(Array.from(a.dataSync()));
      tf.dispose([x, a, b]);
      classifier.dispose();
    });

    it('treats rows independently (row i of a batch = the row alone)', () => {
      const classifier = createClassifier(definition, options, inDim, outDim);
      classifier.setTraining(false);
      const x = z(4, 9);
      const all = classifier.forward(x, io(false));
      const row = tf.slice(x, [2, 0], [1, inDim]);
      const alone = classifier.forward(row as tf.Tensor2D, io(false));
      const fromAll = tf.slice(all, [2, 0], [1, outDim]);
      expect(tf.tidy(() => tf.max(tf.abs(tf.sub(fromAll, alone))).dataSync()[0]) as number).toBeLessThan(1e-5);
      tf.dispose([x, all, row, alone, fromAll]);
      classifier.dispose();
    });

    it('gives every trainable weight a finite, non-zero gradient', () => {
      const classifier = createClassifier(definition, options, inDim, outDim);
      const x = z(6, 13);
      const weights = tf.randomNormal([6, outDim], 0, 1, 'float32', 14);
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(classifier.forward(x, io(true, 3)), weights)) as tf.Scalar, classifier.trainableVariables());
      const names = new Map(classifier.namedTensors().map(([key, entry]) => [entry.variable.name, key]));
      for (const v of classifier.trainableVariables()) {
        const key = names.get(v.name) as string;
        const g = grads[v.name];
        expect(g, `${key} has a gradient`).toBeDefined();
        expect(allFinite(g as tf.Tensor), `${key} gradient is finite`).toBe(true);
        expect(tf.tidy(() => tf.max(tf.abs(g as tf.Tensor)).dataSync()[0]) as number, `${key} gradient is non-zero`).toBeGreaterThan(0);
      }
      tf.dispose([value, x, weights, ...Object.values(grads)]);
      classifier.dispose();
    });

    it('initialises the same for the same seed and differently for another', () => {
      const x = z(2, 17);
      const run = (seed: number): number[] => {
        const classifier = createClassifier(definition, options, inDim, outDim, seed);
        classifier.setTraining(false);
        const logits = classifier.forward(x, io(false));
        const values = Array.from(logits.dataSync());
        logits.dispose();
        classifier.dispose();
        return values;
      };
      expect(run(1)).toEqual(run(1));
      expect(run(1)).not.toEqual(run(2));
      x.dispose();
    });

    it('leaves tf.memory().numTensors unchanged across training steps', async () => {
      const classifier = createClassifier(definition, options, inDim, outDim);
      const x = z(5, 19);
      await expectNoTensorLeak(`classifier/${name} step`, () => {
        const { value, grads } = tf.variableGrads(() => tf.sum(classifier.forward(x, io(true, 4))) as tf.Scalar, classifier.trainableVariables());
        tf.dispose([value, ...Object.values(grads)]);
      });
      x.dispose();
      classifier.dispose();
    });

    const golden = goldenPath(suite, name);
    it.skipIf(!golden && !suite.requireGolden)('matches its golden case', () => {
      if (!golden) throw new Error(missingGolden(suite, 'classifier', name));
      const report = checkClassifierGolden(definition, readGolden<ClassifierGoldenCase, ClassifierGoldenExpected>(golden, 'classifier'));
      expect(report.mismatches, golden).toEqual([]);
    });
  });
}
