// The aggregator contract suite: runs for every registered aggregator with its default options, switching on
// declared capabilities (never on names). Runs on wasm with milkit's runtime (the training configuration);
// per-plugin numerics live in test/plugins/aggregators/*.test.ts.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { DEFAULT_AGGREGATOR_CAPABILITIES, DEFAULT_LOSS_CAPABILITIES, type AggregatorCapabilities, type LossCapabilities, type ModelOutput } from '../../src/registry/index.js';
import type { MilModel } from '../../src/core/engine/model.js';
import { builtinRegistry } from '../helpers/registry.js';
import { bagOf, buildModel, io, type ModelSpec } from '../helpers/zoo.js';

const INPUT_DIM = 64;
const NUM_CLASSES = 2;
const registry = builtinRegistry();
const aggregators = registry.names('aggregator');

beforeAll(async () => {
  await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: 1 }), { logger: silentLogger });
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

async function capabilitiesOf(name: string): Promise<AggregatorCapabilities> {
  const definition = await registry.get('aggregator', name);
  return { ...DEFAULT_AGGREGATOR_CAPABILITIES, ...(definition.capabilities as Partial<AggregatorCapabilities>) };
}

/** Cross-entropy plus every loss whose required extras this aggregator provides, so every weight is trained. */
async function specFor(name: string, seed = 0): Promise<ModelSpec> {
  const provides = new Set((await capabilitiesOf(name)).provides);
  const losses: Record<string, { name: string; weight: number }> = { bag: { name: 'cross-entropy', weight: 1 } };
  for (const lossName of registry.names('loss')) {
    const definition = await registry.get('loss', lossName);
    const { requires } = { ...DEFAULT_LOSS_CAPABILITIES, ...(definition.capabilities as Partial<LossCapabilities>) };
    if (requires.length > 0 && requires.every((r) => provides.has(r))) losses[lossName] = { name: lossName, weight: 1 };
  }
  return { inputDim: INPUT_DIM, numClasses: NUM_CLASSES, aggregator: { name }, losses, seed };
}

function features(n: number, seed: number): tf.Tensor2D {
  return tf.randomNormal([n, INPUT_DIM], 0, 1, 'float32', seed) as tf.Tensor2D;
}

function finite(t: tf.Tensor): boolean {
  return tf.tidy(() => tf.all(tf.isFinite(t)).dataSync()[0] === 1);
}

function trainStep(model: MilModel, x: tf.Tensor2D, label: number): void {
  const { value, grads } = tf.variableGrads(() => model.losses(model.forward(bagOf(x, label), io(true, label)), label, NUM_CLASSES).total, model.trainableVariables());
  value.dispose();
  tf.dispose(grads);
}

describe.each(aggregators)('aggregator/%s contract', (name) => {
  it('parses its defaults, and the parsed options survive a JSON round trip', async () => {
    const definition = await registry.get('aggregator', name);
    const parsed = definition.options.parse({}) as Record<string, unknown>;
    expect(definition.options.parse(JSON.parse(JSON.stringify(parsed)))).toEqual(parsed);
  });

  it.each([1, 7, 513])('gives contract shapes and finite values for N = %i', async (n) => {
    const caps = await capabilitiesOf(name);
    const model = await buildModel(await specFor(name));
    model.setTraining(false);
    const x = features(n, n);
    const out = model.forward(bagOf(x), io(false));
    const [k, e] = out.embedding.shape;
    expect(e).toBe(model.aggregator.embeddingDim);
    expect(k).toBeGreaterThanOrEqual(1);
    expect(out.logits.shape).toEqual([1, NUM_CLASSES]);
    expect(finite(out.embedding) && finite(out.logits)).toBe(true);
    if (caps.instanceScores) {
      expect(out.instanceScores?.shape[1]).toBe(n);
      expect(finite(out.instanceScores as tf.Tensor)).toBe(true);
    }
    for (const key of Object.keys(out.extras ?? {})) expect(caps.provides, `extra "${key}" is declared in provides`).toContain(key);
    tf.dispose([x, out as unknown as tf.TensorContainer]);
    model.dispose();
  });

  it('is invariant to instance order when it declares permutationInvariant', async () => {
    const caps = await capabilitiesOf(name);
    const model = await buildModel(await specFor(name));
    model.setTraining(false);
    const x = features(7, 21);
    const order = [3, 0, 6, 1, 5, 2, 4];
    const shuffled = tf.gather(x, order) as tf.Tensor2D;
    const a = model.forward(bagOf(x), io(false, 1)).logits.dataSync();
    const b = model.forward(bagOf(shuffled), io(false, 1)).logits.dataSync();
    const maxDiff = Math.max(...Array.from(a, (v, i) => Math.abs(v - (b[i] as number))));
    if (caps.permutationInvariant) expect(maxDiff).toBeLessThan(1e-4);
    else expect(maxDiff, 'declared order-dependent: the order should matter').toBeGreaterThan(1e-6);
    model.dispose();
  });

  it('gives every trainable weight a finite, non-zero gradient (summed over both labels)', async () => {
    const model = await buildModel(await specFor(name));
    const variables = model.trainableVariables();
    if (variables.length === 0) return; // parameter-free pooling
    // N = 513: with TransMIL's pinned Nyström alignment a short sequence keeps only padding rows, whose value
    // residual is exactly zero (faithful to nystrom-attention 0.0.9), so a small bag would starve res_conv.
    const x = features(513, 31);
    const { grads } = tf.variableGrads(() => {
      const total = [0, 1].map((label) => {
        const out: ModelOutput = model.forward(bagOf(x, label), io(true, label));
        return model.losses(out, label, NUM_CLASSES).total;
      });
      return tf.addN(total) as tf.Scalar;
    }, variables);
    const byName = new Map(model.namedTrainable().map(([key, v]) => [v.name, key]));
    const inert = new Set((model.aggregator.inertParameters ?? []).map((key) => `aggregator.${key}`));
    for (const v of variables) {
      const key = byName.get(v.name) as string;
      const g = grads[v.name];
      if (inert.has(key)) {
        // Declared inert: may be off the tape or zero, never non-finite.
        if (g) expect(finite(g), `${key} gradient is finite`).toBe(true);
        continue;
      }
      expect(g, `${key} has a gradient`).toBeDefined();
      expect(finite(g as tf.Tensor), `${key} gradient is finite`).toBe(true);
      expect(tf.max(tf.abs(g as tf.Tensor)).dataSync()[0], `${key} gradient is non-zero`).toBeGreaterThan(0);
    }
    tf.dispose(grads);
    model.dispose();
  });

  it('gives the same output for the same seed and a different one for another seed', async () => {
    const x = features(7, 41);
    const run = async (seed: number): Promise<Float32Array> => {
      const model = await buildModel(await specFor(name, seed));
      model.setTraining(false);
      const logits = model.forward(bagOf(x), io(false, 5)).logits.dataSync() as Float32Array;
      model.dispose();
      return logits;
    };
    const [a, b, c] = [await run(1), await run(1), await run(2)];
    expect(Array.from(a)).toEqual(Array.from(b));
    const params = (await buildModel(await specFor(name))).trainableVariables().length;
    if (params > 0) expect(Array.from(a)).not.toEqual(Array.from(c));
  });

  it('leaves tf.memory().numTensors unchanged across training steps', async () => {
    const model = await buildModel(await specFor(name));
    const x = features(33, 51);
    trainStep(model, x, 1);
    const before = tf.memory().numTensors;
    trainStep(model, x, 0);
    trainStep(model, x, 1);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});
