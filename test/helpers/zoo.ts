// Helpers for the MIL-zoo parity suites: fixtures written by test/reference/{abmil,clam,dsmil,transmil,dtfd}.py
// (weights under the original torch keys + a case file with inputs, eval outputs, loss and gradients), models
// composed by the engine's MilModel from registry slots, and tolerance checks.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { MilModel, type ModelSlots } from '../../src/core/engine/model.js';
import { MemoryLogger } from '../../src/core/logger.js';
import { readSafetensors, toFloat32, type TensorRecord } from '../../src/core/nn/safetensors.js';
import { importTorchState, torchEntries } from '../../src/core/nn/state-dict.js';
import { Rng } from '../../src/core/runtime/random.js';
import type { Bag, ForwardIO, ModelOutput, Registry } from '../../src/registry/index.js';
import { builtinRegistry } from './registry.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'reference', 'fixtures');

export interface PluginSpec {
  readonly name: string;
  readonly [option: string]: unknown;
}

/** The JSON spec a reference generator stores in a case file's metadata. */
export interface CaseSpec {
  readonly generator: string;
  readonly torch: string;
  readonly seed: number;
  readonly inputDim: number;
  readonly numClasses: number;
  readonly label: number;
  readonly aggregator: PluginSpec;
  readonly classifier: PluginSpec;
  readonly losses: Readonly<Record<string, PluginSpec & { readonly weight: number }>>;
  /** Extra per-case facts (e.g. DTFD's permutation is a tensor `permutation`). */
  readonly [extra: string]: unknown;
}

export interface Fixture {
  readonly name: string;
  readonly spec: CaseSpec;
  /** Torch-keyed state_dict as a user would convert it. */
  readonly weights: Readonly<Record<string, TensorRecord>>;
  readonly weightsBytes: Uint8Array;
  readonly tensors: Readonly<Record<string, TensorRecord>>;
}

export function loadFixture(name: string): Fixture {
  const weightsBytes = new Uint8Array(readFileSync(join(FIXTURES, `${name}.weights.safetensors`)));
  const caseFile = readSafetensors(new Uint8Array(readFileSync(join(FIXTURES, `${name}.case.safetensors`))));
  const specText = caseFile.metadata.case;
  if (!specText) throw new Error(`${name}.case.safetensors has no "case" metadata`);
  return { name, spec: JSON.parse(specText) as CaseSpec, weights: readSafetensors(weightsBytes).tensors, weightsBytes, tensors: caseFile.tensors };
}

/** A case tensor as float32 values with its shape. */
export function caseTensor(fixture: Fixture, key: string): { values: Float32Array; shape: number[] } {
  const record = fixture.tensors[key];
  if (!record) throw new Error(`${fixture.name}: case has no tensor "${key}"`);
  return { values: toFloat32(record), shape: [...record.shape] };
}

export interface ModelSpec {
  readonly inputDim: number;
  readonly numClasses: number;
  readonly aggregator: PluginSpec;
  readonly classifier?: PluginSpec;
  readonly losses?: Readonly<Record<string, PluginSpec & { readonly weight: number }>>;
  readonly seed?: number;
}

/** Builds the model the engine would build for these slots. */
export async function buildModel(spec: ModelSpec, registry: Registry = builtinRegistry()): Promise<MilModel> {
  const aggregator = await registry.resolve('aggregator', spec.aggregator, { key: 'model.aggregator' });
  const classifier = await registry.resolve('classifier', spec.classifier ?? { name: 'linear' }, { key: 'model.classifier' });
  const losses: Record<string, ModelSlots['losses'][string]> = {};
  for (const [slot, { weight, ...ref }] of Object.entries(spec.losses ?? {})) {
    losses[slot] = { ...(await registry.resolve('loss', ref, { key: `model.losses.${slot}` })), weight };
  }
  return new MilModel(registry, { aggregator, classifier, losses }, { inputDim: spec.inputDim, numClasses: spec.numClasses }, new Rng(spec.seed ?? 0), new MemoryLogger());
}

/** Builds the fixture's model and loads its torch weights through the state-dict import. */
export async function modelFromFixture(fixture: Fixture): Promise<MilModel> {
  const model = await buildModel(fixture.spec);
  importTorchState(model, fixture.weights, `${fixture.name}.weights.safetensors`);
  return model;
}

export function bagOf(features: tf.Tensor2D, label?: number): Bag {
  return label === undefined ? { slideId: 'case', features } : { slideId: 'case', features, label };
}

export function io(training: boolean, seed = 0, injected?: Record<string, tf.Tensor>): ForwardIO {
  return injected ? { training, rng: new Rng(seed), injected } : { training, rng: new Rng(seed) };
}

/** One training step's loss and the gradient of every trainable tensor, keyed by torch key in torch layout. */
export function lossAndTorchGrads(model: MilModel, bag: Bag, label: number, numClasses: number, forwardIo: ForwardIO): { loss: number; grads: Map<string, { values: Float32Array; shape: number[] }> } {
  const entries = torchEntries(model).filter(({ entry }) => entry.trainable);
  const { value, grads } = tf.variableGrads(() => {
    const out: ModelOutput = model.forward(bag, forwardIo);
    return model.losses(out, label, numClasses).total;
  }, entries.map(({ entry }) => entry.variable));
  const result = new Map<string, { values: Float32Array; shape: number[] }>();
  for (const { torchKey, entry, torchShape } of entries) {
    const grad = grads[entry.variable.name];
    if (!grad) continue; // not on the loss's tape (torch: grad is None)
    const laidOut = entry.torch.perm ? tf.transpose(grad, [...entry.torch.perm]) : grad;
    result.set(torchKey, { values: laidOut.dataSync() as Float32Array, shape: torchShape });
    if (laidOut !== grad) laidOut.dispose();
  }
  const loss = value.dataSync()[0] as number;
  value.dispose();
  Object.values(grads).forEach((g) => g.dispose());
  return { loss, grads: result };
}

/** |a - e| ≤ atol + rtol·|e| element-wise, reporting the worst element. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, atol = 1e-4, rtol = 1e-4): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < expected.length; i += 1) {
    const excess = Math.abs((actual[i] as number) - (expected[i] as number)) - (atol + rtol * Math.abs(expected[i] as number));
    if (excess > worst) {
      worst = excess;
      worstAt = i;
    }
  }
  expect(worstAt, `${what}: element ${worstAt} is ${actual[worstAt]} vs ${expected[worstAt]}`).toBe(-1);
}

/** Gradient check relative to the tensor's scale: max|a - e| ≤ rel · max|e| (+ a tiny floor for all-zero tensors). */
export function expectGradClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rel = 1e-3): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let scale = 0;
  let worst = 0;
  let worstAt = 0;
  for (let i = 0; i < expected.length; i += 1) {
    scale = Math.max(scale, Math.abs(expected[i] as number));
    const diff = Math.abs((actual[i] as number) - (expected[i] as number));
    if (diff > worst) {
      worst = diff;
      worstAt = i;
    }
  }
  expect(worst, `${what}: element ${worstAt} is ${actual[worstAt]} vs ${expected[worstAt]} (scale ${scale})`).toBeLessThanOrEqual(rel * scale + 1e-7);
}

/**
 * Runs the standard parity checks of a fixture: eval outputs named `eval.<field>` (logits, embedding,
 * instanceScores, or `eval.extras.<name>`), then the train-mode loss and every gradient.
 */
export async function checkFixtureParity(name: string, injected?: (fixture: Fixture) => Record<string, tf.Tensor>): Promise<void> {
  const fixture = loadFixture(name);
  const model = await modelFromFixture(fixture);
  const x = caseTensor(fixture, 'x');
  const features = tf.tensor2d(x.values, x.shape as [number, number]);
  const inject = injected?.(fixture);
  try {
    model.setTraining(false);
    const out = model.forward(bagOf(features), io(false, fixture.spec.seed, inject));
    for (const key of Object.keys(fixture.tensors).filter((k) => k.startsWith('eval.'))) {
      const field = key.slice('eval.'.length);
      const tensor = field.startsWith('extras.') ? out.extras?.[field.slice('extras.'.length)] : (out as unknown as Record<string, tf.Tensor | undefined>)[field];
      if (!tensor) throw new Error(`${name}: the model output has no ${field}`);
      const expected = caseTensor(fixture, key);
      expect(tensor.shape, `${name} ${field} shape`).toEqual(expected.shape);
      expectClose(tensor.dataSync(), expected.values, `${name} ${field}`);
    }
    tf.dispose(out as unknown as tf.TensorContainer);
    model.setTraining(true);
    const { loss, grads } = lossAndTorchGrads(model, bagOf(features, fixture.spec.label), fixture.spec.label, fixture.spec.numClasses, io(true, fixture.spec.seed, inject));
    expectClose([loss], caseTensor(fixture, 'train.loss').values, `${name} loss`);
    const gradKeys = Object.keys(fixture.tensors).filter((k) => k.startsWith('grad.')).map((k) => k.slice('grad.'.length));
    expect([...grads.keys()].sort(), `${name}: gradient keys`).toEqual(gradKeys.sort());
    for (const key of gradKeys) {
      const expected = caseTensor(fixture, `grad.${key}`);
      const actual = grads.get(key);
      expect(actual?.shape, `${name} grad ${key} shape`).toEqual(expected.shape);
      expectGradClose(actual?.values ?? [], expected.values, `${name} grad ${key}`);
    }
  } finally {
    features.dispose();
    if (inject) tf.dispose(Object.values(inject));
    model.dispose();
  }
}
