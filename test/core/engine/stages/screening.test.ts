// The composed model's two inference pipelines (src/core/engine/screening.ts, through evaluate): the full pass
// (HDMIL†) and the screened pass of a model whose pre-screener a stage has trained (HDMIL), with kept rates,
// per-stage times and the empty-selection rule.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../../../src/core/logger.js';
import { Rng } from '../../../../src/core/runtime/random.js';
import { MilModel } from '../../../../src/core/engine/model.js';
import { evaluate } from '../../../../src/core/engine/evaluate.js';
import { buildViews } from '../../../../src/core/data/bags.js';
import { fullPass, screenedPass, type PassOptions } from '../../../../src/core/engine/screening.js';
import { definePlugin, Module, type BagData, type BagSource, type ForwardIO, type Prescreener } from '../../../../src/registry/index.js';
import { z } from 'zod';
import { builtinRegistry } from '../../../helpers/registry.js';
import { expectClose, useBackend } from '../../../helpers/hdmil.js';
import syntheticCamelyon from '../../../../plugins/datasets/synthetic-camelyon.js';

const NUM_CLASSES = 2;
const FEATURE_DIM = 12;

/** A pre-screener whose branch scores are whatever the test says for the current slide. */
class ScriptedPrescreener extends Module implements Prescreener {
  scoreOf: (thumbs: tf.Tensor4D) => tf.Tensor2D = (thumbs) => tf.ones([thumbs.shape[0], NUM_CLASSES]);

  branchScores(thumbs: tf.Tensor4D, _io: ForwardIO): tf.Tensor2D {
    return this.scoreOf(thumbs);
  }

  score(thumbs: tf.Tensor4D, io: ForwardIO): tf.Tensor1D {
    return tf.tidy(() => tf.max(this.branchScores(thumbs, io), 1) as tf.Tensor1D);
  }
}

let source: BagSource;
let model: MilModel;
let scripted: ScriptedPrescreener;
const io = { training: false, rng: new Rng(0) };
const pass: PassOptions = { io, views: [], makeViews: buildViews };

beforeAll(async () => {
  await useBackend('cpu');
  source = await syntheticCamelyon.create(
    syntheticCamelyon.options.parse({ slides: 6, instances: [12, 20], featureDim: FEATURE_DIM, signalDim: 2, thumbSignal: 0.9, tumorFraction: [0.2, 0.4] }),
    { seed: 3, logger: new MemoryLogger(), baseDir: '.' },
  );
  const registry = builtinRegistry();
  scripted = new ScriptedPrescreener();
  registry.register(definePlugin({ kind: 'prescreener', name: 'test:scripted', summary: 'test', options: z.strictObject({}), capabilities: { trainable: true, needsViews: ['thumbs'] }, create: () => scripted }), 'test');
  const slots = {
    aggregator: await registry.resolve('aggregator', { name: 'dmin', hiddenDim: 16, attnDim: 8, kSample: 3 }, { key: 'model.aggregator' }),
    classifier: await registry.resolve('classifier', { name: 'cka', degree: 3 }, { key: 'model.classifier' }),
    prescreener: await registry.resolve('prescreener', { name: 'test:scripted' }, { key: 'model.prescreener' }),
    losses: { ce: { ...(await registry.resolve('loss', { name: 'cross-entropy' }, { key: 'model.losses.ce' })), weight: 1 } },
  };
  model = new MilModel(registry, slots, { inputDim: FEATURE_DIM, numClasses: NUM_CLASSES }, new Rng(1), new MemoryLogger());
  model.setTraining(false);
});

function gatesOf(data: BagData): number[][] {
  return tf.tidy(() => model.aggregator.gateLogits?.({ slideId: 'x', features: tf.tensor2d(data.features, [data.n, data.d]) }, io).arraySync() as number[][]);
}

describe('inference pipelines', () => {
  it('full pass = the model\'s eval forward, with the aggregator\'s own kept fraction', async () => {
    for (const slide of source.slides) {
      const data = await source.load(slide.slideId);
      const result = fullPass(model, data, pass);
      const expected = tf.tidy(() => Array.from(model.forward({ slideId: data.slideId, features: tf.tensor2d(data.features, [data.n, data.d]) }, io).logits.dataSync()));
      expectClose(result.output.logits.dataSync(), expected, 1e-6, 1e-6, slide.slideId);
      expect(result.aggregatorKept).toBeCloseTo(gatesOf(data).filter((row) => row.some((v) => v > 0)).length / data.n, 10);
      expect(result.prescreenerKept).toBeUndefined();
      expect(result.times.prescreen).toBe(0);
      tf.dispose(result.output as unknown as tf.TensorContainer);
    }
  });

  it('screened with the aggregator\'s own gates as mask reproduces the full pass (per-branch keepMask view)', async () => {
    for (const slide of source.slides) {
      const data = await source.load(slide.slideId);
      const gates = gatesOf(data);
      scripted.scoreOf = () => tf.tensor2d(gates);
      const screened = screenedPass(model, data, pass);
      const full = fullPass(model, data, pass);
      expectClose(screened.output.logits.dataSync(), full.output.logits.dataSync(), 1e-5, 1e-5, slide.slideId);
      expect(screened.prescreenerKept).toBeCloseTo(gates.filter((r) => r.some((v) => v > 0)).length / data.n, 10);
      expect(screened.allInstances).toBe(false);
      tf.dispose([screened.output, full.output] as unknown as tf.TensorContainer);
    }
  });

  it('with nothing kept, every class pools the zero embedding: logits = CKA(0)', async () => {
    scripted.scoreOf = (thumbs) => tf.fill([thumbs.shape[0], NUM_CLASSES], -1) as tf.Tensor2D;
    const data = await source.load(source.slides[0]?.slideId as string);
    const result = screenedPass(model, data, pass);
    expect(result.prescreenerKept).toBe(0);
    const zero = tf.tidy(() => Array.from(model.forward({ slideId: 'z', features: tf.zeros([1, FEATURE_DIM]) as tf.Tensor2D, views: { keepMask: tf.zeros([1, NUM_CLASSES]) } }, io).logits.dataSync()));
    expectClose(result.output.logits.dataSync(), zero, 1e-6, 1e-5, 'CKA(0)');
    tf.dispose(result.output as unknown as tf.TensorContainer);
  });

  it('evaluate screens once the model screens, and reports kept rates and per-stage times', async () => {
    scripted.scoreOf = (thumbs) => tf.tidy(() => tf.tile(tf.reshape(tf.sub(tf.mean(thumbs, [1, 2, 3]), 0.5), [-1, 1]), [1, NUM_CLASSES]) as tf.Tensor2D);
    const full = await evaluate({ model, source, slides: source.slides, numClasses: NUM_CLASSES, metrics: [], rng: new Rng(0) });
    expect(full.screened).toBe(false);
    expect(full.kept.aggregator).toBeGreaterThan(0);
    expect(full.stageMs.prescreen).toBe(0);
    model.screening = true;
    try {
      const screened = await evaluate({ model, source, slides: source.slides, numClasses: NUM_CLASSES, metrics: [], rng: new Rng(0), warmup: true });
      expect(screened.screened).toBe(true);
      expect(screened.kept.prescreener).toBeGreaterThanOrEqual(0);
      expect(screened.kept.prescreener).toBeLessThanOrEqual(1);
      expect(screened.stageMs.prescreen).toBeGreaterThan(0);
      expect(screened.instanceAuc).toBeUndefined(); // attention over kept rows only is not comparable per instance
      const noThumbs: BagSource = { ...source, slides: source.slides, featureDim: FEATURE_DIM, classNames: source.classNames, load: async (id: string): Promise<BagData> => {
        const { thumbs: _dropped, ...rest } = await source.load(id);
        return rest;
      } };
      await expect(evaluate({ model, source: noThumbs, slides: source.slides, numClasses: NUM_CLASSES, metrics: [], rng: new Rng(0) })).rejects.toThrow(/needs 16×16 thumbnails/);
    } finally {
      model.screening = false;
    }
  });
});
