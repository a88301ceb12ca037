// Encoder contract: `create` returns null exactly when the plugin declares `trainable: false` (`none`), else an
// Encoder mapping raw instances [N, ...instanceShape] to finite features [N, outputDim]; each instance is encoded on
// its own at eval (a row does not depend on the other instances of the bag); a loss on the features gives every
// weight a finite gradient and moves some (what training end to end needs); seeded initialisation; flat memory;
// and the golden case (pattern-v1 weights, a sine-wave input).
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import { Rng } from '../../core/runtime/random.js';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';
import { DEFAULT_ENCODER_CAPABILITIES, type Encoder, type EncoderCapabilities, type ForwardIO } from '../../registry/contracts/model.js';
import { compareTensor, fillPattern, readGolden, type GoldenFile, type GoldenReport } from './golden.js';
import { allFinite, expectDefaultsParse, expectGradientsFlow, expectNoTensorLeak, goldenPath, maxAbsDiff, missingGolden, parseOptions, presentTensors, type SuiteOptions } from './shared.js';

export interface EncoderGoldenCase {
  readonly options: Readonly<Record<string, unknown>>;
  readonly weights?: 'pattern-v1';
  /** [N, ...instance shape] of the input. */
  readonly inputShape?: number[];
  /** Input x[k] = amplitude · sin(a·k + b) over the row-major index k: [a, b, amplitude]. */
  readonly inputWave?: [number, number, number];
}

export interface EncoderGoldenExpected {
  /** `null`: the plugin creates no encoder. */
  readonly instance?: null;
  /** [N, E] eval-mode features. */
  readonly features?: number[][];
}

export type EncoderGolden = GoldenFile<EncoderGoldenCase, EncoderGoldenExpected>;

export interface EncoderSuiteOptions extends SuiteOptions {
  /** Options for the generic checks (small widths keep them fast); the golden case carries its own. */
  readonly optionsFor?: (name: string) => Readonly<Record<string, unknown>>;
  /** Instance shape for the generic checks when the plugin declares none (capability `instanceShape`). */
  readonly instanceShapeFor?: (name: string) => readonly number[];
}

export function encoderCapabilities(definition: AnyPluginDefinition): EncoderCapabilities {
  return { ...DEFAULT_ENCODER_CAPABILITIES, ...(definition.capabilities as Partial<EncoderCapabilities>) };
}

export function createEncoder(definition: AnyPluginDefinition, rawOptions: Readonly<Record<string, unknown>>, seed = 0): Encoder | null {
  return (definition.create as (options: unknown, ctx: unknown) => Encoder | null)(parseOptions(definition, rawOptions), { rng: new Rng(seed), logger: silentLogger });
}

function io(training: boolean, seed = 0): ForwardIO {
  return { training, rng: new Rng(seed) };
}

/** x[k] = amplitude · sin(a·k + b), the golden input. */
export function waveInput(shape: readonly number[], [a, b, amplitude]: readonly [number, number, number]): tf.Tensor {
  const size = shape.reduce((p, q) => p * q, 1);
  const values = new Float32Array(size);
  for (let k = 0; k < size; k += 1) values[k] = amplitude * Math.sin(a * k + b);
  return tf.tensor(values, [...shape]);
}

export function checkEncoderGolden(definition: AnyPluginDefinition, golden: EncoderGolden): GoldenReport {
  const { case: c, expected, tolerance } = golden;
  const plugin = `encoder/${definition.name}`;
  const instance = createEncoder(definition, c.options);
  if (expected.instance === null) return { plugin, mismatches: instance === null ? [] : ['instance: expected no encoder (null)'] };
  if (!instance) return { plugin, mismatches: ['instance: the plugin created no encoder'] };
  fillPattern(instance.namedTensors().map(([torchKey, entry]) => ({ torchKey, entry })));
  instance.setTraining(false);
  const input = waveInput(c.inputShape ?? [], c.inputWave ?? [1, 0, 1]);
  try {
    const features = instance.forward(input, io(false));
    const mismatches = compareTensor('features', features, expected.features, tolerance);
    features.dispose();
    return { plugin, mismatches };
  } finally {
    input.dispose();
    instance.dispose();
  }
}

export function encoderContract(definitions: readonly AnyPluginDefinition[], suite: EncoderSuiteOptions = {}): void {
  describe.each(definitions.map((d) => [d.name, d] as const))('encoder/%s contract', (name, definition) => {
    const caps = encoderCapabilities(definition);
    const options = suite.optionsFor?.(name) ?? {};
    const shape = caps.instanceShape ?? suite.instanceShapeFor?.(name) ?? [28, 28, 1];
    const instances = (n: number, seed: number): tf.Tensor => tf.randomNormal([n, ...shape], 0, 1, 'float32', seed);

    it('parses its defaults, and the parsed options survive a JSON round trip', () => {
      expectDefaultsParse(definition);
    });

    it('creates an encoder exactly when it declares trainable, reading a named bag view', () => {
      const instance = createEncoder(definition, options);
      expect(instance !== null, 'an encoder exists ⇔ capability trainable').toBe(caps.trainable);
      expect(caps.inputView.length, 'capability inputView names a bag view').toBeGreaterThan(0);
      if (instance) expect(Number.isInteger(instance.outputDim) && instance.outputDim > 0, 'outputDim is a positive width').toBe(true);
      instance?.dispose();
    });

    it('encodes [N, ...instance shape] into finite [N, outputDim] features, each instance on its own at eval', () => {
      const instance = createEncoder(definition, options);
      if (!instance) return;
      instance.setTraining(false);
      const x = instances(4, 1);
      const h = instance.forward(x, io(false));
      expect(h.shape).toEqual([4, instance.outputDim]);
      expect(allFinite(h)).toBe(true);
      // The third instance alone gives the third row: no mixing across the instances of a bag.
      const single = tf.slice(x, [2], [1]);
      const alone = instance.forward(single, io(false));
      const row = tf.slice(h, [2, 0], [1, -1]);
      expect(maxAbsDiff(alone.dataSync(), row.dataSync()), 'row 2 of the bag equals instance 2 encoded alone').toBeLessThan(1e-4);
      tf.dispose([x, h, single, alone, row]);
      instance.dispose();
    });

    it('trains end to end: a loss on the features gives every weight a finite gradient and moves some', () => {
      const instance = createEncoder(definition, options);
      if (!instance) return;
      instance.setTraining(true);
      const x = instances(3, 2);
      const { value, grads } = tf.variableGrads(() => tf.tidy(() => {
        const h = instance.forward(x, io(true, 5));
        const weights = tf.linspace(-1, 1, h.size).reshape(h.shape);
        return tf.sum(tf.mul(h, weights)) as tf.Scalar;
      }), instance.trainableVariables());
      expect(allFinite(value)).toBe(true);
      expectGradientsFlow(instance, grads, 'the loss');
      tf.dispose([value, x, ...Object.values(grads)]);
      instance.dispose();
    });

    it('initialises the same for the same seed and differently for another', () => {
      const x = instances(2, 3);
      const run = (seed: number): number[] => {
        const instance = createEncoder(definition, options, seed);
        if (!instance) return [];
        instance.setTraining(false);
        const h = instance.forward(x, io(false));
        const values = Array.from(h.dataSync());
        h.dispose();
        instance.dispose();
        return values;
      };
      expect(run(1)).toEqual(run(1));
      if (caps.trainable) expect(run(1)).not.toEqual(run(2));
      x.dispose();
    });

    it('leaves tf.memory().numTensors unchanged across forward calls', async () => {
      const instance = createEncoder(definition, options);
      if (!instance) return;
      const x = instances(2, 4);
      await expectNoTensorLeak(`encoder/${name} forward`, () => {
        tf.dispose(presentTensors([instance.forward(x, io(false))]));
      });
      x.dispose();
      instance.dispose();
    });

    const golden = goldenPath(suite, name);
    it.skipIf(!golden && !suite.requireGolden)('matches its golden case', () => {
      if (!golden) throw new Error(missingGolden(suite, 'encoder', name));
      const report = checkEncoderGolden(definition, readGolden<EncoderGoldenCase, EncoderGoldenExpected>(golden, 'encoder'));
      expect(report.mismatches, golden).toEqual([]);
    });
  });
}
