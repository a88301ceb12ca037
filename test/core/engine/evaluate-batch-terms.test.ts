// Batch-level loss terms (SupCon) in the validation loss: evaluate groups the bags like training steps and adds
// each group's batch term, so with one group of the four reference bags the loss is the PyTorch reference's step
// total (test/reference/hmil.py → test/reference/fixtures/hmil.json); smaller groups follow the stream's shuffle;
// predictions do not change; the trainer's val/loss is that loss over the same groups every epoch.
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluate } from '../../../src/core/engine/evaluate.js';
import { MilModel } from '../../../src/core/engine/model.js';
import { TrainSection } from '../../../src/core/engine/schema.js';
import { trainFold } from '../../../src/core/engine/trainer.js';
import { silentLogger } from '../../../src/core/logger.js';
import { torchEntries } from '../../../src/core/nn/state-dict.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { fillPattern } from '../../../src/testing/contracts/golden.js';
import { UNLABELLED, type BagData, type BagSource, type LabelHierarchy, type ModelOutput, type SlideRecord } from '../../../src/registry/index.js';
import { builtinRegistry } from '../../helpers/registry.js';
import { REPO } from '../../e2e/helpers.js';

interface Fixture {
  readonly hierarchy: LabelHierarchy;
  readonly dims: Record<string, number>;
  readonly inputDim: number;
  readonly labels: number[];
  readonly bags: number[][][];
  readonly scenarios: Record<'schedule', { readonly epoch: number; readonly totalEpochs: number; readonly total: number; readonly terms: Record<'supcon', number> }>;
}

const fixture = JSON.parse(readFileSync(path.join(REPO, 'test/reference/fixtures/hmil.json'), 'utf8')) as Fixture;
const scenario = fixture.scenarios.schedule;
const schedule = { epoch: scenario.epoch, totalEpochs: scenario.totalEpochs };
const registry = builtinRegistry();

/** HMIL with the reference's losses; SupCon weighted as the reference scenario (1 − α), or constant, or left out. */
async function hmilModel(supcon: 'one-minus-alpha' | 'constant' | 'none'): Promise<MilModel> {
  const withSupcon = supcon !== 'none';
  const loss = async (name: string, weight: number) => ({ ...(await registry.resolve('loss', { name, ...(name === 'supcon' ? { epochWeight: supcon } : {}) }, { key: `model.losses.${name}` })), weight });
  const model = new MilModel(registry, {
    aggregator: await registry.resolve('aggregator', { name: 'hmil', ...fixture.dims }, { key: 'model.aggregator' }),
    classifier: await registry.resolve('classifier', 'linear', { key: 'model.classifier' }),
    losses: { ce: await loss('cross-entropy', 1), hier: await loss('hmil-hierarchy', 1), ...(withSupcon ? { supcon: await loss('supcon', 1) } : {}) },
  }, { inputDim: fixture.inputDim, numClasses: fixture.labels.length, hierarchy: fixture.hierarchy }, new Rng(0), silentLogger);
  fillPattern(torchEntries(model));
  return model;
}

function bagSource(): BagSource {
  const slides = fixture.labels.map((label, i) => ({ slideId: `bag-${i}`, caseId: `case-${i}`, label, labelName: `f${label}`, meta: {} }));
  const bags = new Map<string, BagData>(fixture.bags.map((rows, i) => [`bag-${i}`, { slideId: `bag-${i}`, n: rows.length, d: fixture.inputDim, features: Float32Array.from(rows.flat()) }]));
  return { slides, featureDim: fixture.inputDim, classNames: ['f0', 'f1', 'f2', 'f3'], hierarchy: fixture.hierarchy, load: async (id) => bags.get(id) as BagData };
}

/** Mean per-bag loss and the batch term of each group, by hand (eval-mode forwards, the model's own loss slots). */
function byHand(model: MilModel, groups: readonly (readonly SlideRecord[])[], at = schedule): { perBag: number; batch: number[] } {
  let perBagSum = 0;
  let count = 0;
  const batch = groups.map((group) => tf.tidy(() => {
    const outputs: ModelOutput[] = group.map((slide) => {
      const index = Number(slide.slideId.slice('bag-'.length));
      return model.forward({ slideId: slide.slideId, features: tf.tensor2d(fixture.bags[index] as number[][]) }, { training: false, rng: new Rng(0) });
    });
    outputs.forEach((out, i) => {
      perBagSum += model.losses(out, (group[i] as SlideRecord).label, 4, at).total.dataSync()[0] as number;
      count += 1;
    });
    return model.batchLosses(outputs, group.map((s) => s.label), 4, at).total.dataSync()[0] as number;
  }));
  return { perBag: perBagSum / count, batch };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('batch-level loss terms in evaluation', () => {
  it('one group of the four reference bags gives the reference step total; without batchTerms the bag mean only', async () => {
    const model = await hmilModel('one-minus-alpha');
    const source = bagSource();
    const base = { model, source, slides: source.slides, numClasses: 4, metrics: [], rng: new Rng(7), schedule };
    const grouped = await evaluate({ ...base, batchTerms: { bagsPerGroup: 4, rng: new Rng(9) } });
    const plain = await evaluate({ ...base, rng: new Rng(7) });
    // The reference computes the step in training mode; HMIL's forward has no dropout by default, so eval mode agrees.
    expect(grouped.loss).toBeCloseTo(scenario.total, 4);
    expect(scenario.terms.supcon).toBeGreaterThan(1e-3);
    const hand = byHand(model, [source.slides]);
    expect(plain.loss).toBeCloseTo(hand.perBag, 6);
    expect(grouped.loss - plain.loss).toBeCloseTo(hand.batch[0] as number, 6);
    // Grouping changes the evaluation order, never the predictions or their order.
    expect(grouped.predictions).toEqual(plain.predictions);
    model.dispose();
  });

  it('smaller groups follow the stream\'s shuffle; the same stream gives the same groups', async () => {
    const model = await hmilModel('one-minus-alpha');
    const source = bagSource();
    const run = () => evaluate({ model, source, slides: source.slides, numClasses: 4, metrics: [], rng: new Rng(7), schedule, batchTerms: { bagsPerGroup: 3, rng: new Rng(5).fork('groups') } });
    const first = await run();
    const second = await run();
    expect(second.loss).toBe(first.loss);
    // Groups of 3 over 4 bags: the shuffled order cut into [3, 1], as the last training step of an epoch.
    const order = new Rng(5).fork('groups').shuffle([...source.slides]);
    const hand = byHand(model, [order.slice(0, 3), order.slice(3)]);
    expect(first.loss).toBeCloseTo(hand.perBag + ((hand.batch[0] as number) + (hand.batch[1] as number)) / 2, 6);
    model.dispose();
  });

  it('a model without batch terms, or a slide without a label, ignores batchTerms', async () => {
    const model = await hmilModel('none');
    const source = bagSource();
    const base = { model, source, slides: source.slides, numClasses: 4, metrics: [], schedule };
    const grouped = await evaluate({ ...base, rng: new Rng(7), batchTerms: { bagsPerGroup: 2, rng: new Rng(9) } });
    const plain = await evaluate({ ...base, rng: new Rng(7) });
    expect(grouped.loss).toBe(plain.loss);
    expect(grouped.predictions).toEqual(plain.predictions);
    model.dispose();
    // A cohort predicted without labels: no loss at all (SupCon included), the same probabilities, no metrics.
    const withSupcon = await hmilModel('one-minus-alpha');
    const unlabelled = source.slides.map((slide) => ({ ...slide, label: UNLABELLED, labelName: '' }));
    const blind = await evaluate({ ...base, model: withSupcon, slides: unlabelled, rng: new Rng(7), batchTerms: { bagsPerGroup: 2, rng: new Rng(9) } });
    const seen = await evaluate({ ...base, model: withSupcon, rng: new Rng(7), batchTerms: { bagsPerGroup: 2, rng: new Rng(9) } });
    expect(blind.loss).toBeNaN();
    expect(blind.metrics).toEqual({});
    expect(blind.predictions.map((p) => p.probs)).toEqual(seen.predictions.map((p) => p.probs));
    withSupcon.dispose();
  });

  it('a bag that fails to load part-way through a group leaves no tensor of the group behind', async () => {
    const model = await hmilModel('one-minus-alpha');
    const source = bagSource();
    const order = new Rng(9).shuffle([...source.slides]);
    const failing = order[2]?.slideId as string; // the third bag: two outputs of its group are held when it fails
    const broken: BagSource = { ...source, load: async (id) => { if (id === failing) throw new Error(`cannot read ${id}`); return source.load(id); } };
    const before = tf.memory().numTensors;
    await expect(evaluate({ model, source: broken, slides: source.slides, numClasses: 4, metrics: [], rng: new Rng(7), schedule, batchTerms: { bagsPerGroup: 4, rng: new Rng(9) } }))
      .rejects.toThrow(`cannot read ${failing}`);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('the trainer\'s val/loss holds the batch term over groups the size of a training step, the same every epoch', async () => {
    const model = await hmilModel('constant');
    const source = bagSource();
    const rng = new Rng(1).fork('fold-0');
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-val-batch-'));
    const result = await trainFold({
      model, source, train: source.slides, val: source.slides, numClasses: 4, metrics: [],
      section: TrainSection.parse({ epochs: 2, bagsPerStep: 2, optimizer: { name: 'sgd', lr: 0.01, momentum: 0, weightDecay: 0 }, earlyStopping: { select: 'last' } }),
      rng, logger: silentLogger, checkpointDir: dir, configHash: 'h', fold: 0, resume: false,
    });
    // The groups the trainer draws: its fold stream's val-batch-groups fork, cut at bagsPerStep.
    const order = rng.fork('val-batch-groups').shuffle([...source.slides]);
    // The model holds the last epoch's weights (select: last), so the second epoch's val/loss is checked.
    const hand = byHand(model, [order.slice(0, 2), order.slice(2)], { epoch: 1, totalEpochs: 2 });
    expect(Math.min(...hand.batch)).toBeGreaterThan(1e-3); // SupCon (constant weight) is really in the loss
    const expected = hand.perBag + ((hand.batch[0] as number) + (hand.batch[1] as number)) / 2;
    expect(result.history[1]?.metrics['val/loss']).toBeCloseTo(expected, 5);
    model.dispose();
  });
});
