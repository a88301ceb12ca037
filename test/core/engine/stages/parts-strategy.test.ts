// A strategy acting on an aggregator's projected instance sequence through the public contract only (the
// aggregator's `parts` capability and the Strategy hooks), with no change to core: MHIM-MIL-style masking of
// projected rows plus an inserted learned token (MHIM-MIL v2 inserts tokens between projection and pooling).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { MilModel } from '../../../../src/core/engine/model.js';
import { trainFold } from '../../../../src/core/engine/trainer.js';
import { TrainSection } from '../../../../src/core/engine/schema.js';
import { silentLogger } from '../../../../src/core/logger.js';
import { Rng } from '../../../../src/core/runtime/random.js';
import { Module, type ModelOutput, type Strategy, type StrategyStep } from '../../../../src/registry/index.js';
import { builtinRegistry } from '../../../helpers/registry.js';
import { toySource } from '../toy-data.js';

const registry = builtinRegistry();

/** A learned token inserted after the projection (held by the strategy, trained with the model). */
class Token extends Module {
  readonly value: tf.Variable;

  constructor(width: number) {
    super();
    this.value = this.addParameter('value', tf.fill([1, width], 0.5));
  }
}

/** Masks every other projected row (keeps rows 0, 2, 4, ...), appends the token, pools, classifies. */
class MaskAndInsert implements Strategy {
  readonly modules: { token: Token };
  maskedCounts: number[] = [];

  constructor(width: number) {
    this.modules = { token: new Token(width) };
  }

  forward(step: StrategyStep): ModelOutput {
    const { aggregator } = step.model;
    const parts = aggregator.parts;
    if (!parts) throw new Error('needs an aggregator with parts');
    const h = parts.project(step.bag, step.io); // [N, E]
    const keep = Array.from({ length: h.shape[0] }, (_, i) => i).filter((i) => i % 2 === 0);
    const kept = tf.gather(h, keep) as tf.Tensor2D; // [M, E]
    const withToken = tf.concat([kept, this.modules.token.value as tf.Tensor2D], 0) as tf.Tensor2D; // [M + 1, E]
    this.maskedCounts.push(h.shape[0] - keep.length);
    return step.model.classify(parts.pool(withToken, step.bag, step.io), step.io);
  }

  stepMetrics(): Record<string, number> {
    return { masked: this.maskedCounts.at(-1) ?? 0 };
  }
}

async function abmilModel(source: ReturnType<typeof toySource>): Promise<MilModel> {
  const slots = {
    aggregator: await registry.resolve('aggregator', { name: 'abmil', projectDim: 8, attnDim: 4, dropout: 0 }, { key: 'model.aggregator' }),
    classifier: await registry.resolve('classifier', 'linear', { key: 'model.classifier' }),
    losses: { ce: { ...(await registry.resolve('loss', 'cross-entropy', { key: 'model.losses.ce' })), weight: 1 } },
  };
  return new MilModel(registry, slots, { inputDim: source.featureDim, numClasses: 2 }, new Rng(4).fork('init'), silentLogger);
}

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('aggregator parts + a strategy on the projected sequence', () => {
  it('abmil: pool(project(bag)) is its forward', async () => {
    const source = toySource(4, 6, 2);
    const model = await abmilModel(source);
    const data = await source.load(source.slides[0]?.slideId as string);
    const io = { training: false, rng: new Rng(0) };
    const [whole, split] = tf.tidy(() => {
      const bag = { slideId: data.slideId, features: tf.tensor2d(data.features, [data.n, data.d]) };
      const parts = model.aggregator.parts as NonNullable<typeof model.aggregator.parts>;
      return [Array.from(model.aggregator.forward(bag, io).embedding.dataSync()), Array.from(parts.pool(parts.project(bag, io), bag, io).embedding.dataSync())];
    });
    expect(split).toEqual(whole);
    model.dispose();
  });

  it('masks and inserts on the projected rows; the inserted token learns through the public hooks', async () => {
    const source = toySource(8, 6, 3);
    const model = await abmilModel(source);
    const strategy = new MaskAndInsert(8);
    const data = await source.load(source.slides[0]?.slideId as string);

    // The strategy's forward is exactly pool(concat(h[even rows], token)) → classifier, computed here by hand.
    const bag = { slideId: data.slideId, features: tf.tensor2d(data.features, [data.n, data.d]), views: {} };
    const io = { training: false, rng: new Rng(0) };
    const step = { model, bag, label: 0, numClasses: 2, io, isTraining: () => false, epoch: 0, stepInEpoch: 0, globalStep: 0, stepsPerEpoch: 1, totalEpochs: 1 };
    const [viaStrategy, byHand] = tf.tidy(() => {
      const out = strategy.forward(step);
      const parts = model.aggregator.parts as NonNullable<typeof model.aggregator.parts>;
      const h = parts.project(bag, io);
      const rows = tf.concat([tf.gather(h, Array.from({ length: Math.ceil(data.n / 2) }, (_, i) => 2 * i)), strategy.modules.token.value], 0) as tf.Tensor2D;
      const attention = parts.pool(rows, bag, io).instanceScores as tf.Tensor2D;
      expect(attention.shape).toEqual([1, Math.ceil(data.n / 2) + 1]);
      const manual = model.classify(parts.pool(rows, bag, io), io);
      return [Array.from(out.logits.dataSync()), Array.from(manual.logits.dataSync())];
    });
    expect(viaStrategy).toEqual(byHand);
    expect(strategy.maskedCounts[0]).toBe(Math.floor(data.n / 2));
    bag.features.dispose();

    // Trained by the engine's loop with the token among the trained variables (as a stage's `trains` would give it).
    const before = Array.from(strategy.modules.token.value.dataSync());
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-parts-'));
    dirs.push(dir);
    const trainable = [...model.namedTrainable(), ...strategy.modules.token.namedTensors().map(([name, entry]) => [`strategy.token.${name}`, entry.variable] as const)];
    const result = await trainFold({
      model, source, train: source.slides.slice(0, 6), val: source.slides.slice(6), numClasses: 2,
      section: TrainSection.parse({ epochs: 2, optimizer: { name: 'adam', lr: 0.05 } }), metrics: [], rng: new Rng(1), logger: silentLogger,
      checkpointDir: dir, configHash: 'parts', fold: 0, resume: false, strategy, trainable,
      tensors: [...model.namedTensors().map(([name, entry]) => [name, entry.variable] as const), ...trainable.slice(-1)],
    });
    const after = Array.from(strategy.modules.token.value.dataSync());
    expect(after).not.toEqual(before);
    expect(result.history[0]?.metrics['train/masked']).toBeGreaterThan(0);
    strategy.modules.token.dispose();
    model.dispose();
  });
});
