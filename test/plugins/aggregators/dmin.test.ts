import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import dmin, { DminAggregator, DminOptions } from '../../../plugins/aggregators/dmin.js';
import crossEntropy from '../../../plugins/losses/cross-entropy.js';
import embeddingMse from '../../../plugins/losses/embedding-mse.js';
import logitKl from '../../../plugins/losses/logit-kl.js';
import keepRate from '../../../plugins/losses/keep-rate.js';
import clamInstance from '../../../plugins/losses/clam-instance.js';
import { Rng } from '../../../src/core/runtime/random.js';
import type { AggregatorOutput, Bag, ForwardIO, Loss, ModelOutput } from '../../../src/registry/index.js';
import { builtinRegistry } from '../../helpers/registry.js';
import { expectClose, formulaState, loadTorchLayout, modelContext, readFixture, toTorchLayout, useBackend, type FormulaEntry } from '../../helpers/hdmil.js';
import { readFile } from 'node:fs/promises';
import { readSafetensors } from '../../../src/core/nn/safetensors.js';
import { exportTorchState, importTorchState } from '../../../src/core/nn/state-dict.js';

interface DminCase {
  readonly numClasses: number;
  readonly label: number;
  readonly n: number;
  readonly dim: number;
  readonly hiddenDim: number;
  readonly attnDim: number;
  readonly degree: number;
  readonly kSample: number;
  readonly subtyping: boolean;
  readonly tau: number;
  readonly gamma: number;
  readonly r: number;
  readonly spec: FormulaEntry[];
  readonly x: number[];
  readonly gumbel1: number[];
  readonly gumbel2: number[];
  readonly eval: { logits: number[]; attention: number[]; embedding: number[] };
  readonly evalKeep: { mask: number[]; logits: number[]; attention: number[] };
  readonly train: {
    teacherLogits: number[];
    studentLogits: number[];
    teacherEmbedding: number[];
    studentEmbedding: number[];
    keepRate: number;
    gate: number[];
    terms: Record<'ce' | 'clu' | 'mse' | 'kl' | 'rate', number>;
    total: number;
  };
  readonly grads: Record<string, number[]>;
}

interface DminFixture {
  readonly binary: DminCase;
  readonly threeClass: DminCase;
  readonly tinyCheckpoint: { dim: number; hiddenDim: number; attnDim: number; numClasses: number; degree: number; x: number[]; logits: number[] };
}

const HDMIL_WEIGHTS = { ce: 0.7, clu: 0.3, mse: 0.5, kl: 0.5, rate: 2 } as const;

function buildFromCase(fx: DminCase, overrides: Partial<DminOptions> = {}): DminAggregator {
  const ctx = modelContext({ inputDim: fx.dim, numClasses: fx.numClasses, classifier: 'cka', classifierOptions: { degree: fx.degree } });
  const options = DminOptions.parse({
    hiddenDim: fx.hiddenDim, attnDim: fx.attnDim, dropout: 0, kSample: fx.kSample, subtyping: fx.subtyping, tau: fx.tau, gamma: fx.gamma, ...overrides,
  });
  const model = new DminAggregator(options, ctx);
  loadTorchLayout(model, formulaState(fx.spec));
  return model;
}

function bagOf(fx: DminCase, extra: Partial<Bag> = {}): Bag {
  return { slideId: 'fixture', features: tf.tensor2d(fx.x, [fx.n, fx.dim]), ...extra };
}

function trainingIO(fx: DminCase): ForwardIO {
  return {
    training: true,
    rng: new Rng(1),
    injected: { gumbel1: tf.tensor2d(fx.gumbel1, [fx.n, fx.numClasses]), gumbel2: tf.tensor2d(fx.gumbel2, [fx.n, fx.numClasses]) },
  };
}

function lossesFor(fx: DminCase): Record<keyof typeof HDMIL_WEIGHTS, Loss> {
  return {
    ce: crossEntropy.create(crossEntropy.options.parse({}), { numClasses: fx.numClasses }),
    clu: clamInstance.create(clamInstance.options.parse({}), { numClasses: fx.numClasses }),
    mse: embeddingMse.create(embeddingMse.options.parse({}), { numClasses: fx.numClasses }),
    kl: logitKl.create(logitKl.options.parse({}), { numClasses: fx.numClasses }),
    rate: keepRate.create(keepRate.options.parse({ target: fx.r }), { numClasses: fx.numClasses }),
  };
}

/** The HDMIL total (0.7/0.3/0.5/0.5/2) and its unweighted terms. */
function hdmilLoss(fx: DminCase, out: AggregatorOutput): { total: tf.Scalar; terms: Record<string, tf.Scalar> } {
  const output: ModelOutput = { ...out, logits: out.logits as tf.Tensor2D };
  const target = { label: fx.label, numClasses: fx.numClasses };
  const losses = lossesFor(fx);
  const terms: Record<string, tf.Scalar> = {};
  for (const name of Object.keys(HDMIL_WEIGHTS) as Array<keyof typeof HDMIL_WEIGHTS>) {
    const term = losses[name].compute(output, target)[''];
    if (!term) throw new Error(`no ${name} term`);
    terms[name] = term;
  }
  const total = tf.addN(Object.entries(terms).map(([name, t]) => tf.mul(t, HDMIL_WEIGHTS[name as keyof typeof HDMIL_WEIGHTS]))) as tf.Scalar;
  return { total, terms };
}

beforeAll(async () => {
  await useBackend('cpu');
});

describe('aggregator/dmin', () => {
  it('has the original HDMIL state_dict keys, shapes and 827,906 parameters (C = 2, K = 12)', () => {
    const model = new DminAggregator(DminOptions.parse({}), modelContext({ inputDim: 1024, numClasses: 2 }));
    const torchShapes = Object.fromEntries(model.namedTensors().map(([key, entry]) => [key, entry.torch.perm ? entry.torch.perm.map((axis) => entry.variable.shape[axis]) : entry.variable.shape]));
    // docs/methods/state-dict-keys.md#dmin (KAN_CLAM_MB_v4).
    expect(torchShapes).toEqual({
      'attention_net.0.weight': [512, 1024],
      'attention_net.0.bias': [512],
      'attention_net.3.attention_a.0.weight': [256, 512],
      'attention_net.3.attention_a.0.bias': [256],
      'attention_net.3.attention_b.0.weight': [256, 512],
      'attention_net.3.attention_b.0.bias': [256],
      'attention_net.3.attention_c.weight': [2, 256],
      'attention_net.3.attention_c.bias': [2],
      'classifiers.0.act_fun.0.cheby_coeffs': [512, 1, 13],
      'classifiers.1.act_fun.0.cheby_coeffs': [512, 1, 13],
      'instance_classifiers.0.act_fun.0.cheby_coeffs': [512, 2, 13],
      'instance_classifiers.1.act_fun.0.cheby_coeffs': [512, 2, 13],
      'instance_loss_fn.labels': [2],
    });
    const count = model.trainableVariables().reduce((sum, v) => sum + v.size, 0);
    expect(count).toBe(827_906);
    model.dispose();
  });

  describe.each([
    ['cpu', 'binary'],
    ['cpu', 'threeClass'],
    ['wasm', 'binary'],
    ['wasm', 'threeClass'],
  ] as const)('parity with the torch reference on %s (%s)', (backend, which) => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it('eval forward: logits and per-class attention within 1e-4', async () => {
      const fx = (await readFixture<DminFixture>('hdmil-dmin.json'))[which];
      const model = buildFromCase(fx);
      const bag = bagOf(fx);
      const out = model.forward(bag, { training: false, rng: new Rng(0) });
      expectClose(out.logits?.dataSync() ?? [], fx.eval.logits, 1e-4, 1e-4, 'logits');
      expectClose(out.instanceScores?.dataSync() ?? [], fx.eval.attention, 1e-4, 1e-4, 'attention');
      expectClose(out.embedding.dataSync(), fx.eval.embedding, 1e-4, 1e-4, 'embedding');
      tf.dispose([bag.features, out as unknown as tf.Tensor[]]);
      model.dispose();
    });

    it('eval forward with a pre-screener mask (one class empty → CKA(0)) within 1e-4', async () => {
      const fx = (await readFixture<DminFixture>('hdmil-dmin.json'))[which];
      const model = buildFromCase(fx);
      const bag = bagOf(fx, { views: { keepMask: tf.tensor2d(fx.evalKeep.mask, [fx.n, fx.numClasses]) } });
      const out = model.forward(bag, { training: false, rng: new Rng(0) });
      expectClose(out.logits?.dataSync() ?? [], fx.evalKeep.logits, 1e-4, 1e-4, 'logits');
      expectClose(out.instanceScores?.dataSync() ?? [], fx.evalKeep.attention, 1e-4, 1e-4, 'attention');
      tf.dispose([bag.features, bag.views?.keepMask as tf.Tensor, out as unknown as tf.Tensor[]]);
      model.dispose();
    });

    it('one training step with injected Gumbel draws: same outputs, loss terms, total and gradients', async () => {
      const fx = (await readFixture<DminFixture>('hdmil-dmin.json'))[which];
      const model = buildFromCase(fx);
      const bag = bagOf(fx, { label: fx.label });
      const io = trainingIO(fx);
      const kept: Record<string, tf.Tensor> = {};
      const named = model.namedTensors().filter(([, e]) => e.trainable);
      const { value, grads } = tf.variableGrads(() => {
        const out = model.forward(bag, io);
        const { total, terms } = hdmilLoss(fx, out);
        for (const key of ['teacherLogits', 'studentLogits', 'teacherEmbedding', 'studentEmbedding', 'keepRate', 'gateMask'] as const) kept[key] = tf.keep(out.extras?.[key] as tf.Tensor);
        for (const [name, term] of Object.entries(terms)) kept[`term:${name}`] = tf.keep(term);
        return total;
      }, named.map(([, e]) => e.variable));
      const t = fx.train;
      expectClose(kept.teacherLogits?.dataSync() ?? [], t.teacherLogits, 1e-5, 1e-4, 'z_tea');
      expectClose(kept.studentLogits?.dataSync() ?? [], t.studentLogits, 1e-5, 1e-4, 'z_stu');
      expectClose(kept.teacherEmbedding?.dataSync() ?? [], t.teacherEmbedding, 1e-5, 1e-4, 'E_tea');
      expectClose(kept.studentEmbedding?.dataSync() ?? [], t.studentEmbedding, 1e-5, 1e-4, 'E_stu');
      expectClose(kept.gateMask?.dataSync() ?? [], t.gate, 1e-6, 0, 'hard gate');
      expectClose(kept.keepRate?.dataSync() ?? [], [t.keepRate], 1e-6, 1e-6, 'keep rate');
      for (const name of Object.keys(HDMIL_WEIGHTS) as Array<keyof typeof HDMIL_WEIGHTS>) {
        expectClose(kept[`term:${name}`]?.dataSync() ?? [], [t.terms[name]], 1e-5, 1e-4, `term ${name}`);
      }
      expectClose(value.dataSync(), [t.total], 1e-5, 1e-4, 'total loss');
      expect(named.map(([key]) => key)).toEqual(expect.arrayContaining(Object.keys(fx.grads)));
      for (const [key, entry] of named) {
        const grad = grads[entry.variable.name];
        const expected = fx.grads[key];
        if (expected) expectClose(toTorchLayout(grad as tf.Tensor, entry.torch.perm), expected, 1e-5, 1e-3, `d/d ${key}`);
        // Parameters torch leaves without a gradient (an instance classifier no loss term used) get none or zeros here.
        else expect(grad ? Array.from(grad.dataSync()).every((v) => v === 0) : true, `${key} has no gradient`).toBe(true);
      }
      tf.dispose([value, ...Object.values(grads), ...Object.values(kept), bag.features, ...Object.values(io.injected ?? {})]);
      model.dispose();
    });
  });

  describe('checkpoint exchange', () => {
    beforeAll(async () => {
      await useBackend('cpu');
    });

    it('loads a PyTorch-written .safetensors with the original HDMIL keys and reproduces its eval logits', async () => {
      const fx = (await readFixture<DminFixture>('hdmil-dmin.json')).tinyCheckpoint;
      const file = new URL('../../reference/fixtures/hdmil-dmin-tiny.safetensors', import.meta.url);
      const { tensors } = readSafetensors(new Uint8Array(await readFile(file)));
      expect(tensors['instance_loss_fn.labels']?.dtype).toBe('I64');
      const model = new DminAggregator(DminOptions.parse({ hiddenDim: fx.hiddenDim, attnDim: fx.attnDim }), modelContext({ inputDim: fx.dim, numClasses: fx.numClasses, classifierOptions: { degree: fx.degree } }));
      importTorchState({ aggregator: model }, tensors, 'hdmil-dmin-tiny.safetensors');
      const features = tf.tensor2d(fx.x, [fx.x.length / fx.dim, fx.dim]);
      const out = model.forward({ slideId: 'tiny', features }, { training: false, rng: new Rng(0) });
      expectClose(out.logits?.dataSync() ?? [], fx.logits, 1e-5, 1e-4, 'logits after import');
      // Export gives back the same keys, dtypes and values (int64 labels included).
      const exported = await exportTorchState({ aggregator: model });
      expect(Object.keys(exported).sort()).toEqual(Object.keys(tensors).sort());
      for (const [key, record] of Object.entries(tensors)) {
        expect(exported[key]?.dtype, key).toBe(record.dtype);
        expect(Array.from(exported[key]?.data ?? [], Number), key).toEqual(Array.from(record.data, Number));
      }
      tf.dispose([features, out as unknown as tf.Tensor[]]);
      model.dispose();
    });

    it('names every missing key when the checkpoint belongs to another configuration', async () => {
      const file = new URL('../../reference/fixtures/hdmil-dmin-tiny.safetensors', import.meta.url);
      const { tensors } = readSafetensors(new Uint8Array(await readFile(file)));
      const threeClass = new DminAggregator(DminOptions.parse({ hiddenDim: 6, attnDim: 4 }), modelContext({ inputDim: 8, numClasses: 3, classifierOptions: { degree: 3 } }));
      expect(() => importTorchState({ aggregator: threeClass }, tensors, 'hdmil-dmin-tiny.safetensors')).toThrow(/missing 2: classifiers\.2\.act_fun\.0\.cheby_coeffs/);
      threeClass.dispose();
    });

    it('maps linear heads to CLAM-MB keys (classifiers.<c>.weight)', () => {
      const model = new DminAggregator(DminOptions.parse({ hiddenDim: 4, attnDim: 3 }), modelContext({ inputDim: 5, numClasses: 2, classifier: 'linear' }));
      return exportTorchState({ aggregator: model }).then((state) => {
        expect(Object.keys(state)).toEqual(expect.arrayContaining(['classifiers.0.weight', 'classifiers.1.bias', 'instance_classifiers.1.weight']));
        expect(state['classifiers.0.weight']?.shape).toEqual([1, 4]);
        model.dispose();
      });
    });
  });

  describe('traps', () => {
    beforeAll(async () => {
      await useBackend('cpu');
    });

    it('normalises the student ONCE over all instances and classes in training, per class at eval', async () => {
      const fx = (await readFixture<DminFixture>('hdmil-dmin.json')).threeClass;
      const model = buildFromCase(fx);
      const bag = bagOf(fx, { label: fx.label });
      const io = trainingIO(fx);
      const train = model.forward(bag, io);
      const student = train.extras?.studentAttention as tf.Tensor2D; // [C, N]
      const perClassTrain = tf.sum(student, 1).arraySync() as number[];
      expect(tf.sum(student).dataSync()[0]).toBeCloseTo(1, 5); // Σ_c Σ_n A_stu = 1
      expect(perClassTrain.every((s) => s < 0.999)).toBe(true); // no class sums to 1 on its own
      // Recompute the global normaliser by hand from S and the gate: A_stu[c,n] = exp(S[n,c]) M[n,c] / Σ exp(S) M.
      const s = train.extras?.attentionLogits as tf.Tensor2D;
      const gate = train.extras?.gateMask as tf.Tensor2D;
      const byHand = tf.tidy(() => {
        const w = tf.mul(tf.exp(s), gate);
        return tf.transpose(tf.div(w, tf.sum(w))).dataSync();
      });
      expectClose(student.dataSync(), byHand, 1e-6, 1e-4, 'A_stu');
      const evaluation = model.forward(bagOf(fx), { training: false, rng: new Rng(0) });
      const perClassEval = tf.sum(evaluation.instanceScores as tf.Tensor2D, 1).arraySync() as number[];
      expectClose(perClassEval, perClassEval.map(() => 1), 1e-5, 0, 'eval rows sum to 1');
      tf.dispose([bag.features, train as unknown as tf.Tensor[], evaluation as unknown as tf.Tensor[], ...Object.values(io.injected ?? {})]);
      model.dispose();
    });

    it('computes the keep rate over classes 0 and 1 only, even with three classes', () => {
      const n = 6;
      const model = new DminAggregator(DminOptions.parse({ hiddenDim: 4, attnDim: 3, dropout: 0, kSample: 0 }), modelContext({ inputDim: 5, numClasses: 3, classifierOptions: { degree: 2 } }));
      const allModel = new DminAggregator(DminOptions.parse({ hiddenDim: 4, attnDim: 3, dropout: 0, kSample: 0, rateOverAllClasses: true }), modelContext({ inputDim: 5, numClasses: 3, classifierOptions: { degree: 2 } }));
      const features = tf.randomNormal([n, 5], 0, 1, 'float32', 3) as tf.Tensor2D;
      // Noise far beyond any logit: class 2 keeps instances 0-3, classes 0/1 keep only instance 5 (class 1).
      const big = 60;
      const g1 = tf.tensor2d(Array.from({ length: n }, (_, i) => [-big, i === 5 ? big : -big, i < 4 ? big : -big]));
      const g2 = tf.zeros([n, 3]);
      const io = { training: true, rng: new Rng(0), injected: { gumbel1: g1, gumbel2: g2 } };
      const first = model.forward({ slideId: 'r', features }, io);
      const all = allModel.forward({ slideId: 'r', features }, io);
      expect(first.extras?.keepRate?.dataSync()[0]).toBeCloseTo(1 / 6, 6); // only instance 5
      expect(all.extras?.keepRate?.dataSync()[0]).toBeCloseTo(5 / 6, 6); // AHDMIL's union over all classes
      tf.dispose([features, g1, g2, first as unknown as tf.Tensor[], all as unknown as tf.Tensor[]]);
      model.dispose();
      allModel.dispose();
    });

    it('passes the sigmoid gradient through the hard gate (straight-through)', async () => {
      const fx = (await readFixture<DminFixture>('hdmil-dmin.json')).binary;
      const model = buildFromCase(fx, { kSample: 0 });
      const bag = bagOf(fx);
      const g1 = tf.tensor2d(fx.gumbel1, [fx.n, 2]);
      const g2 = tf.tensor2d(fx.gumbel2, [fx.n, 2]);
      // d rate / d g1[n,c] = (1/N)·P(1-P)/τ: the union's value is binary, its gradient that of Σ_c P (c ∈ {0,1}).
      const rateOf = (noise: tf.Tensor): tf.Scalar => model.forward(bag, { training: true, rng: new Rng(0), injected: { gumbel1: noise, gumbel2: g2 } }).extras?.keepRate as tf.Scalar;
      const gradient = tf.grad(rateOf)(g1).dataSync();
      const expected = tf.tidy(() => {
        const s = model.gateLogits(bag, { training: false, rng: new Rng(0) });
        const p = tf.sigmoid(tf.div(tf.sub(tf.add(s, g1), g2), fx.tau));
        return tf.div(tf.mul(p, tf.sub(1, p)), fx.tau * fx.n).dataSync();
      });
      expectClose(gradient, expected, 1e-7, 1e-4, 'straight-through gradient');
      expect(Array.from(gradient).every((v) => v > 0)).toBe(true); // a hard step would give 0 everywhere
      tf.dispose([bag.features, g1, g2]);
      model.dispose();
    });

    it('gives an empty eval class the zero embedding, so its logit is CKA(0)', async () => {
      const fx = (await readFixture<DminFixture>('hdmil-dmin.json')).binary;
      const model = buildFromCase(fx);
      const bag = bagOf(fx, { views: { keepMask: tf.zeros([fx.n, 2]) as tf.Tensor2D } });
      const out = model.forward(bag, { training: false, rng: new Rng(0) });
      expect(Array.from(out.embedding.dataSync()).every((v) => v === 0)).toBe(true);
      const zero = tf.zeros([1, fx.hiddenDim]) as tf.Tensor2D;
      const ckaZero = [0, 1].map((c) => {
        const classifier = (model as unknown as { bagClassifiers: { at(i: number): { forward(x: tf.Tensor2D, io: ForwardIO): tf.Tensor2D } } }).bagClassifiers.at(c);
        return classifier.forward(zero, { training: false, rng: new Rng(0) }).dataSync()[0] as number;
      });
      expectClose(out.logits?.dataSync() ?? [], ckaZero, 1e-6, 1e-5, 'CKA(0)');
      tf.dispose([bag.features, bag.views?.keepMask as tf.Tensor, zero, out as unknown as tf.Tensor[]]);
      model.dispose();
    });

    it('treats an all-empty student selection as a zero student embedding (finite loss)', async () => {
      const fx = (await readFixture<DminFixture>('hdmil-dmin.json')).binary;
      const model = buildFromCase(fx);
      const bag = bagOf(fx, { label: fx.label });
      const closed = tf.fill([fx.n, 2], -60);
      const io = { training: true, rng: new Rng(0), injected: { gumbel1: closed, gumbel2: tf.zeros([fx.n, 2]) } };
      const out = model.forward(bag, io);
      expect(Array.from(out.extras?.studentEmbedding?.dataSync() ?? [1]).every((v) => v === 0)).toBe(true);
      expect(out.extras?.keepRate?.dataSync()[0]).toBe(0);
      const { total } = hdmilLoss(fx, out);
      expect(Number.isFinite(total.dataSync()[0])).toBe(true);
      tf.dispose([bag.features, total, out as unknown as tf.Tensor[], ...Object.values(io.injected)]);
      model.dispose();
    });

    it('screenedKeep prescreener-and-gate: a screened bag holding every gate-kept row answers as the full bag; the default pools the mask', async () => {
      const fx = (await readFixture<DminFixture>('hdmil-dmin.json')).binary;
      const gated = buildFromCase(fx, { screenedKeep: 'prescreener-and-gate' });
      const original = buildFromCase(fx);
      const eval0 = { training: false, rng: new Rng(0) };
      const full = gated.forward(bagOf(fx), eval0);
      const gate = Array.from(full.extras?.gateMask?.dataSync() ?? []);
      const rows = Array.from({ length: fx.n }, (_, n) => n);
      // The case must exercise both sides: rows class 0's gate keeps, and rows it drops that the pre-screener keeps anyway.
      expect(rows.filter((n) => (gate[2 * n] as number) > 0).length).toBeGreaterThan(0);
      expect(rows.filter((n) => (gate[2 * n] as number) === 0).length).toBeGreaterThan(0);
      const screenedBag = (kept: number[], mask: number[]): Bag => ({
        slideId: 'screened',
        features: tf.tensor2d(kept.flatMap((n) => fx.x.slice(n * fx.dim, (n + 1) * fx.dim)), [kept.length, fx.dim]),
        views: { keepMask: tf.tensor2d(mask, [kept.length, 2]) },
      });
      // Every row read, each kept by the pre-screener in branch 0 only: a mask unlike the gate in both classes.
      const read = rows;
      const branch0 = read.flatMap(() => [1, 0]);
      const withGate = gated.forward(screenedBag(read, branch0), eval0);
      expectClose(withGate.logits?.dataSync() ?? [], Array.from(full.logits?.dataSync() ?? []), 1e-6, 1e-6, 'screened = full');
      // HDMIL's default pools the pre-screener's mask instead: branch 1 is empty, branch 0 holds rows its gate drops.
      const withMask = original.forward(screenedBag(read, branch0), eval0);
      expect(Math.abs((withMask.logits?.dataSync()[1] as number) - (full.logits?.dataSync()[1] as number))).toBeGreaterThan(1e-3);
      // A gate-kept row the pre-screener misses is missing from the pool: the answer moves.
      const firstKept = rows.find((n) => (gate[2 * n] as number) > 0 || (gate[2 * n + 1] as number) > 0);
      const missing = read.filter((n) => n !== firstKept);
      const missed = gated.forward(screenedBag(missing, missing.flatMap(() => [1, 1])), eval0);
      const diff = Array.from(missed.logits?.dataSync() ?? []).map((v, c) => Math.abs(v - (full.logits?.dataSync()[c] as number)));
      expect(Math.max(...diff)).toBeGreaterThan(1e-4);
      tf.dispose([full, withGate, withMask, missed] as unknown as tf.Tensor[]);
      gated.dispose();
      original.dispose();
    });

    it('eval keeps S > 0 strictly and ignores noise', async () => {
      const fx = (await readFixture<DminFixture>('hdmil-dmin.json')).binary;
      const model = buildFromCase(fx);
      const bag = bagOf(fx);
      const io = { training: false, rng: new Rng(0), injected: { gumbel1: tf.fill([fx.n, 2], 60), gumbel2: tf.zeros([fx.n, 2]) } };
      const out = model.forward(bag, io);
      const s = model.gateLogits(bag, { training: false, rng: new Rng(0) });
      expectClose(out.extras?.gateMask?.dataSync() ?? [], Array.from(s.dataSync(), (v) => (v > 0 ? 1 : 0)), 0, 0, 'K_c = {S > 0}');
      tf.dispose([bag.features, s, out as unknown as tf.Tensor[], ...Object.values(io.injected)]);
      model.dispose();
    });
  });

  describe('selfDistill: false', () => {
    beforeAll(async () => {
      await useBackend('cpu');
    });

    it('runs the teacher only: no student extras, so the distillation and rate losses have no term', async () => {
      const fx = (await readFixture<DminFixture>('hdmil-dmin.json')).binary;
      const teacherOnly = buildFromCase(fx, { selfDistill: false });
      const full = buildFromCase(fx);
      const bag = bagOf(fx, { label: fx.label });
      const a = teacherOnly.forward(bag, trainingIO(fx));
      const b = full.forward(bag, trainingIO(fx));
      expect(Object.keys(a.extras ?? {}).sort()).toEqual(['attentionLogits', 'instanceLogits', 'instanceTargets', 'instanceWeights', 'teacherEmbedding', 'teacherLogits']);
      expectClose(a.logits?.dataSync() ?? [], b.logits?.dataSync() ?? [], 0, 0, 'teacher logits unchanged');
      const output = { ...a, logits: a.logits as tf.Tensor2D };
      const losses = lossesFor(fx);
      for (const name of ['mse', 'kl', 'rate'] as const) expect(losses[name].compute(output, { label: fx.label, numClasses: 2 })).toEqual({});
      tf.dispose([bag.features, a as unknown as tf.Tensor[], b as unknown as tf.Tensor[]]);
      teacherOnly.dispose();
      full.dispose();
    });
  });

  describe('inputNorm: standardise (docs/methods/hdmil.md#input-standardisation)', () => {
    beforeAll(async () => {
      await useBackend('cpu');
    });

    const make = (inputNorm: 'none' | 'standardise'): DminAggregator =>
      new DminAggregator(DminOptions.parse({ hiddenDim: 8, attnDim: 4, kSample: 2, dropout: 0, inputNorm }), modelContext({ inputDim: 3, numClasses: 2, classifierOptions: { degree: 3 } }));
    // Two bags of 4 instances with very different scales per column (column 2 nearly constant, as a random-weight
    // encoder's features are), so the statistics are easy to get wrong.
    const bagA = [[1, 10, 0.05], [2, 12, 0.051], [3, 9, 0.049], [6, 11, 0.05]];
    const bagB = [[0, 20, 0.052], [1, 18, 0.05], [5, 21, 0.053], [2, 19, 0.051]];
    /** Mean and biased variance per column of all rows: for equal-sized bags this is what pooling the bags must give. */
    function columnMoments(rows: number[][]): { mean: number[]; variance: number[] } {
      const mean = [0, 1, 2].map((j) => rows.reduce((a, r) => a + (r[j] as number), 0) / rows.length);
      const variance = [0, 1, 2].map((j) => rows.reduce((a, r) => a + ((r[j] as number) - (mean[j] as number)) ** 2, 0) / rows.length);
      return { mean, variance };
    }
    const buffers = (model: DminAggregator): Record<string, number[]> =>
      Object.fromEntries(model.namedTensors().filter(([key]) => key.startsWith('input_norm.')).map(([key, entry]) => [key, Array.from(entry.variable.dataSync())]));

    it('adds only input_norm buffers (no parameters); the default keeps HDMIL\'s keys', () => {
      const plain = make('none');
      const standardised = make('standardise');
      const keys = (m: DminAggregator): string[] => m.namedTensors().map(([key]) => key);
      expect(keys(standardised).filter((k) => !keys(plain).includes(k))).toEqual(['input_norm.running_mean', 'input_norm.running_var', 'input_norm.num_batches_tracked']);
      expect(keys(plain).some((k) => k.startsWith('input_norm'))).toBe(false);
      expect(standardised.trainableVariables().length).toBe(plain.trainableVariables().length);
      plain.dispose();
      standardised.dispose();
    });

    it('accumulates the pooled mean and variance of the training bags, and nothing at eval or from gateLogits', () => {
      const model = make('standardise');
      const a = tf.tensor2d(bagA);
      const b = tf.tensor2d(bagB);
      tf.dispose(model.forward({ slideId: 'a', features: a, label: 0 }, { training: true, rng: new Rng(1) }) as unknown as tf.Tensor[]);
      expectClose(buffers(model)['input_norm.running_mean'] ?? [], columnMoments(bagA).mean, 1e-6, 1e-5, 'mean after one bag');
      expectClose(buffers(model)['input_norm.running_var'] ?? [], columnMoments(bagA).variance, 1e-6, 1e-4, 'variance after one bag');
      tf.dispose(model.forward({ slideId: 'b', features: b, label: 1 }, { training: true, rng: new Rng(2) }) as unknown as tf.Tensor[]);
      const pooled = columnMoments([...bagA, ...bagB]);
      const after = buffers(model);
      expectClose(after['input_norm.running_mean'] ?? [], pooled.mean, 1e-6, 1e-5, 'pooled mean');
      expectClose(after['input_norm.running_var'] ?? [], pooled.variance, 1e-7, 1e-4, 'pooled variance');
      expect(after['input_norm.num_batches_tracked']).toEqual([2]);
      // Neither an eval forward nor LIPN's gate targets (gateLogits, DMIN frozen in train mode) move the statistics.
      tf.dispose(model.forward({ slideId: 'b', features: b }, { training: false, rng: new Rng(3) }) as unknown as tf.Tensor[]);
      tf.dispose(model.gateLogits({ slideId: 'b', features: b }, { training: true, rng: new Rng(4) }));
      expect(buffers(model)).toEqual(after);
      tf.dispose([a, b]);
      model.dispose();
    });

    it('feeds (x − μ) / σ to the same network at eval, whatever else is in the bag', () => {
      const model = make('standardise');
      const plain = make('none'); // same seed → same weights
      const a = tf.tensor2d(bagA);
      const b = tf.tensor2d(bagB);
      for (const [slideId, features] of [['a', a], ['b', b]] as const) {
        tf.dispose(model.forward({ slideId, features, label: 0 }, { training: true, rng: new Rng(1) }) as unknown as tf.Tensor[]);
      }
      const { mean, variance } = columnMoments([...bagA, ...bagB]);
      const standardised = tf.tensor2d(bagA.map((row) => row.map((v, j) => (v - (mean[j] as number)) / Math.sqrt(variance[j] as number))));
      const io = { training: false, rng: new Rng(0) };
      const got = model.forward({ slideId: 'a', features: a }, io);
      const want = plain.forward({ slideId: 'a', features: standardised }, io);
      expectClose(got.extras?.attentionLogits?.dataSync() ?? [], want.extras?.attentionLogits?.dataSync() ?? [], 1e-5, 1e-4, 'attention logits');
      expectClose(got.logits?.dataSync() ?? [], want.logits?.dataSync() ?? [], 1e-5, 1e-4, 'logits');
      // A screened bag (a subset) sees the same standardised rows: its attention logits are the full bag's rows.
      const subset = tf.slice(a, [1, 0], [2, 3]) as tf.Tensor2D;
      const part = model.forward({ slideId: 'a', features: subset }, io);
      expectClose(part.extras?.attentionLogits?.dataSync() ?? [], Array.from(got.extras?.attentionLogits?.dataSync() ?? []).slice(2, 6), 1e-6, 1e-5, 'subset rows');
      tf.dispose([a, b, standardised, subset, got as unknown as tf.Tensor[], want as unknown as tf.Tensor[], part as unknown as tf.Tensor[]]);
      model.dispose();
      plain.dispose();
    });
  });

  describe('contract', () => {
    beforeAll(async () => {
      await useBackend('cpu');
    });

    it('is invariant to instance order at eval', () => {
      const model = new DminAggregator(DminOptions.parse({ hiddenDim: 8, attnDim: 4 }), modelContext({ inputDim: 6, numClasses: 2, classifierOptions: { degree: 3 } }));
      const features = tf.randomNormal([9, 6], 0, 1, 'float32', 11) as tf.Tensor2D;
      const order = [3, 0, 8, 1, 7, 2, 6, 4, 5];
      const shuffled = tf.gather(features, order) as tf.Tensor2D;
      const io = { training: false, rng: new Rng(0) };
      const a = model.forward({ slideId: 'a', features }, io);
      const b = model.forward({ slideId: 'b', features: shuffled }, io);
      expectClose(b.logits?.dataSync() ?? [], a.logits?.dataSync() ?? [], 1e-6, 1e-5, 'permuted');
      tf.dispose([features, shuffled, a as unknown as tf.Tensor[], b as unknown as tf.Tensor[]]);
      model.dispose();
    });

    it('gives the same weights for the same seed and different ones for another', () => {
      const make = (seed: number): Float32Array => {
        const model = new DminAggregator(DminOptions.parse({ hiddenDim: 4, attnDim: 3 }), modelContext({ inputDim: 5, numClasses: 2, seed, classifierOptions: { degree: 2 } }));
        const values = Float32Array.from(model.trainableVariables().flatMap((v) => Array.from(v.dataSync())));
        model.dispose();
        return values;
      };
      expect(make(1)).toEqual(make(1));
      expect(make(1)).not.toEqual(make(2));
    });

    it('leaks no tensors over a training step with sampled noise and dropout', () => {
      const model = new DminAggregator(DminOptions.parse({ hiddenDim: 8, attnDim: 4, kSample: 2 }), modelContext({ inputDim: 6, numClasses: 2, classifierOptions: { degree: 3 } }));
      const features = tf.randomNormal([10, 6]) as tf.Tensor2D;
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() => {
        const out = model.forward({ slideId: 'x', features, label: 1 }, { training: true, rng: new Rng(4) });
        return tf.addN([tf.sum(out.logits as tf.Tensor), tf.sum(out.extras?.studentLogits as tf.Tensor), out.extras?.keepRate as tf.Scalar, tf.sum(out.extras?.instanceLogits as tf.Tensor)]) as tf.Scalar;
      }, model.trainableVariables());
      for (const [name, g] of Object.entries(grads)) expect(Number.isFinite(tf.tidy(() => tf.sum(tf.abs(g)).dataSync()[0] as number)), name).toBe(true);
      tf.dispose([value, ...Object.values(grads)]);
      expect(tf.memory().numTensors).toBe(before);
      features.dispose();
      model.dispose();
    });

    it('uses the configured classifier plugin for its heads (linear: classifiers.<c>.fc.*)', () => {
      const model = new DminAggregator(DminOptions.parse({ hiddenDim: 4, attnDim: 3 }), modelContext({ inputDim: 5, numClasses: 2, classifier: 'linear' }));
      const keys = model.namedTensors().map(([key]) => key);
      expect(keys).toContain('classifiers.1.fc.weight');
      expect(keys).toContain('instance_classifiers.0.fc.bias');
      model.dispose();
    });

    it('refuses a single-class task', () => {
      expect(() => new DminAggregator(DminOptions.parse({}), modelContext({ inputDim: 5, numClasses: 1 }))).toThrow(/at least 2 classes/);
    });

    it.each([
      [{ tau: 0 }, 'model.aggregator.tau'],
      [{ gamma: 1 }, 'model.aggregator.gamma'],
      [{ dropout: 1 }, 'model.aggregator.dropout'],
      [{ kSample: -1 }, 'model.aggregator.kSample'],
    ])('rejects invalid options %j at %s', async (options, keyPath) => {
      await expect(builtinRegistry().resolve('aggregator', { name: 'dmin', ...options }, { key: 'model.aggregator' })).rejects.toThrow(keyPath);
    });

    it('pins the message for a misspelt option', async () => {
      await expect(builtinRegistry().resolve('aggregator', { name: 'dmin', selfdistill: false }, { key: 'model.aggregator' })).rejects.toThrowErrorMatchingInlineSnapshot(`[ConfigError: model.aggregator.selfdistill: unknown key (got false). Allowed: hiddenDim, attnDim, dropout, selfDistill, tau, gamma, rateOverAllClasses, kSample, subtyping, init, inputNorm, screenedKeep. Did you mean "selfDistill"?]`);
    });

    it('declares what the losses need', () => {
      expect(dmin.capabilities.provides).toEqual(expect.arrayContaining(['teacherEmbedding', 'studentEmbedding', 'teacherLogits', 'studentLogits', 'keepRate']));
      expect(dmin.capabilities.ownsClassifier).toBe(true);
      expect(dmin.capabilities.gateLogits).toBe(true);
    });
  });
});
