// train.bagsPerStep: one bag per step reproduces the recorded per-bag training bit for bit; four bags without a
// batch-level term make one step whose loss and gradient are the means of the four per-bag ones; methods whose
// update is per bag refuse it before compute.
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadExperiment } from '../../../src/core/config/load.js';
import { MilModel } from '../../../src/core/engine/model.js';
import { checkStages, resolveStages } from '../../../src/core/engine/stages.js';
import { trainFold } from '../../../src/core/engine/trainer.js';
import { TrainSection } from '../../../src/core/engine/schema.js';
import { silentLogger } from '../../../src/core/logger.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { builtinRegistry } from '../../helpers/registry.js';
import { REPO } from '../../e2e/helpers.js';
import { toySource } from './toy-data.js';
import { PER_BAG_SECTION, perBagRun, type PerBagRun } from './per-bag-run.js';

const registry = builtinRegistry();
const source = toySource();

async function abmil(dropout: number): Promise<MilModel> {
  return new MilModel(registry, {
    aggregator: await registry.resolve('aggregator', { name: 'abmil', projectDim: 8, attnDim: 4, dropout }, { key: 'model.aggregator' }),
    classifier: await registry.resolve('classifier', 'linear', { key: 'model.classifier' }),
    losses: { ce: { ...(await registry.resolve('loss', 'cross-entropy', { key: 'model.losses.ce' })), weight: 1 } },
  }, { inputDim: source.featureDim, numClasses: 2 }, new Rng(0).fork('init'), silentLogger);
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('train.bagsPerStep', () => {
  it('bagsPerStep 1 reproduces the per-bag training recorded before the option existed, bit for bit', async () => {
    // Recorded by running per-bag-run.ts against the trainer of the commit before bagsPerStep (see its header).
    const recorded = JSON.parse(readFileSync(path.join(REPO, 'test/fixtures/trainer/per-bag-run.json'), 'utf8')) as PerBagRun;
    const run = await perBagRun(() => abmil(0.25), (model, dir) => trainFold({
      model, source, train: source.slides.slice(0, 16), val: source.slides.slice(16), numClasses: 2,
      section: TrainSection.parse({ ...PER_BAG_SECTION, bagsPerStep: 1 }), metrics: [],
      rng: new Rng(3).fork('fold-0'), logger: silentLogger, checkpointDir: dir, configHash: 'h', fold: 0, resume: false,
    }));
    // Bit for bit: the same losses and weights, not merely close (float64 views of float32 values compare exactly).
    expect(run.trainLoss).toEqual(recorded.trainLoss);
    expect(run.valLoss).toEqual(recorded.valLoss);
    expect(Object.keys(run.weights)).toEqual(Object.keys(recorded.weights));
    for (const [name, values] of Object.entries(recorded.weights)) expect(run.weights[name], name).toEqual(values);
  });

  it('bagsPerStep 4 without batch terms: one step with the mean of the four per-bag losses and gradients', async () => {
    const train = source.slides.slice(0, 4);
    const model = await abmil(0);
    const before = model.namedTrainable().map(([name, v]) => [name, Array.from(v.dataSync())] as const);
    // The four per-bag losses and gradients at the initial weights, by hand.
    const variables = model.namedTrainable().map(([, v]) => v);
    const perBag = await Promise.all(train.map(async (slide) => {
      const data = await source.load(slide.slideId);
      const features = tf.tensor2d(data.features, [data.n, data.d]);
      const { value, grads } = tf.variableGrads(() => model.losses(model.forward({ slideId: slide.slideId, features, label: slide.label, views: {} }, { training: true, rng: new Rng(0) }), slide.label, 2).total, variables);
      features.dispose();
      const out = { loss: value.dataSync()[0] as number, grads: variables.map((v) => Array.from((grads[v.name] as tf.Tensor).dataSync())) };
      value.dispose();
      tf.dispose(Object.values(grads));
      return out;
    }));
    const meanLoss = perBag.reduce((a, b) => a + b.loss, 0) / 4;
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-bps-'));
    // Plain SGD with lr 1, no momentum or decay: the weight change is minus the step's gradient.
    const result = await trainFold({
      model, source, train, val: [], numClasses: 2, metrics: [],
      section: TrainSection.parse({ epochs: 1, bagsPerStep: 4, optimizer: { name: 'sgd', lr: 1, momentum: 0, weightDecay: 0 } }),
      rng: new Rng(3).fork('fold-0'), logger: silentLogger, checkpointDir: dir, configHash: 'h', fold: 0, resume: false,
    });
    expect(result.history[0]?.metrics['train/loss']).toBeCloseTo(meanLoss, 6);
    model.namedTrainable().forEach(([name, v], i) => {
      const after = Array.from(v.dataSync());
      const start = (before[i] as readonly [string, number[]])[1];
      after.forEach((w, k) => {
        const meanGrad = perBag.reduce((a, b) => a + ((b.grads[i] as number[])[k] as number), 0) / 4;
        expect(start[k]! - w, `${name}[${k}]`).toBeCloseTo(meanGrad, 5);
      });
    });
    // And the step is not the sum of the four gradients (a guard that the 1/4 is really applied).
    const anyGrad = perBag.reduce((a, b) => a + Math.abs((b.grads[0] as number[])[0] as number), 0);
    expect(anyGrad).toBeGreaterThan(1e-4);
    model.dispose();
  });

  it('keeps live tensors flat across epochs with several bags per step', async () => {
    const model = await abmil(0.25);
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-bps-'));
    const counts: number[] = [];
    await trainFold({
      model, source, train: source.slides.slice(0, 10), val: source.slides.slice(16, 20), numClasses: 2, metrics: [],
      section: TrainSection.parse({ epochs: 4, bagsPerStep: 4, earlyStopping: { patience: 10 } }),
      rng: new Rng(3).fork('fold-0'), logger: silentLogger, checkpointDir: dir, configHash: 'h', fold: 0, resume: false,
      events: { onEpochEnd: () => void counts.push(tf.memory().numTensors) },
    });
    expect(counts).toHaveLength(4);
    expect(new Set(counts.slice(1)).size).toBe(1);
    model.dispose();
  });

  it('refuses bagsPerStep > 1 before compute for an aggregator that updates per bag (DTFD-MIL)', async () => {
    const resolved = await loadExperiment(path.join(REPO, 'experiments/quickstart.yaml'), ['model/aggregator=dtfd-mil', 'train.bagsPerStep=4'], { registry, cwd: REPO, env: {} });
    const errors = checkStages(resolved, await resolveStages(resolved, registry), registry);
    expect(errors.map((e) => [e.code, e.where?.key])).toEqual([['bags-per-step-unsupported', 'train.bagsPerStep']]);
    expect(errors[0]?.message).toContain('dtfd-mil');
    const fine = await loadExperiment(path.join(REPO, 'experiments/quickstart.yaml'), ['model/aggregator=dtfd-mil', 'train.bagsPerStep=1'], { registry, cwd: REPO, env: {} });
    expect(checkStages(fine, await resolveStages(fine, registry), registry)).toEqual([]);
  });
});
