// HMIL against the independent PyTorch reference (test/reference/hmil.py → test/reference/fixtures/hmil.json):
// forward of four bags, every loss term, the step total (mean of per-bag terms + batch SupCon) and the gradient of
// every parameter within 1e-4, both computed directly and through one trainer step with bagsPerStep 4; and the
// α and τ schedules at hand-computed epochs.
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MilModel } from '../../../src/core/engine/model.js';
import { trainFold } from '../../../src/core/engine/trainer.js';
import { TrainSection } from '../../../src/core/engine/schema.js';
import { silentLogger } from '../../../src/core/logger.js';
import { torchEntries } from '../../../src/core/nn/state-dict.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { fillPattern } from '../../../src/testing/contracts/golden.js';
import type { BagData, BagSource, LabelHierarchy, ModelOutput } from '../../../src/registry/index.js';
import { alphaAt, temperatureAt } from '../../../plugins/losses/_shared/hmil-schedules.js';
import { builtinRegistry } from '../../helpers/registry.js';
import { REPO } from '../../e2e/helpers.js';

interface Scenario {
  readonly epoch: number;
  readonly totalEpochs: number;
  readonly supconWeight: 'one-minus-alpha' | 'constant';
  readonly alpha: number;
  readonly temperature: number;
  readonly logits: number[][][];
  readonly coarseLogits: number[][][];
  readonly terms: Record<'ce' | 'hier_coarse' | 'hier_reg' | 'supcon' | 'alignment', number>;
  readonly total: number;
  readonly grads: Record<string, number[] | number[][]>;
}
interface Fixture {
  readonly hierarchy: LabelHierarchy;
  readonly dims: Record<string, number>;
  readonly inputDim: number;
  readonly labels: number[];
  readonly bags: number[][][];
  readonly scenarios: Record<'schedule' | 'first-step', Scenario>;
}

const fixture = JSON.parse(readFileSync(path.join(REPO, 'test/reference/fixtures/hmil.json'), 'utf8')) as Fixture;
const registry = builtinRegistry();
const TOL = 1e-4;

async function buildModel(scenario: Scenario): Promise<MilModel> {
  const loss = async (name: string, options: Record<string, unknown>, weight: number) => ({ ...(await registry.resolve('loss', { name, ...options }, { key: `model.losses.${name}` })), weight });
  const model = new MilModel(registry, {
    aggregator: await registry.resolve('aggregator', { name: 'hmil', ...fixture.dims }, { key: 'model.aggregator' }),
    classifier: await registry.resolve('classifier', 'linear', { key: 'model.classifier' }),
    losses: {
      ce: await loss('cross-entropy', {}, 1),
      hier: await loss('hmil-hierarchy', {}, 1),
      supcon: await loss('supcon', { epochWeight: scenario.supconWeight }, 1),
      // Weight 0: logged as a term, not trained on (the original computes it without adding it).
      alignment: await loss('hmil-attention-alignment', {}, 0),
    },
  }, { inputDim: fixture.inputDim, numClasses: fixture.labels.length, hierarchy: fixture.hierarchy }, new Rng(0), silentLogger);
  fillPattern(torchEntries(model));
  return model;
}

/** The reference's gradient of a parameter, in milkit's layout (Linear weights are stored transposed). */
function expectedGrad(scenario: Scenario, torchKey: string, torchShape: readonly number[]): number[] {
  const g = scenario.grads[torchKey];
  if (g === undefined) throw new Error(`no reference gradient for ${torchKey}`);
  if (torchShape.length === 1) return g as number[];
  const rows = g as number[][];
  return Array.from({ length: (torchShape[1] as number) * (torchShape[0] as number) }, (_, i) => (rows[i % (torchShape[0] as number)] as number[])[Math.floor(i / (torchShape[0] as number))] as number);
}

function bagSource(): BagSource {
  const slides = fixture.labels.map((label, i) => ({ slideId: `bag-${i}`, caseId: `case-${i}`, label, labelName: `f${label}`, meta: {} }));
  const bags = new Map<string, BagData>(fixture.bags.map((rows, i) => [`bag-${i}`, { slideId: `bag-${i}`, n: rows.length, d: fixture.inputDim, features: Float32Array.from(rows.flat()) }]));
  return { slides, featureDim: fixture.inputDim, classNames: ['f0', 'f1', 'f2', 'f3'], hierarchy: fixture.hierarchy, load: async (id) => bags.get(id) as BagData };
}

function expectClose(actual: ArrayLike<number>, expected: readonly number[], what: string): void {
  expect(actual.length, what).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i += 1) worst = Math.max(worst, Math.abs((actual[i] as number) - (expected[i] as number)));
  expect(worst, `${what}: max |Δ|`).toBeLessThan(TOL);
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('hmil against test/reference/hmil.py', () => {
  it('forward, every term, the step total and every parameter gradient at epoch 30 of 100 (four bags)', async () => {
    const scenario = fixture.scenarios.schedule;
    const model = await buildModel(scenario);
    model.setTraining(true);
    const schedule = { epoch: scenario.epoch, totalEpochs: scenario.totalEpochs };
    const bags = fixture.bags.map((rows) => tf.tensor2d(rows));
    const logged: Record<string, number> = {};
    const variables = model.namedTrainable();
    const { value, grads } = tf.variableGrads(() => {
      const outputs: ModelOutput[] = [];
      const perBag = bags.map((features, b) => {
        const out = model.forward({ slideId: `bag-${b}`, features }, { training: true, rng: new Rng(0) });
        expectClose(out.logits.dataSync(), scenario.logits[b]?.flat() ?? [], `bag ${b} fine logits`);
        expectClose((out.extras?.coarseLogits as tf.Tensor).dataSync(), scenario.coarseLogits[b]?.flat() ?? [], `bag ${b} coarse logits`);
        outputs.push(out);
        const { total, terms } = model.losses(out, fixture.labels[b] as number, 4, schedule);
        for (const [k, t] of Object.entries(terms)) logged[k] = (logged[k] ?? 0) + (t.dataSync()[0] as number) / bags.length;
        return total;
      });
      const batch = model.batchLosses(outputs, fixture.labels, 4, schedule);
      for (const [k, t] of Object.entries(batch.terms)) logged[k] = t.dataSync()[0] as number;
      return tf.add(tf.div(tf.addN(perBag), perBag.length), batch.total) as tf.Scalar;
    }, variables.map(([, v]) => v));
    expect(logged.ce).toBeCloseTo(scenario.terms.ce, 4);
    expect(logged.hier_coarse).toBeCloseTo(scenario.terms.hier_coarse, 4);
    expect(logged.hier_reg).toBeCloseTo(scenario.terms.hier_reg, 4);
    expect(logged.supcon).toBeCloseTo(scenario.terms.supcon, 4);
    expect(logged.alignment).toBeCloseTo(scenario.terms.alignment, 4);
    expect(scenario.terms.supcon).toBeGreaterThan(1e-3); // the term is really in play at this epoch
    expect(value.dataSync()[0]).toBeCloseTo(scenario.total, 4);
    const entries = torchEntries(model);
    for (const { milkitKey, torchKey, torchShape, entry } of entries) {
      expectClose((grads[entry.variable.name] as tf.Tensor).dataSync(), expectedGrad(scenario, torchKey, torchShape), `grad ${milkitKey}`);
    }
    tf.dispose([value, ...Object.values(grads), ...bags]);
    model.dispose();
  });

  it('one trainer step with bagsPerStep 4 moves every weight by the reference gradient (SGD, lr 1)', async () => {
    const scenario = fixture.scenarios['first-step'];
    const model = await buildModel(scenario);
    const before = new Map(torchEntries(model).map(({ torchKey, entry }) => [torchKey, Array.from(entry.variable.dataSync())]));
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-hmil-'));
    const source = bagSource();
    const result = await trainFold({
      model, source, train: source.slides, val: [], numClasses: 4, metrics: [],
      section: TrainSection.parse({ epochs: scenario.totalEpochs, bagsPerStep: 4, optimizer: { name: 'sgd', lr: 1, momentum: 0, weightDecay: 0 } }),
      rng: new Rng(1).fork('fold-0'), logger: silentLogger, checkpointDir: dir, configHash: 'h', fold: 0, resume: false,
    });
    const metrics = result.history[0]?.metrics ?? {};
    expect(metrics['train/loss']).toBeCloseTo(scenario.total, 4);
    expect(metrics['train/loss_supcon']).toBeCloseTo(scenario.terms.supcon, 4);
    expect(metrics['train/loss_hier_reg']).toBeCloseTo(scenario.terms.hier_reg, 4);
    for (const { torchKey, torchShape, entry } of torchEntries(model)) {
      const start = before.get(torchKey) as number[];
      const moved = Array.from(entry.variable.dataSync()).map((w, i) => (start[i] as number) - w);
      expectClose(moved, expectedGrad(scenario, torchKey, torchShape), `step of ${torchKey}`);
    }
    model.dispose();
  });

  it('α and τ equal hand-computed values at chosen epochs', () => {
    // α = 1 − (e/E)²: 1 at e = 0, 0.75 at E/2, 1 − 0.99² at the last epoch; linear 1 − e/E.
    expect(alphaAt('quadratic', 0, 200)).toBe(1);
    expect(alphaAt('quadratic', 100, 200)).toBeCloseTo(0.75, 12);
    expect(alphaAt('quadratic', 199, 200)).toBeCloseTo(0.009975, 12);
    expect(alphaAt('quadratic', 30, 100)).toBeCloseTo(0.91, 12);
    expect(alphaAt('linear', 50, 200)).toBeCloseTo(0.75, 12);
    expect(alphaAt('constant', 150, 200)).toBe(1);
    // τ = 0.1 + 0.9 (1 + cos(2π e/E)) / 2: 1 at 0, 0.55 at E/4 (cos = 0), 0.1 at E/2, 0.55 at 3E/4.
    const tau = (e: number, E: number): number => temperatureAt({ schedule: 'cosine', max: 1, min: 0.1 }, e, E);
    expect(tau(0, 200)).toBeCloseTo(1, 12);
    expect(tau(50, 200)).toBeCloseTo(0.55, 12);
    expect(tau(100, 200)).toBeCloseTo(0.1, 12);
    expect(tau(150, 200)).toBeCloseTo(0.55, 12);
    // e = 30 of 100: cos(0.6π) = −0.309017 → 0.1 + 0.45 · 0.690983 = 0.4109423.
    expect(tau(30, 100)).toBeCloseTo(0.4109423, 6);
    expect(fixture.scenarios.schedule.temperature).toBeCloseTo(0.4109423, 6);
    expect(temperatureAt({ schedule: 'constant', max: 0.5, min: 0.1 }, 100, 200)).toBe(0.5);
  });
});

describe('hmil training memory', () => {
  it('keeps live tensors flat across epochs with SupCon spanning the bags of each step', async () => {
    const scenario = fixture.scenarios.schedule;
    const model = await buildModel(scenario);
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-hmil-mem-'));
    const source = bagSource();
    const counts: number[] = [];
    const result = await trainFold({
      model, source, train: source.slides, val: source.slides.slice(0, 2), numClasses: 4, metrics: [],
      section: TrainSection.parse({ epochs: 4, bagsPerStep: 2, earlyStopping: { patience: 10 } }),
      rng: new Rng(1).fork('fold-0'), logger: silentLogger, checkpointDir: dir, configHash: 'h', fold: 0, resume: false,
      events: { onEpochEnd: () => void counts.push(tf.memory().numTensors) },
    });
    expect(result.history.every((h) => Number.isFinite(h.metrics['train/loss_supcon'] as number))).toBe(true);
    expect(new Set(counts.slice(1)).size).toBe(1);
    model.dispose();
  });
});
