import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MilModel } from '../../../src/core/engine/model.js';
import { trainFold, type TrainFoldOptions } from '../../../src/core/engine/trainer.js';
import { evaluate } from '../../../src/core/engine/evaluate.js';
import { TrainSection } from '../../../src/core/engine/schema.js';
import { silentLogger } from '../../../src/core/logger.js';
import { Rng } from '../../../src/core/runtime/random.js';
import type { Metric, ResolvedPlugin } from '../../../src/registry/index.js';
import { builtinRegistry } from '../../helpers/registry.js';
import { toySource } from './toy-data.js';

const registry = builtinRegistry();
const source = toySource();
const train = source.slides.slice(0, 16);
const val = source.slides.slice(16);

async function buildModel(aggregator: Record<string, unknown>, seed = 0): Promise<MilModel> {
  const slots = {
    aggregator: await registry.resolve('aggregator', aggregator, { key: 'model.aggregator' }),
    classifier: await registry.resolve('classifier', 'linear', { key: 'model.classifier' }),
    losses: { ce: { ...(await registry.resolve('loss', 'cross-entropy', { key: 'model.losses.ce' })), weight: 1 } },
  };
  return new MilModel(registry, slots, { inputDim: source.featureDim, numClasses: 2 }, new Rng(seed).fork('init'), silentLogger);
}

async function metrics(): Promise<Array<{ name: string; metric: Metric }>> {
  const auc = (await registry.resolve('metric', 'auc', { key: 'eval.metrics' })) as ResolvedPlugin<'metric'>;
  return [{ name: 'auc', metric: registry.create(auc, { numClasses: 2 }) }];
}

async function options(model: MilModel, section: Record<string, unknown>, dir: string, extra: Partial<TrainFoldOptions> = {}): Promise<TrainFoldOptions> {
  return {
    model, source, train, val, numClasses: 2, section: TrainSection.parse(section), metrics: await metrics(),
    rng: new Rng(3).fork('fold-0'), logger: silentLogger, checkpointDir: dir, configHash: 'h', fold: 0, resume: false, ...extra,
  };
}

function weights(model: MilModel): number[][] {
  return model.namedTensors().map(([, e]) => Array.from(e.variable.dataSync()));
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('engine/trainer', () => {
  it('learns the toy task: training loss falls and validation AUC is high', async () => {
    const model = await buildModel({ name: 'max-pool', projectDim: 8 });
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-train-'));
    const result = await trainFold(await options(model, { epochs: 12, optimizer: { lr: 0.01 }, earlyStopping: { monitor: 'val/auc', mode: 'max', patience: 12 } }, dir));
    const first = result.history[0]?.metrics['train/loss'] as number;
    const last = result.history.at(-1)?.metrics['train/loss'] as number;
    expect(last).toBeLessThan(first * 0.7);
    // With one loss slot of weight 1 the logged term equals the total (float32 device sum vs float64 host sum).
    for (const h of result.history) expect(h.metrics['train/loss_ce']).toBeCloseTo(h.metrics['train/loss'] as number, 5);
    const evaluation = await evaluate({ model, source, slides: val, numClasses: 2, metrics: await metrics(), rng: new Rng(0) });
    expect(evaluation.metrics.auc?.value).toBeGreaterThan(0.9);
    model.dispose();
  });

  it('restores the best epoch and reports it', async () => {
    const model = await buildModel({ name: 'mean-pool', projectDim: 4 });
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-train-'));
    const result = await trainFold(await options(model, { epochs: 6, optimizer: { lr: 0.02 }, earlyStopping: { monitor: 'val/loss', mode: 'min', patience: 10 } }, dir));
    const losses = result.history.map((h) => h.metrics['val/loss'] as number);
    expect(result.bestEpoch).toBe(losses.indexOf(Math.min(...losses)));
    const evaluation = await evaluate({ model, source, slides: val, numClasses: 2, metrics: await metrics(), rng: new Rng(0) });
    expect(evaluation.loss).toBeCloseTo(Math.min(...losses), 5);
    model.dispose();
  });

  it('tests the last epoch\'s weights with select: last, still logging validation every epoch', async () => {
    const model = await buildModel({ name: 'mean-pool', projectDim: 4 });
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-train-'));
    // lr 0.3 overshoots after a few epochs, so the best epoch is not the last one (asserted below).
    const result = await trainFold(await options(model, { epochs: 6, optimizer: { lr: 0.3 }, earlyStopping: { monitor: 'val/loss', patience: 10, select: 'last' } }, dir));
    const losses = result.history.map((h) => h.metrics['val/loss'] as number);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(result.bestEpoch).toBe(5);
    const evaluation = await evaluate({ model, source, slides: val, numClasses: 2, metrics: await metrics(), rng: new Rng(0) });
    expect(evaluation.loss).toBeCloseTo(losses[5] as number, 5);
    // The point of the option: here the last epoch is not the best one, so `best` would have tested other weights.
    expect(Math.min(...losses)).toBeLessThan(losses[5] as number);
    model.dispose();
  });

  it('resumes a killed run to the same weights as an uninterrupted one', async () => {
    const section = { epochs: 5, optimizer: { lr: 0.01 }, accumulate: 2, gradClip: 1, schedule: 'cosine', earlyStopping: { enabled: false } };
    const full = await buildModel({ name: 'mean-pool', projectDim: 4, dropout: 0.2 });
    await trainFold(await options(full, section, await mkdtemp(path.join(tmpdir(), 'milkit-full-'))));

    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-killed-'));
    const killed = await buildModel({ name: 'mean-pool', projectDim: 4, dropout: 0.2 });
    const kill = { onEpochEnd: (r: { epoch: number }) => { if (r.epoch === 2) throw new Error('killed'); } };
    await expect(trainFold(await options(killed, section, dir, { events: kill }))).rejects.toThrow('killed');
    killed.dispose();
    // A new process: fresh model from the same seed, then --resume.
    const resumed = await buildModel({ name: 'mean-pool', projectDim: 4, dropout: 0.2 });
    const result = await trainFold(await options(resumed, section, dir, { resume: true }));
    expect(result.resumedFromEpoch).toBe(2);
    expect(result.epochsRun).toBe(5);
    expect(weights(resumed)).toEqual(weights(full));
    full.dispose();
    resumed.dispose();
  });

  it('keeps the number of live tensors flat across epochs', async () => {
    const model = await buildModel({ name: 'mean-pool', projectDim: 4 });
    const counts: number[] = [];
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-mem-'));
    await trainFold(await options(model, { epochs: 4, gradClip: 0.5, accumulate: 3, earlyStopping: { enabled: false } }, dir, {
      events: { onEpochEnd: () => { counts.push(tf.memory().numTensors); } },
    }));
    expect(new Set(counts).size).toBe(1);
    const before = tf.memory().numTensors;
    model.dispose();
    expect(tf.memory().numTensors).toBe(before - model.namedTensors().length);
  });

  it('stops with a NumericsError naming epoch, step and slide on a non-finite loss', async () => {
    const model = await buildModel({ name: 'mean-pool' });
    const bad = { ...source, load: async (id: string) => { const b = await source.load(id); return { ...b, features: b.features.map(() => Number.NaN) }; } };
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-nan-'));
    await expect(trainFold({ ...(await options(model, { epochs: 1 }, dir)), source: bad })).rejects.toThrow(/epoch 1, step 1, slide s\d\d: loss is NaN/);
    model.dispose();
  });
});

describe('engine/trainer gradient clip groups', () => {
  it('clips each declared parameter group to its own norm before the optimizer step', async () => {
    const { definePlugin, Registry, Module } = await import('../../../src/registry/index.js');
    const { Linear } = await import('../../../src/core/nn/layers.js');
    const { z } = await import('zod');
    class TwoPart extends Module {
      readonly embeddingDim = 3;
      readonly gradientClipGroups = [{ prefixes: ['a.'], maxNorm: 1e-3 }];
      private readonly a: InstanceType<typeof Linear>;
      private readonly b: InstanceType<typeof Linear>;
      constructor(ctx: { inputDim: number; rng: Rng }) {
        super();
        this.a = this.addModule('a', new Linear(ctx.inputDim, 3, ctx.rng));
        this.b = this.addModule('b', new Linear(3, 3, ctx.rng));
      }
      forward(bag: { features: tf.Tensor2D }) {
        return tf.tidy(() => ({ embedding: tf.mean(this.b.forward(tf.relu(this.a.forward(bag.features))), 0, true) as tf.Tensor2D }));
      }
    }
    const registry = new Registry();
    for (const [id, def] of Object.entries({ agg: definePlugin({ kind: 'aggregator', name: 'two-part', summary: 't', options: z.strictObject({}), capabilities: {}, create: (_o, ctx) => new TwoPart(ctx) }) })) {
      registry.register(def as never, id);
    }
    const base = builtinRegistry();
    registry.register((await base.get('classifier', 'linear')) as never, 'b');
    registry.register((await base.get('loss', 'cross-entropy')) as never, 'b');
    const slots = {
      aggregator: await registry.resolve('aggregator', 'two-part', { key: 'model.aggregator' }),
      classifier: await registry.resolve('classifier', 'linear', { key: 'model.classifier' }),
      losses: { ce: { ...(await registry.resolve('loss', 'cross-entropy', { key: 'model.losses.ce' })), weight: 1 } },
    };
    const model = new MilModel(registry, slots, { inputDim: source.featureDim, numClasses: 2 }, new Rng(0), silentLogger);
    const before = new Map(model.namedTrainable().map(([n, v]) => [n, Array.from(v.dataSync())]));
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-clip-'));
    await trainFold({
      ...(await options(model, { epochs: 1, optimizer: { name: 'sgd', lr: 1, momentum: 0, weightDecay: 0 }, accumulate: 16, earlyStopping: { enabled: false } }, dir)),
      val: [],
    });
    const change = (prefix: string): number => Math.sqrt(model.namedTrainable()
      .filter(([n]) => n.startsWith(prefix))
      .reduce((sum, [n, v]) => sum + Array.from(v.dataSync()).reduce((s, x, i) => s + (x - (before.get(n)?.[i] ?? 0)) ** 2, 0), 0));
    // One SGD step of lr 1: the clipped group moves by exactly its clipped norm, the other group freely.
    expect(change('aggregator.a.')).toBeCloseTo(1e-3, 6);
    expect(change('aggregator.b.')).toBeGreaterThan(1e-2);
    model.dispose();
  });
});
