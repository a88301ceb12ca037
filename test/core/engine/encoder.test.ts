// The encoder part of the composed model (model.encoder): raw instances from a bag view become the aggregator's
// features, its weights are the `encoder.` part of the state dict and of the trainable set, the loss gradient
// reaches them, stages train it by default and the stage check asks the dataset for its view. Also the
// instance-level pooling option of mean-pool / max-pool (classify each instance, then pool the probabilities).
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadExperiment } from '../../../src/core/config/load.js';
import { MilModel } from '../../../src/core/engine/model.js';
import { checkStages, resolveStages } from '../../../src/core/engine/stages.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { poolInstanceProbabilities } from '../../../src/core/nn/pooling.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { DEFAULT_AGGREGATOR_CAPABILITIES, type Bag } from '../../../src/registry/index.js';
import { builtinRegistry } from '../../helpers/registry.js';
import { REPO } from '../../e2e/helpers.js';

const MNIST_BAGS = path.join(REPO, 'experiments/mnist-bags.yaml');

beforeAll(async () => {
  await tf.setBackend('cpu');
});

async function model(aggregator: Record<string, unknown>, encoder: Record<string, unknown> | null = { name: 'lenet-mnist', embeddingDim: 6 }): Promise<MilModel> {
  const registry = builtinRegistry();
  const slots = {
    aggregator: await registry.resolve('aggregator', aggregator, { key: 'model.aggregator' }),
    classifier: await registry.resolve('classifier', { name: 'linear' }, { key: 'model.classifier' }),
    losses: { ce: { ...(await registry.resolve('loss', { name: 'cross-entropy' }, { key: 'model.losses.ce' })), weight: 1 } },
    ...(encoder ? { encoder: await registry.resolve('encoder', encoder, { key: 'model.encoder' }) } : {}),
  };
  return new MilModel(registry, slots, { inputDim: 784, numClasses: 2 }, new Rng(3), new MemoryLogger());
}

function digitBag(n: number, seed: number): Bag {
  const images = tf.randomNormal([n, 28, 28, 1], 0, 1, 'float32', seed);
  return { slideId: 'bag', features: tf.reshape(images, [n, 784]) as tf.Tensor2D, views: { images } };
}

describe('model.encoder', () => {
  it('encodes the images view into the aggregator\'s input: encoder.* weights, aggregator width = the encoder\'s', async () => {
    const m = await model({ name: 'abmil', projectDim: 0, attnDim: 4 });
    expect(m.partNames()).toEqual(['encoder', 'aggregator', 'classifier']);
    expect(m.capabilities.needsViews).toEqual(['images']);
    const keys = m.namedTrainable().map(([key]) => key);
    expect(keys.filter((k) => k.startsWith('encoder.'))).toEqual([
      'encoder.feature_extractor_part1.0.weight', 'encoder.feature_extractor_part1.0.bias', 'encoder.feature_extractor_part1.3.weight',
      'encoder.feature_extractor_part1.3.bias', 'encoder.feature_extractor_part2.0.weight', 'encoder.feature_extractor_part2.0.bias',
    ]);
    // ABMIL without projection attends over the encoder's 6-wide embeddings: V is [6 → 4], the classifier [6 → 2].
    expect(m.aggregator.embeddingDim).toBe(6);
    const bag = digitBag(5, 1);
    const out = m.forward(bag, { training: false, rng: new Rng(0) });
    expect(out.logits.shape).toEqual([1, 2]);
    expect(out.embedding.shape).toEqual([1, 6]);
    // The embedding is the attention-weighted sum of the encoded instances, so it equals encode → pool by hand.
    const encoded = m.encode(bag, { training: false, rng: new Rng(0) });
    const manual = tf.matMul(out.instanceScores as tf.Tensor2D, encoded.features);
    expect(Array.from(manual.dataSync()).map((v) => v.toFixed(5))).toEqual(Array.from(out.embedding.dataSync()).map((v) => v.toFixed(5)));
    tf.dispose([bag.features, ...Object.values(bag.views ?? {}), encoded.features, manual, out as unknown as tf.TensorContainer]);
    m.dispose();
  });

  it('trains end to end: the bag loss has a non-zero gradient on every encoder weight', async () => {
    const m = await model({ name: 'abmil', projectDim: 0, attnDim: 4 });
    const bag = digitBag(4, 2);
    const encoderVars = m.namedTrainable().filter(([key]) => key.startsWith('encoder.'));
    const { value, grads } = tf.variableGrads(() => m.losses(m.forward(bag, { training: true, rng: new Rng(1) }), 1, 2).total, encoderVars.map(([, v]) => v));
    for (const [key, variable] of encoderVars) {
      const g = grads[variable.name] as tf.Tensor;
      expect(g, key).toBeDefined();
      expect(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0] as number), `${key} moves`).toBeGreaterThan(0);
    }
    tf.dispose([value, bag.features, ...Object.values(bag.views ?? {}), ...Object.values(grads)]);
    m.dispose();
  });

  it('is absent with encoder none (the default), leaving the model as before', async () => {
    const withNone = await model({ name: 'mean-pool' }, { name: 'none' });
    const without = await model({ name: 'mean-pool' }, null);
    expect(withNone.partNames()).toEqual(['aggregator', 'classifier']);
    expect(withNone.namedTensors().map(([k]) => k)).toEqual(without.namedTensors().map(([k]) => k));
    expect(withNone.capabilities.needsViews).toEqual([]);
    withNone.dispose();
    without.dispose();
  });

  it('explains a missing images view instead of failing inside the convolution', async () => {
    const m = await model({ name: 'mean-pool' });
    const features = tf.zeros([3, 784]) as tf.Tensor2D;
    expect(() => m.forward({ slideId: 'flat', features }, { training: false, rng: new Rng(0) })).toThrow(/bag flat has no "images" view/);
    features.dispose();
    m.dispose();
  });
});

describe('stages with an encoder', () => {
  it('train the encoder by default, and the checks pass for mnist-bags (which provides images)', async () => {
    const registry = builtinRegistry();
    const resolved = await loadExperiment(MNIST_BAGS, [], { registry, cwd: REPO, env: {} });
    const stages = await resolveStages(resolved, registry);
    expect(stages[0]?.trains).toEqual(['encoder', 'aggregator', 'classifier']);
    expect(checkStages(resolved, stages, registry)).toEqual([]);
    const withoutEncoder = await loadExperiment(MNIST_BAGS, ['model/encoder=none'], { registry, cwd: REPO, env: {} });
    expect((await resolveStages(withoutEncoder, registry))[0]?.trains).toEqual(['aggregator', 'classifier']);
  });

  it('refuse a dataset without the encoder\'s view, naming both', async () => {
    const registry = builtinRegistry();
    const resolved = await loadExperiment(MNIST_BAGS, ['~data.dataset', 'data.dataset={name: synthetic-camelyon}'], { registry, cwd: REPO, env: {} });
    const problems = checkStages(resolved, await resolveStages(resolved, registry), registry);
    expect(problems.map((p) => p.code)).toEqual(['view-not-provided']);
    expect(problems[0]?.message).toContain('"images"');
    expect(problems[0]?.message).toContain('synthetic-camelyon');
  });

  it('refuse trains: [encoder] when no encoder is configured', async () => {
    const registry = builtinRegistry();
    const resolved = await loadExperiment(MNIST_BAGS, ['model/encoder=none', 'stages=[{name: main, trains: [encoder, aggregator]}]'], { registry, cwd: REPO, env: {} });
    const problems = checkStages(resolved, await resolveStages(resolved, registry), registry);
    expect(problems[0]).toMatchObject({ code: 'unknown-part' });
    expect(problems[0]?.message).toContain('encoder "none" has no weights');
  });
});

describe('instance-level pooling (mean-pool / max-pool level: instance)', () => {
  it('pools instance probabilities: mean, and for two classes max of the positive one with its complement', () => {
    // Instance logits whose softmax gives positive probabilities 0.2, 0.9, 0.5.
    const positive = [0.2, 0.9, 0.5];
    const logits = tf.tensor2d(positive.flatMap((p) => [0, Math.log(p / (1 - p))]), [3, 2]);
    const mean = tf.softmax(poolInstanceProbabilities(logits, 'mean')).dataSync();
    expect(mean[1]).toBeCloseTo((0.2 + 0.9 + 0.5) / 3, 6);
    const max = tf.softmax(poolInstanceProbabilities(logits, 'max')).dataSync();
    expect(max[1]).toBeCloseTo(0.9, 6);
    expect(max[0]).toBeCloseTo(0.1, 6);
    // Three classes: per-class maxima renormalised. Rows p = [.7 .2 .1], [.1 .3 .6] → max [.7 .3 .6] / 1.6.
    const three = tf.log(tf.tensor2d([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]));
    const pooled = tf.softmax(poolInstanceProbabilities(three as tf.Tensor2D, 'max')).dataSync();
    expect(Array.from(pooled).map((v) => v.toFixed(5))).toEqual([0.7 / 1.6, 0.3 / 1.6, 0.6 / 1.6].map((v) => v.toFixed(5)));
    tf.dispose([logits, three]);
  });

  it('keeps a gradient when an instance is saturated (float32 softmax = 1), where a clamp would stop training', () => {
    // A negative bag whose first instance is confidently positive: p_11 rounds to 1, yet the loss must push it down.
    const logits = tf.variable(tf.tensor2d([[0, 40], [0, -3]]));
    const { value, grads } = tf.variableGrads(() => {
      const bag = poolInstanceProbabilities(logits, 'max'); // [1, 2]
      return tf.neg(tf.slice(tf.logSoftmax(bag), [0, 0], [1, 1]).reshape([])) as tf.Scalar; // CE with label 0
    }, [logits]);
    expect(value.dataSync()[0]).toBeCloseTo(40, 3); // −log(1 − θ) = −log p_10 = log(1 + e^40) ≈ 40
    const g = Array.from((grads[logits.name] as tf.Tensor).dataSync());
    expect(g[1]).toBeGreaterThan(0.99); // d/dl_11 of log(1 + e^(l_11 − l_10)) = σ(40) ≈ 1
    expect(g[3]).toBe(0); // the other instance is not the arg-max
    tf.dispose([logits, value, ...Object.values(grads)]);
  });

  it('owns its classifier only at the instance level: one instance classifier, no bag classifier part', async () => {
    const registry = builtinRegistry();
    const instance = await registry.resolve('aggregator', { name: 'max-pool', level: 'instance' }, { key: 'model.aggregator' });
    const embedding = await registry.resolve('aggregator', { name: 'max-pool' }, { key: 'model.aggregator' });
    expect(registry.capabilities(instance, DEFAULT_AGGREGATOR_CAPABILITIES).ownsClassifier).toBe(true);
    expect(registry.capabilities(embedding, DEFAULT_AGGREGATOR_CAPABILITIES).ownsClassifier).toBe(false);
    const m = await model({ name: 'max-pool', level: 'instance' });
    expect(m.partNames()).toEqual(['encoder', 'aggregator']);
    expect(m.namedTrainable().map(([k]) => k).filter((k) => k.startsWith('aggregator.'))).toEqual(['aggregator.classifier.fc.weight', 'aggregator.classifier.fc.bias']);
    // The bag's positive probability is the largest instance's: classify each encoded row by hand and compare.
    const bag = digitBag(4, 5);
    const io = { training: false, rng: new Rng(0) };
    const out = m.forward(bag, io);
    const encoded = m.encode(bag, io);
    const perInstance = tf.softmax((m.aggregator as unknown as { instanceClassifier: { forward: (x: tf.Tensor2D, i: typeof io) => tf.Tensor2D } }).instanceClassifier.forward(encoded.features, io));
    const expected = Math.max(...Array.from(tf.slice(perInstance, [0, 1], [-1, 1]).dataSync()));
    expect(tf.softmax(out.logits).dataSync()[1]).toBeCloseTo(expected, 5);
    tf.dispose([bag.features, ...Object.values(bag.views ?? {}), encoded.features, perInstance, out as unknown as tf.TensorContainer]);
    m.dispose();
  });
});
