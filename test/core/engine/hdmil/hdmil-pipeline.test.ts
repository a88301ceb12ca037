import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../../../src/core/logger.js';
import { Rng } from '../../../../src/core/runtime/random.js';
import { MilModel } from '../../../../src/core/engine/model.js';
import { TrainSection } from '../../../../src/core/engine/schema.js';
import { trainFold } from '../../../../src/core/engine/trainer.js';
import {
  fullPass,
  inferenceMetrics,
  loadStageOneCheckpoint,
  readStageWeights,
  runPrescreenedFold,
  runInference,
  screenedPass,
  softmaxHost,
  trainPrescreenerStage,
  type ScreeningStage,
} from '../../../../src/core/engine/hdmil/index.js';
import { Module, type BagData, type BagSource, type ForwardIO, type Prescreener, type SlideRecord } from '../../../../src/registry/index.js';
import { builtinRegistry } from '../../../helpers/registry.js';
import { expectClose, useBackend } from '../../../helpers/hdmil.js';
import syntheticCamelyon from '../../../../plugins/datasets/synthetic-camelyon.js';

const NUM_CLASSES = 2;
const FEATURE_DIM = 12;

/** A pre-screener whose branch scores are whatever `scoreOf` says for the bag's rows (by thumbnail identity). */
class ScriptedPrescreener extends Module implements Prescreener {
  constructor(private readonly scoreOf: (thumbs: tf.Tensor4D) => tf.Tensor2D) {
    super();
  }

  branchScores(thumbs: tf.Tensor4D, _io: ForwardIO): tf.Tensor2D {
    return this.scoreOf(thumbs);
  }

  score(thumbs: tf.Tensor4D, io: ForwardIO): tf.Tensor1D {
    return tf.tidy(() => tf.max(this.branchScores(thumbs, io), 1) as tf.Tensor1D);
  }
}

let source: BagSource;
let slides: readonly SlideRecord[];
let model: MilModel;
let outDir: string;

async function buildModel(seed: number): Promise<MilModel> {
  const registry = builtinRegistry();
  const slots = {
    aggregator: await registry.resolve('aggregator', { name: 'dmin', hiddenDim: 16, attnDim: 8, kSample: 3 }, { key: 'model.aggregator' }),
    classifier: await registry.resolve('classifier', { name: 'cka', degree: 3 }, { key: 'model.classifier' }),
    losses: { ce: { ...(await registry.resolve('loss', { name: 'cross-entropy' }, { key: 'model.losses.ce' })), weight: 0.7 } },
  };
  return new MilModel(registry, slots, { inputDim: FEATURE_DIM, numClasses: NUM_CLASSES }, new Rng(seed), new MemoryLogger());
}

async function buildLipn(seed: number): Promise<ScreeningStage> {
  const registry = builtinRegistry();
  const resolved = await registry.resolve('prescreener', { name: 'lipn' }, { key: 'model.prescreener' });
  const prescreener = registry.create(resolved, {
    inputDim: FEATURE_DIM, numClasses: NUM_CLASSES, outputDim: NUM_CLASSES, rng: new Rng(seed), logger: new MemoryLogger(),
    makeClassifier: () => { throw new Error('unused'); },
  }) as Prescreener;
  return { prescreener, capabilities: registry.capabilities(resolved, { trainable: false }) };
}

function stageSection(epochs: number, patience = 5): TrainSection {
  return TrainSection.parse({ epochs, optimizer: { name: 'adam', lr: 1e-3, weightDecay: 1e-5 }, balancedSampling: true, earlyStopping: { patience, minEpochs: 0 } });
}

beforeAll(async () => {
  await useBackend('cpu');
  source = await syntheticCamelyon.create(
    syntheticCamelyon.options.parse({ slides: 8, instances: [12, 20], featureDim: FEATURE_DIM, signalDim: 2, thumbSignal: 0.9, tumorFraction: [0.2, 0.4] }),
    { seed: 3, logger: new MemoryLogger(), baseDir: '.' },
  );
  slides = source.slides;
  model = await buildModel(1);
  outDir = await mkdtemp(path.join(tmpdir(), 'milkit-hdmil-'));
});

afterAll(async () => {
  await rm(outDir, { recursive: true, force: true });
});

describe('engine/hdmil inference', () => {
  it('all-instances mode equals the model\'s own eval forward, and reports the aggregator\'s kept fraction', async () => {
    const result = await runInference({ mode: 'all-instances', model, source, slides, numClasses: NUM_CLASSES, rng: new Rng(0) });
    for (const prediction of result.predictions) {
      const data = await source.load(prediction.slideId);
      const expected = tf.tidy(() => {
        const out = model.forward({ slideId: data.slideId, features: tf.tensor2d(data.features, [data.n, data.d]) }, { training: false, rng: new Rng(0) });
        return { probs: Array.from(tf.softmax(out.logits).dataSync()), s: model.aggregator.gateLogits?.({ slideId: 'x', features: tf.tensor2d(data.features, [data.n, data.d]) }, { training: false, rng: new Rng(0) }).arraySync() as number[][] };
      });
      expectClose(prediction.probs, expected.probs, 1e-6, 1e-5, prediction.slideId);
      const keptByHand = expected.s.filter((row) => row.some((v) => v > 0)).length / data.n;
      expect(prediction.aggregatorKept).toBeCloseTo(keptByHand, 10);
      expect(prediction.prescreenerKept).toBeUndefined();
    }
    expect(result.kept.aggregator).toBeGreaterThan(0);
    expect(result.msPerSlide.prescreen).toBe(0);
  });

  it('screened mode with the aggregator\'s own gates as the mask reproduces the all-instances result (attention on the union, sliced per class)', async () => {
    const gates = new Map<string, number[][]>();
    for (const slide of slides) {
      const data = await source.load(slide.slideId);
      gates.set(slide.slideId, tf.tidy(() => model.aggregator.gateLogits?.({ slideId: 'x', features: tf.tensor2d(data.features, [data.n, data.d]) }, { training: false, rng: new Rng(0) }).arraySync() as number[][]));
    }
    let current = '';
    const stage: ScreeningStage = { prescreener: new ScriptedPrescreener(() => tf.tensor2d(gates.get(current) as number[][])), capabilities: { trainable: false } };
    const io = { training: false, rng: new Rng(0) };
    for (const slide of slides) {
      current = slide.slideId;
      const data = await source.load(slide.slideId);
      const screened = screenedPass(model, stage, data, io);
      const full = fullPass(model, data, io);
      expectClose(screened.logits, full.logits, 1e-5, 1e-5, slide.slideId);
      const rows = gates.get(slide.slideId) as number[][];
      expect(screened.prescreenerKept).toBeCloseTo(rows.filter((r) => r.some((v) => v > 0)).length / data.n, 10);
      for (const key of ['prescreen', 'read', 'aggregate', 'total'] as const) expect(screened.times[key]).toBeGreaterThanOrEqual(0);
    }
  });

  it('with nothing kept, every class pools the zero embedding: probabilities = softmax(CKA(0))', async () => {
    const stage: ScreeningStage = { prescreener: new ScriptedPrescreener((thumbs) => tf.fill([thumbs.shape[0], NUM_CLASSES], -1) as tf.Tensor2D), capabilities: { trainable: false } };
    const data = await source.load(slides[0]?.slideId as string);
    const pass = screenedPass(model, stage, data, { training: false, rng: new Rng(0) });
    expect(pass.prescreenerKept).toBe(0);
    const zeroLogits = tf.tidy(() => {
      const out = model.forward({ slideId: 'z', features: tf.zeros([1, FEATURE_DIM]) as tf.Tensor2D, keepMask: tf.zeros([1, NUM_CLASSES]) as tf.Tensor2D }, { training: false, rng: new Rng(0) });
      return Array.from(out.logits.dataSync());
    });
    expectClose(softmaxHost(pass.logits), softmaxHost(zeroLogits), 1e-6, 1e-5, 'CKA(0)');
  });

  it('names the metric keys of a result', async () => {
    const stage = await buildLipn(2);
    const registry = builtinRegistry();
    const auc = registry.create(await registry.resolve('metric', 'auc', { key: 'eval.metrics' }), { numClasses: NUM_CLASSES });
    const result = await runInference({ mode: 'screened', model, stage, source, slides, numClasses: NUM_CLASSES, rng: new Rng(0), metrics: [{ name: 'auc', metric: auc }] });
    expect(Object.keys(inferenceMetrics(result, 'test')).sort()).toEqual(['test/auc', 'test/kept_prescreener', 'test/loss', 'time/aggregate_ms', 'time/prescreen_ms', 'time/read_ms', 'time/total_ms']);
    expect(result.predictions).toHaveLength(slides.length);
    stage.prescreener.dispose();
  });

  it('refuses a dataset without thumbnails and a pre-screener without branch scores', async () => {
    const stage = await buildLipn(2);
    const noThumbs: BagSource = { ...source, slides, featureDim: FEATURE_DIM, classNames: source.classNames, load: async (id: string): Promise<BagData> => {
      const { thumbs: _dropped, ...rest } = await source.load(id);
      return rest;
    } };
    await expect(runInference({ mode: 'screened', model, stage, source: noThumbs, slides, numClasses: NUM_CLASSES, rng: new Rng(0), warmup: false })).rejects.toThrow(/needs 16×16 thumbnails/);
    const bare = new (class extends Module implements Prescreener {
      score(thumbs: tf.Tensor4D): tf.Tensor1D {
        return tf.ones([thumbs.shape[0]]);
      }
    })();
    await expect(runInference({ mode: 'screened', model, stage: { prescreener: bare, capabilities: { trainable: false } }, source, slides, numClasses: NUM_CLASSES, rng: new Rng(0) })).rejects.toThrow(/branchScores/);
    stage.prescreener.dispose();
  });
});

describe('engine/hdmil prescreener stage', () => {
  it('learns from the stage-1 gates computed in TRAINING mode (dropout on, no noise)', async () => {
    const stage = await buildLipn(4);
    const seen: Array<{ training: boolean; injected: boolean }> = [];
    const original = model.aggregator.gateLogits?.bind(model.aggregator);
    const spied = Object.create(model) as MilModel;
    Object.defineProperty(spied, 'aggregator', {
      value: Object.assign(Object.create(model.aggregator) as object, {
        gateLogits: (bag: Parameters<NonNullable<typeof original>>[0], io: ForwardIO) => {
          seen.push({ training: io.training, injected: io.injected !== undefined });
          return original?.(bag, io) as tf.Tensor2D;
        },
      }),
    });
    await trainPrescreenerStage({ model: spied, stage, source, train: slides.slice(0, 4), val: [], numClasses: NUM_CLASSES, section: stageSection(1), rng: new Rng(5), logger: new MemoryLogger() });
    expect(seen.length).toBe(4); // one target computation per training step
    expect(seen.every((s) => s.training && !s.injected)).toBe(true);
    stage.prescreener.dispose();
  });

  it('selects the epoch with the lowest screened val loss and leaves those weights (BatchNorm stats included)', async () => {
    const stage = await buildLipn(6);
    const train = slides.slice(0, 5);
    const val = slides.slice(5);
    const result = await trainPrescreenerStage({ model, stage, source, train, val, numClasses: NUM_CLASSES, section: stageSection(4, 10), rng: new Rng(7), logger: new MemoryLogger() });
    expect(result.epochsRun).toBe(4);
    const losses = result.history.map((r) => r.metrics['stage2/val_loss'] as number);
    const bestEpoch = losses.indexOf(Math.min(...losses));
    expect(result.bestEpoch).toBe(bestEpoch);
    expect(result.history.map((r) => r.improved)).toEqual(losses.map((l, i) => l < Math.min(Infinity, ...losses.slice(0, i))));
    // Re-validating with the restored weights gives the selected epoch's loss exactly.
    const again = await runInference({ mode: 'screened', model, stage, source, slides: val, numClasses: NUM_CLASSES, rng: new Rng(0), warmup: false });
    expect(again.loss).toBeCloseTo(losses[bestEpoch] as number, 10);
    for (const record of result.history) {
      expect(record.metrics['stage2/train_target_kept']).toBeGreaterThan(0);
      expect(Number.isFinite(record.metrics['stage2/train_loss'])).toBe(true);
    }
    stage.prescreener.dispose();
  });

  it('writes the selected weights under the original LIPN keys and reuses a finished output on re-run', async () => {
    const file = path.join(outDir, 'fold-0', 'prescreener.safetensors');
    const first = await buildLipn(8);
    const options = { model, source, train: slides.slice(0, 4), val: slides.slice(4, 6), numClasses: NUM_CLASSES, section: stageSection(2), rng: new Rng(9), logger: new MemoryLogger(), outputFile: file, reuseKey: 'cfg-a/fold-0' };
    const trained = await trainPrescreenerStage({ ...options, stage: first });
    expect(trained.reused).toBe(false);
    const stored = await readStageWeights(file);
    expect(Object.keys(stored?.tensors ?? {})).toContain('extractor.features.5.middle_dw_norm.running_var');
    expect(stored?.tensors['extractor.features.0.block.1.num_batches_tracked']?.dtype).toBe('I64');

    const second = await buildLipn(99); // different init: reuse must overwrite it with the stored weights
    const logger = new MemoryLogger();
    const reused = await trainPrescreenerStage({ ...options, stage: second, logger });
    expect(reused.reused).toBe(true);
    expect(reused.bestEpoch).toBe(trained.bestEpoch);
    expect(reused.history).toEqual(trained.history);
    const weights = (s: ScreeningStage): number[] => s.prescreener.namedTensors().flatMap(([, e]) => Array.from(e.variable.dataSync()));
    expect(weights(second)).toEqual(weights(first));

    // Another configuration: the old output is moved aside (never deleted) and the stage retrains.
    const third = await buildLipn(10);
    const retrained = await trainPrescreenerStage({ ...options, stage: third, reuseKey: 'cfg-b/fold-0', logger });
    expect(retrained.reused).toBe(false);
    expect(existsSync(`${file}.superseded-1`)).toBe(true);
    expect(logger.lines.some((l) => l.level === 'warn' && l.message.includes('moved to'))).toBe(true);
    for (const s of [first, second, third]) s.prescreener.dispose();
  });

  it('refuses to train a non-trainable pre-screener or without aggregator gates', async () => {
    const scripted: ScreeningStage = { prescreener: new ScriptedPrescreener((t) => tf.zeros([t.shape[0], 2]) as tf.Tensor2D), capabilities: { trainable: false } };
    const common = { model, source, train: slides.slice(0, 2), val: [], numClasses: NUM_CLASSES, section: stageSection(1), rng: new Rng(0), logger: new MemoryLogger() };
    await expect(trainPrescreenerStage({ ...common, stage: scripted })).rejects.toThrow(/not trainable/);
    const registry = builtinRegistry();
    const meanPool = new MilModel(registry, {
      aggregator: await registry.resolve('aggregator', { name: 'mean-pool' }, { key: 'model.aggregator' }),
      classifier: await registry.resolve('classifier', { name: 'linear' }, { key: 'model.classifier' }),
      losses: {},
    }, { inputDim: FEATURE_DIM, numClasses: NUM_CLASSES }, new Rng(0), new MemoryLogger());
    const lipn = await buildLipn(1);
    await expect(trainPrescreenerStage({ ...common, model: meanPool, stage: lipn })).rejects.toThrow(/exposes none/);
    lipn.prescreener.dispose();
  });
});

describe('engine/hdmil fold chain', () => {
  it('stage 2 of a fold starts from stage 1\'s fold checkpoint and reports both inference modes', async () => {
    const registry = builtinRegistry();
    const auc = registry.create(await registry.resolve('metric', 'auc', { key: 'eval.metrics' }), { numClasses: NUM_CLASSES });
    const metrics = [{ name: 'auc', metric: auc }];
    const [train, val, test] = [slides.slice(0, 4), slides.slice(4, 6), slides.slice(6)];
    const foldDir = path.join(outDir, 'chain', 'fold-0');
    const trained = await buildModel(11);
    await trainFold({
      model: trained, source, train, val, numClasses: NUM_CLASSES, metrics, rng: new Rng(12), logger: new MemoryLogger(),
      section: TrainSection.parse({ epochs: 1, optimizer: { lr: 1e-3 } }), checkpointDir: foldDir, configHash: 'chain', fold: 0, resume: false,
    });
    // A later run: stage 1 is done, so a fresh model loads the fold's checkpoint before stage 2.
    const restored = await buildModel(99);
    await loadStageOneCheckpoint(restored, path.join(foldDir, 'best.ckpt'));
    const data = await source.load(test[0]?.slideId as string);
    expectClose(fullPass(restored, data, { training: false, rng: new Rng(0) }).logits, fullPass(trained, data, { training: false, rng: new Rng(0) }).logits, 0, 0, 'restored stage 1');
    const stage = await buildLipn(13);
    const result = await runPrescreenedFold({ model: restored, stage, source, train, val, test, numClasses: NUM_CLASSES, section: stageSection(1), metrics, rng: new Rng(14), logger: new MemoryLogger(), foldDir, reuseKey: 'chain/fold-0' });
    expect(existsSync(path.join(foldDir, 'prescreener.safetensors'))).toBe(true);
    expect(Object.keys(result.metrics).sort()).toEqual([
      'test/auc', 'test/kept_prescreener', 'test/loss', 'test_all/auc', 'test_all/kept_aggregator', 'test_all/loss',
      'time/aggregate_ms', 'time/aggregate_ms_all', 'time/prescreen_ms', 'time/prescreen_ms_all', 'time/read_ms', 'time/read_ms_all', 'time/total_ms', 'time/total_ms_all',
    ]);
    expect(result.metrics['test_all/kept_aggregator']).toBe(result.allInstances.kept.aggregator);
    expect(result.metrics['test/kept_prescreener']).toBe(result.screened.kept.prescreener);
    await expect(loadStageOneCheckpoint(restored, path.join(outDir, 'nowhere', 'best.ckpt'))).rejects.toThrow(/no stage-1 checkpoint/);
    stage.prescreener.dispose();
  });
});
