// Test helpers for the HDMIL parity suites: model contexts wired to real classifier plugins, the formula
// weights of test/reference/hdmil_reference.py loaded by original torch key, and tolerance checks.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { MemoryLogger } from '../../src/core/logger.js';
import { Rng } from '../../src/core/runtime/random.js';
import type { Classifier, ModelContext, Module, PluginDefinition } from '../../src/registry/index.js';
import ckaPlugin from '../../plugins/classifiers/cka.js';
import linearPlugin from '../../plugins/classifiers/linear.js';

type ClassifierDefinition = PluginDefinition<'classifier'>;

const CLASSIFIERS: Readonly<Record<string, ClassifierDefinition>> = {
  cka: ckaPlugin as unknown as ClassifierDefinition,
  linear: linearPlugin as unknown as ClassifierDefinition,
};

export interface ContextSpec {
  readonly inputDim: number;
  readonly numClasses: number;
  readonly classifier?: 'cka' | 'linear';
  readonly classifierOptions?: Record<string, unknown>;
  readonly seed?: number | string;
}

/** A ModelContext whose makeClassifier builds the named classifier plugin with parsed options. */
export function modelContext(spec: ContextSpec): ModelContext {
  const logger = new MemoryLogger();
  const definition = CLASSIFIERS[spec.classifier ?? 'cka'] as ClassifierDefinition;
  const classifierOptions = definition.options.parse(spec.classifierOptions ?? {});
  const makeClassifier = (inDim: number, outDim: number, rng: Rng): Classifier =>
    definition.create(classifierOptions, { inputDim: inDim, outputDim: outDim, numClasses: spec.numClasses, rng, logger, makeClassifier }) as Classifier;
  return { inputDim: spec.inputDim, numClasses: spec.numClasses, outputDim: spec.numClasses, rng: new Rng(spec.seed ?? 0), logger, makeClassifier };
}

/** One entry of a fixture's formula spec (see hdmil_reference.py). */
export interface FormulaEntry {
  readonly key: string;
  readonly shape: readonly number[];
  readonly integer?: boolean;
  readonly j?: number;
  readonly scale?: number;
  readonly offset?: number;
  readonly squared?: boolean;
}

/** offset + scale·sin(0.7 i + 1.1 j + 0.2) (or its square), in torch layout, rounded to float32. */
export function formulaValues(entry: FormulaEntry): Float32Array {
  const size = entry.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i += 1) {
    const wave = Math.sin(0.7 * i + 1.1 * (entry.j ?? 0) + 0.2);
    out[i] = (entry.offset ?? 0) + (entry.scale ?? 0) * (entry.squared ? wave * wave : wave);
  }
  return out;
}

/** Inverse permutation. */
export function invert(perm: readonly number[]): number[] {
  return perm.map((_, axis) => perm.indexOf(axis));
}

/**
 * Loads torch-layout values into the module by state_dict key (applying each tensor's `torch.perm`), and
 * requires the key sets to be identical: this is what makes the keys "the original ones".
 */
export function loadTorchLayout(module: Module, values: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array | Int32Array }>): void {
  const named = new Map(module.namedTensors());
  expect([...named.keys()].sort()).toEqual([...values.keys()].sort());
  for (const [key, { shape, data }] of values) {
    const entry = named.get(key);
    if (!entry) throw new Error(`no tensor ${key}`);
    tf.tidy(() => {
      const torchTensor = tf.tensor(data, [...shape], entry.variable.dtype);
      const perm = entry.torch.perm;
      entry.variable.assign(perm ? tf.transpose(torchTensor, invert(perm)) : torchTensor);
    });
  }
}

/** Formula weights of a fixture spec, by key, ready for loadTorchLayout. */
export function formulaState(spec: readonly FormulaEntry[], counterStart = 0): Map<string, { shape: readonly number[]; data: Float32Array | Int32Array }> {
  const state = new Map<string, { shape: readonly number[]; data: Float32Array | Int32Array }>();
  for (const entry of spec) {
    if (entry.integer) {
      const size = entry.shape.reduce((a, b) => a * b, 1);
      const data = entry.key.endsWith('labels') ? Int32Array.from({ length: size }, (_, i) => i) : new Int32Array(size).fill(counterStart);
      state.set(entry.key, { shape: entry.shape, data });
    } else state.set(entry.key, { shape: entry.shape, data: formulaValues(entry) });
  }
  return state;
}

/** A milkit-layout tensor (e.g. a gradient) as a flat torch-layout array. */
export function toTorchLayout(t: tf.Tensor, perm: readonly number[] | undefined): Float32Array {
  return tf.tidy(() => (perm ? tf.transpose(t, [...perm]) : t).dataSync() as Float32Array);
}

/** |a - e| ≤ atol + rtol·|e| elementwise, with the worst offender in the message. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-5, rtol = 1e-4, label = ''): void {
  expect(actual.length, `${label} length`).toBe(expected.length);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i += 1) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    expect.fail(`${label}[${worst}]: got ${actual[worst] as number}, expected ${expected[worst] as number} (atol ${atol}, rtol ${rtol})`);
  }
}

/** Reads a fixture file committed under test/reference/fixtures/. */
export async function readFixture<T>(name: string): Promise<T> {
  const { readFile } = await import('node:fs/promises');
  const url = new URL(`../reference/fixtures/${name}`, import.meta.url);
  return JSON.parse(await readFile(url, 'utf8')) as T;
}

/** Switches the process to `backend` (stock kernels, no BLAS) through the runtime, as runs do. */
export async function useBackend(backend: 'cpu' | 'wasm'): Promise<void> {
  const { initRuntime } = await import('../../src/core/runtime/index.js');
  const { silentLogger } = await import('../../src/core/logger.js');
  await initRuntime({ backend, blas: 'off' }, { logger: silentLogger });
  if (tf.getBackend() !== backend) throw new Error(`backend ${backend} requested, ${tf.getBackend()} active`);
}
