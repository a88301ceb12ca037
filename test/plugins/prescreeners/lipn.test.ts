import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import lipn, { attentionWeights, LipnOptions, LipnPrescreener, recallThreshold } from '../../../plugins/prescreeners/lipn.js';
import { torchAbs } from '../../../src/core/nn/gradients.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { builtinRegistry } from '../../helpers/registry.js';
import { expectClose, formulaState, loadTorchLayout, modelContext, readFixture, toTorchLayout, useBackend, type FormulaEntry } from '../../helpers/hdmil.js';

interface LipnFixture {
  readonly n: number;
  readonly numClasses: number;
  readonly counterStart: number;
  readonly spec: FormulaEntry[];
  readonly warmupPasses: number;
  readonly evalScores: number[];
  readonly trainScores: number[];
  readonly targets: number[];
  readonly loss: number;
  readonly runningAfterTrain: Record<string, number[]>;
  readonly countersAfterTrain: Record<string, number>;
  readonly grads: Record<string, number[]>;
}

/** docs/methods/state-dict-keys.md#lipn (ImageProcessor, C = 2): torch shapes by key, BatchNorm buffers included. */
function originalLipnShapes(): Record<string, number[]> {
  const shapes: Record<string, number[]> = {};
  const norm = (prefix: string, c: number): void => {
    for (const name of ['weight', 'bias', 'running_mean', 'running_var']) shapes[`${prefix}.${name}`] = [c];
    shapes[`${prefix}.num_batches_tracked`] = [];
  };
  const convBn = (prefix: string, out: number, inp: number, k: number): void => {
    shapes[`${prefix}.block.0.weight`] = [out, inp, k, k];
    norm(`${prefix}.block.1`, out);
  };
  convBn('extractor.features.0', 16, 3, 3);
  convBn('extractor.features.1', 16, 16, 3);
  convBn('extractor.features.2', 16, 16, 1);
  convBn('extractor.features.3', 48, 16, 3);
  convBn('extractor.features.4', 24, 48, 1);
  const uib = (prefix: string, inp: number, wide: number, out: number, k: number): void => {
    shapes[`${prefix}.start_dw_conv.weight`] = [inp, 1, k, k];
    norm(`${prefix}.start_dw_norm`, inp);
    shapes[`${prefix}.expand_conv.weight`] = [wide, inp, 1, 1];
    norm(`${prefix}.expand_norm`, wide);
    shapes[`${prefix}.middle_dw_conv.weight`] = [wide, 1, k, k];
    norm(`${prefix}.middle_dw_norm`, wide);
    shapes[`${prefix}.proj_conv.weight`] = [out, wide, 1, 1];
    norm(`${prefix}.proj_norm`, out);
  };
  uib('extractor.features.5', 24, 48, 48, 5);
  uib('extractor.features.6', 48, 96, 64, 3);
  convBn('extractor.conv', 64, 64, 1);
  shapes['extractor.classifier.weight'] = [2, 64];
  shapes['extractor.classifier.bias'] = [2];
  return shapes;
}

function thumbsOf(n: number): tf.Tensor4D {
  // float32(0.5 + 0.5 sin(0.61 i + 1.7 floor(i / 768))) over the NHWC flat index (hdmil_reference.py).
  const size = n * 16 * 16 * 3;
  return tf.tensor4d(Float32Array.from({ length: size }, (_, i) => 0.5 + 0.5 * Math.sin(0.61 * i + 1.7 * Math.floor(i / 768))), [n, 16, 16, 3]);
}

async function fromFixture(): Promise<{ fx: LipnFixture; model: LipnPrescreener }> {
  const fx = await readFixture<LipnFixture>('hdmil-lipn.json');
  const model = new LipnPrescreener(LipnOptions.parse({}), modelContext({ inputDim: 1, numClasses: fx.numClasses }));
  loadTorchLayout(model, formulaState(fx.spec, fx.counterStart));
  return { fx, model };
}

beforeAll(async () => {
  await useBackend('cpu');
});

describe('prescreener/lipn', () => {
  it('has the original HDMIL keys and shapes, BatchNorm buffers included, and 33,898 trainable parameters', () => {
    const model = new LipnPrescreener(LipnOptions.parse({}), modelContext({ inputDim: 1, numClasses: 2 }));
    const shapes = Object.fromEntries(model.namedTensors().map(([key, entry]) => [key, entry.torch.perm ? entry.torch.perm.map((axis) => entry.variable.shape[axis]) : entry.variable.shape]));
    expect(shapes).toEqual(originalLipnShapes());
    const buffers = model.namedTensors().filter(([, e]) => !e.trainable).map(([key]) => key);
    expect(buffers.every((key) => /running_mean|running_var|num_batches_tracked/.test(key))).toBe(true);
    expect(model.trainableVariables().reduce((sum, v) => sum + v.size, 0)).toBe(33_898);
    model.dispose();
  });

  describe.each(['cpu', 'wasm'] as const)('parity with the torch reference on %s', (backend) => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it('matches the torch reference in training mode: scores, imitation loss, gradients and running-stat updates', async () => {
      const { fx, model } = await fromFixture();
      const thumbs = thumbsOf(fx.n);
      const targets = tf.tensor2d(fx.targets, [fx.n, fx.numClasses]);
      const io = { training: true, rng: new Rng(0) };
      const named = model.namedTensors();
      const trainable = named.filter(([, e]) => e.trainable);
      let scores: tf.Tensor | undefined;
      const { value, grads } = tf.variableGrads(() => {
        const o = model.branchScores(thumbs, io);
        scores = tf.keep(o);
        return model.imitationLoss(o, targets);
      }, trainable.map(([, e]) => e.variable));
      expectClose(scores?.dataSync() ?? [], fx.trainScores, 1e-4, 1e-4, 'train-mode scores');
      expectClose(value.dataSync(), [fx.loss], 1e-6, 1e-5, 'imitation loss');
      for (const [key, expected] of Object.entries(fx.grads)) {
        const entry = trainable.find(([k]) => k === key)?.[1];
        // Eight BatchNorms over a 6-patch batch amplify float32 rounding in the backward pass: PyTorch's own
        // float32 gradients differ from its float64 ones by up to 4e-4·max|g| here, hence atol relative to the scale.
        const scale = Math.max(...expected.map(Math.abs));
        expectClose(toTorchLayout(grads[entry?.variable.name ?? ''] as tf.Tensor, entry?.torch.perm), expected, 1e-3 * scale, 1e-3, `d/d ${key}`);
      }
      for (const [key, expected] of Object.entries(fx.runningAfterTrain)) {
        expectClose(named.find(([k]) => k === key)?.[1].variable.dataSync() ?? [], expected, 1e-5, 1e-4, key);
      }
      for (const [key, expected] of Object.entries(fx.countersAfterTrain)) {
        expect(named.find(([k]) => k === key)?.[1].variable.dataSync()[0], key).toBe(expected);
      }
      tf.dispose([thumbs, targets, value, scores as tf.Tensor, ...Object.values(grads)]);
      model.dispose();
    });

    it('matches the torch reference in eval mode (running statistics) within 1e-4', async () => {
      const { fx, model } = await fromFixture();
      const thumbs = thumbsOf(fx.n);
      const train = { training: true, rng: new Rng(0) };
      for (let pass = 0; pass < fx.warmupPasses + 1; pass += 1) tf.dispose(model.branchScores(thumbs, train));
      const scores = model.branchScores(thumbs, { training: false, rng: new Rng(0) });
      expectClose(scores.dataSync(), fx.evalScores, 1e-4, 1e-4, 'eval-mode scores');
      const union = model.score(thumbs, { training: false, rng: new Rng(0) });
      const expectedUnion = Array.from({ length: fx.n }, (_, i) => Math.max(fx.evalScores[2 * i] as number, fx.evalScores[2 * i + 1] as number));
      expectClose(union.dataSync(), expectedUnion, 1e-4, 1e-4, 'union keep logit = max over branches');
      tf.dispose([thumbs, scores, union]);
      model.dispose();
    });
  });

  describe('behaviour', () => {
    beforeAll(async () => {
      await useBackend('cpu');
    });

  it('does not touch the running statistics at eval', async () => {
    const { model } = await fromFixture();
    const before = model.namedTensors().filter(([, e]) => !e.trainable).map(([, e]) => Array.from(e.variable.dataSync()));
    const thumbs = thumbsOf(3);
    tf.dispose(model.branchScores(thumbs, { training: false, rng: new Rng(0) }));
    const after = model.namedTensors().filter(([, e]) => !e.trainable).map(([, e]) => Array.from(e.variable.dataSync()));
    expect(after).toEqual(before);
    thumbs.dispose();
    model.dispose();
  });

  it('gives matched mask entries zero L1 gradient, as PyTorch does (tfjs abs would give -1)', () => {
    const x = tf.tensor1d([-2, 0, 0, 3]);
    expect(Array.from(tf.grad((v: tf.Tensor) => tf.sum(torchAbs(v)))(x).dataSync())).toEqual([-1, 0, 0, 1]);
    expect(Array.from(tf.grad((v: tf.Tensor) => tf.sum(tf.abs(v)))(x).dataSync())).toEqual([-1, -1, -1, 1]);
    x.dispose();
  });

  it('rate term: predicted and target union rates over classes 0/1 (loss by hand)', () => {
    const model = new LipnPrescreener(LipnOptions.parse({}), modelContext({ inputDim: 1, numClasses: 3 }));
    // Predicted masks (scores > 0): rows kept by classes 0/1: rows 0, 1 → e_LR = 2/4; class 2 ignored.
    const scores = tf.tensor2d([[1, -1, 5], [-1, 2, -5], [-3, -3, 4], [-2, -1, 3]]);
    const targets = tf.tensor2d([[1, 0, 1], [0, 0, 0], [0, 0, 1], [0, 0, 1]]); // e_HR = 1/4
    // L1: mismatches at (1,1) only → 1/12; rate: (2/4 - 1/4)^2 = 1/16.
    expect(model.imitationLoss(scores, targets).dataSync()[0]).toBeCloseTo(1 / 12 + 1 / 16, 6);
    tf.dispose([scores, targets]);
    model.dispose();
  });

  it('missWeight: a missed target weighs w, a false keep 1 (loss and gradients by hand); w = 1 is the published loss', () => {
    const weighted = new LipnPrescreener(LipnOptions.parse({ missWeight: 4, rateLossWeight: 0 }), modelContext({ inputDim: 1, numClasses: 2 }));
    const published = new LipnPrescreener(LipnOptions.parse({ rateLossWeight: 0 }), modelContext({ inputDim: 1, numClasses: 2 }));
    // (0,0) matched keep, (0,1) false keep, (1,0) miss, (1,1) matched drop.
    const scores = tf.tensor2d([[2, 1], [-1, -3]]);
    const targets = tf.tensor2d([[1, 0], [1, 0]]);
    // mean over N·C = 4 entries: (0 + 1·1 + 4·1 + 0) / 4 with w = 4; (0 + 1 + 1 + 0) / 4 with w = 1.
    expect(weighted.imitationLoss(scores, targets).dataSync()[0]).toBeCloseTo(5 / 4, 6);
    expect(published.imitationLoss(scores, targets).dataSync()[0]).toBeCloseTo(2 / 4, 6);
    // Straight-through: d/dO = weight · sign(M - T) · σ'(O) / 4 on mismatches, 0 on matches.
    const sigmoidSlope = (o: number): number => Math.exp(-o) / (1 + Math.exp(-o)) ** 2;
    const gradient = Array.from(tf.grad((o: tf.Tensor) => weighted.imitationLoss(o as tf.Tensor2D, targets))(scores).dataSync());
    expectClose(gradient, [0, sigmoidSlope(1) / 4, (-4 * sigmoidSlope(-1)) / 4, 0], 1e-7, 1e-5, 'weighted gradient');
    tf.dispose([scores, targets]);
    weighted.dispose();
    published.dispose();
  });

  it('targetRecall: after a training step the evaluation keeps that share of the target-kept instances (union of classes 0/1), and the threshold is saved', () => {
    const model = new LipnPrescreener(LipnOptions.parse({ targetRecall: 0.75 }), modelContext({ inputDim: 1, numClasses: 2 }));
    const n = 40;
    const rng = new Rng(3);
    const thumbs = tf.tensor4d(Float32Array.from({ length: n * 16 * 16 * 3 }, () => rng.next()), [n, 16, 16, 3]);
    // 20 target-kept instances (rows 0..19, one branch or the other), 20 dropped.
    const targets = tf.tensor2d(Array.from({ length: n }, (_, i) => (i < 20 ? (i % 2 === 0 ? [1, 0] : [0, 1]) : [0, 0])).flat(), [n, 2]);
    const eval0 = { training: false, rng: new Rng(0) };
    const before = Array.from(model.score(thumbs, eval0).dataSync());
    tf.dispose(model.imitationLoss(model.branchScores(thumbs, { training: true, rng: new Rng(1) }), targets));
    const after = Array.from(model.score(thumbs, eval0).dataSync());
    // Eval scores are shifted by the stored threshold t, which keeps 15 of the 20 target-kept instances (drops
    // floor(0.25 · 20) = 5). A fresh network's scores lie within ~1e-6 of each other, so float32 rounding of O - t may
    // move the one instance next to the midpoint: 15 ± 1. The training forward moved the running statistics, so
    // the shift is checked on the threshold, not against the scores before the step.
    const named = new Map(model.namedTensors());
    expect([...named.keys()]).toEqual(expect.arrayContaining(['keep_threshold', 'num_bags_calibrated']));
    const threshold = named.get('keep_threshold')?.variable.dataSync()[0] as number;
    expect(threshold).not.toBe(0);
    const keptTargets = after.slice(0, 20).filter((v) => v > 0).length;
    expect(keptTargets).toBeGreaterThanOrEqual(14);
    expect(keptTargets).toBeLessThanOrEqual(16);
    expect(before.length).toBe(n);
    // Without the option the keys are HDMIL's only.
    const plain = new LipnPrescreener(LipnOptions.parse({}), modelContext({ inputDim: 1, numClasses: 2 }));
    expect(plain.namedTensors().map(([name]) => name).some((name) => name.startsWith('keep_threshold'))).toBe(false);
    tf.dispose([thumbs, targets]);
    model.dispose();
    plain.dispose();
  });

  it('recallThreshold: unit weights drop floor((1 - recall) · n) positives; attention weights drop the low-attention ones up to (1 - recall) of the mass', () => {
    const scores = [0.4, 0.1, 0.3, 0.2];
    // Unit weights, recall 0.75: one of four dropped (0.1), threshold halfway to the next (0.15).
    expect(recallThreshold(scores.map((score) => ({ score, weight: 1 })), 0.75)).toBeCloseTo(0.15, 12);
    // The lowest-scored positive carries 70 % of the attention: nothing may be dropped, t just below 0.1.
    const heavyLow = recallThreshold([{ score: 0.1, weight: 0.7 }, { score: 0.2, weight: 0.1 }, { score: 0.3, weight: 0.1 }, { score: 0.4, weight: 0.1 }], 0.75);
    expect(heavyLow).toBeLessThan(0.1);
    expect(heavyLow).toBeGreaterThan(0.1 - 1e-5);
    // The three lowest carry 20 % ≤ 25 %: all three dropped, t = 0.35 (count-based recall would keep three of them).
    expect(recallThreshold([{ score: 0.1, weight: 0.05 }, { score: 0.2, weight: 0.05 }, { score: 0.3, weight: 0.1 }, { score: 0.4, weight: 0.8 }], 0.75)).toBeCloseTo(0.35, 12);
    // Weightless positives may all be dropped, but at least one positive is always kept.
    expect(recallThreshold([{ score: 0.5, weight: 0 }, { score: 0.7, weight: 0 }, { score: 0.9, weight: 0 }], 0.5)).toBeCloseTo(0.8, 12);
  });

  it('attentionWeights: per counted branch the softmax of S over its gate-kept rows, averaged over branches that keep any', () => {
    // Rows 0..3, two branches. Branch 0 keeps rows 0 and 1 (S = ln 3 and 0: attention 3/4, 1/4); branch 1 keeps row 2
    // only (attention 1); row 3 kept by none. Averaged over the two branches: 3/8, 1/8, 1/2, 0 (sums to 1).
    const logits = [Math.log(3), -1, 0, -2, 5, 0.5, 7, -3];
    const target = [1, 0, 1, 0, 0, 1, 0, 0];
    const weights = Array.from(attentionWeights(logits, target, 4, 2, 2));
    [3 / 8, 1 / 8, 1 / 2, 0].forEach((w, i) => expect(weights[i]).toBeCloseTo(w, 12));
    // One counted branch: its softmax alone.
    const first = Array.from(attentionWeights(logits, target, 4, 2, 1));
    [3 / 4, 1 / 4, 0, 0].forEach((w, i) => expect(first[i]).toBeCloseTo(w, 12));
  });

  it('leaks no tensors over a training step', () => {
    const model = new LipnPrescreener(LipnOptions.parse({}), modelContext({ inputDim: 1, numClasses: 2 }));
    const thumbs = tf.randomUniform([5, 16, 16, 3]) as tf.Tensor4D;
    const targets = tf.tensor2d([[1, 0], [0, 0], [1, 1], [0, 1], [0, 0]]);
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => model.imitationLoss(model.branchScores(thumbs, { training: true, rng: new Rng(0) }), targets), model.trainableVariables());
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([thumbs, targets]);
    model.dispose();
  });

  it('is registered as a trainable prescreener', async () => {
    expect(lipn.capabilities.trainable).toBe(true);
    await expect(builtinRegistry().resolve('prescreener', { name: 'lipn', rateLossweight: 1 }, { key: 'model.prescreener' })).rejects.toThrowErrorMatchingInlineSnapshot(`[ConfigError: model.prescreener.rateLossweight: unknown key (got 1). Allowed: maskLossWeight, rateLossWeight, rateOverAllClasses, targetRecall, recallOf, missWeight. Did you mean "rateLossWeight"?]`);
  });
  });
});
