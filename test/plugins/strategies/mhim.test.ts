// strategy/mhim against hand-computed values: the masked sets (each strategy, union, ceil counts, vote ties,
// decay), the EMA update, the consistency loss, the GRN bank update, the teacher getting no gradient, the teacher
// starting from the stage's weights, and the schedules continuing across a state round trip.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { Rng } from '../../../src/core/runtime/random.js';
import type { MilModel } from '../../../src/core/engine/model.js';
import type { Strategy, StrategyStep } from '../../../src/registry/index.js';
import mhimPlugin, { consistencyLoss, GlobalRecycleNetwork, MhimOptions, TeacherWeights } from '../../../plugins/strategies/mhim.js';
import { cosineMomentum, decayedRatio, maskByScore, mhimMask, rankedIndices, voteCandidates } from '../../../plugins/strategies/_shared/mhim-masking.js';
import { buildModel } from '../../helpers/zoo.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const identity = (k: number): number[] => Array.from({ length: k }, (_, i) => i);
const fixed = (order: number[]) => (k: number): number[] => {
  if (order.length !== k) throw new Error(`permutation of ${k} asked, ${order.length} given`);
  return order;
};
//               0    1    2    3    4    5    6    7    8    9
const SCORES = [0.1, 0.5, 0.3, 0.9, 0.2, 0.7, 0.4, 0.8, 0.6, 0.05];

describe('mhim masking (hand-computed sets)', () => {
  it('ranks by score with ties to the lower index', () => {
    expect(rankedIndices([0.2, 0.5, 0.5, 0.1], true)).toEqual([1, 2, 0, 3]);
    expect(rankedIndices([0.2, 0.5, 0.2, 0.1], false)).toEqual([3, 0, 2, 1]);
  });

  it('HAM: the ⌈N β_h⌉ highest', () => {
    expect(maskByScore([SCORES], 0.2, 1, true, identity)).toEqual([3, 7]);
    // ⌈10 · 0.15⌉ = 2, ⌈10 · 0.21⌉ = 3
    expect(maskByScore([SCORES], 0.21, 1, true, identity)).toEqual([3, 7, 5]);
  });

  it('randomly-HAM: ⌈N β_h / β_hr⌉ candidates, a random ⌈k β_hr⌉ of them', () => {
    // β_h 0.2, β_hr 0.5 → k = ⌈10 · 0.4⌉ = 4 candidates [3, 7, 5, 8]; ⌈4 · 0.5⌉ = 2 at permutation positions 2, 0.
    expect(maskByScore([SCORES], 0.2, 0.5, true, fixed([2, 0, 3, 1]))).toEqual([5, 3]);
    // β_h / β_hr = 1.5 > 1: all 10 are candidates (descending) and β_h is the subset ratio: ⌈10 · 0.3⌉ = 3.
    expect(maskByScore([SCORES], 0.3, 0.2, true, fixed([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]))).toEqual([9, 0, 4]);
  });

  it('low masking: the ⌈N β_l⌉ lowest; counts are float64 ceilings from the full N', () => {
    expect(maskByScore([SCORES], 0.15, 1, false, identity)).toEqual([9, 0]);
    // 100 · 0.07 = 7.000000000000001 in float64, so ⌈·⌉ = 8 (as the original computes it).
    const hundred = Array.from({ length: 100 }, (_, i) => i / 100);
    expect(maskByScore([hundred], 0.07, 1, false, identity)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('random masking: a random ⌈N β_r⌉ of all N (ascending-score candidate order)', () => {
    // candidates ascending: [9, 0, 4, 2, 6, 1, 8, 5, 7, 3]; ⌈10 · 0.3⌉ = 3 at permutation positions 1, 3, 9.
    expect(maskByScore([SCORES], 0.3, 0.001, false, fixed([1, 3, 9, 0, 2, 4, 5, 6, 7, 8]))).toEqual([0, 2, 3]);
  });

  it('fuses random, low and high by union; counts each from N; kept rows ascending', () => {
    const result = mhimMask([SCORES], { random: 0.2, low: 0.2, high: 0.2, highRandom: 1 }, { random: fixed([9, 0, 1, 2, 3, 4, 5, 6, 7, 8]), high: identity });
    // random: positions 9, 0 of [9,0,4,2,6,1,8,5,7,3] → [3, 9]; low: [9, 0]; high: [3, 7]; union [0, 3, 7, 9].
    expect(result.counts).toEqual({ random: 2, low: 2, high: 2 });
    expect(result.masked).toEqual([0, 3, 7, 9]);
    expect(result.kept).toEqual([1, 2, 4, 5, 6, 8]);
  });

  it('vote fusion over heads: most votes first, ties to the lower index', () => {
    const heads = [
      [0.9, 0.8, 0.1, 0.2, 0.3, 0.0], // top-2: 0, 1
      [0.1, 0.9, 0.8, 0.2, 0.3, 0.0], // top-2: 1, 2
      [0.1, 0.2, 0.3, 0.9, 0.0, 0.8], // top-2: 3, 5
    ];
    // votes: 0:1, 1:2, 2:1, 3:1, 5:1 → [1, then the lowest tied index 0].
    expect(voteCandidates(heads, 2, true)).toEqual([1, 0]);
    expect(maskByScore(heads, 2 / 6, 1, true, identity)).toEqual([1, 0]);
  });

  it('decays β_h by a half cosine over the stage and schedules m towards 1', () => {
    expect(decayedRatio(0.01, 0, 100)).toBe(0.01);
    expect(decayedRatio(0.01, 25, 100)).toBeCloseTo(0.005 * (1 + Math.SQRT1_2), 15);
    expect(decayedRatio(0.01, 50, 100)).toBeCloseTo(0.005, 15);
    expect(decayedRatio(0.01, 100, 100)).toBeCloseTo(0, 15);
    expect(cosineMomentum(0.9999, 0, 10)).toBeCloseTo(0.9999, 15);
    expect(cosineMomentum(0.9999, 5, 10)).toBeCloseTo(0.99995, 15);
    expect(cosineMomentum(0.9999, 10, 10)).toBeCloseTo(1, 15);
  });
});

describe('mhim teacher, losses and bank (hand-computed)', () => {
  it('EMA: θ_t ← m θ_t + (1 − m) θ_s exactly', () => {
    const student = tf.variable(tf.tensor2d([[3, 5]]));
    const teacher = new TeacherWeights([['w', student]]);
    teacher.pairs[0]?.teacher.assign(tf.tensor2d([[1, 2]]));
    teacher.ema(0.9);
    expect(Array.from(teacher.pairs[0]?.teacher.dataSync() ?? [])).toEqual([Math.fround(0.9 * 1 + 0.1 * 3), Math.fround(0.9 * 2 + 0.1 * 5)]);
    teacher.copyFromStudent();
    expect(Array.from(teacher.pairs[0]?.teacher.dataSync() ?? [])).toEqual([3, 5]);
    teacher.dispose();
    student.dispose();
  });

  it('consistency loss: cross-entropy of softmax(F_t/τ_t) against log softmax(F_s/τ_s), mean over rows', () => {
    const loss = tf.tidy(() => consistencyLoss(tf.tensor2d([[1, 0], [0, 0]]), tf.tensor2d([[0, 1], [2, 2]]), 0.1, 1).dataSync()[0] as number);
    const p1 = Math.exp(-10) / (1 + Math.exp(-10));
    const row1 = Math.log(1 + Math.E) - p1; // −[p0 · (−log(1+e)) + p1 · (1 − log(1+e))]
    const row2 = Math.log(2); // uniform target, uniform prediction
    expect(loss).toBeCloseTo((row1 + row2) / 2, 5);
  });

  it('GRN bank: G ← m_g G + (1 − m_g) Z, outside the gradient', () => {
    const grn = new GlobalRecycleNetwork(4, 2, 2, 0, new Rng(3));
    const before = Array.from(grn.bank.dataSync());
    for (const a of before) expect(Math.abs(a)).toBeLessThanOrEqual(Math.sqrt(6 / (768 + 4)));
    const z = tf.tensor2d([[1, 2, 3, 4], [5, 6, 7, 8]]);
    grn.updateBank(z, 0.75);
    const expected = before.map((g, i) => Math.fround(0.75 * g + 0.25 * (i + 1)));
    Array.from(grn.bank.dataSync()).forEach((g, i) => expect(g).toBeCloseTo(expected[i] as number, 6));
    expect(grn.namedTensors().find(([name]) => name === 'global_tokens')?.[1].trainable).toBe(false);
    z.dispose();
    grn.dispose();
  });
});

async function studentModel(aggregator: Record<string, unknown> & { name: string }): Promise<MilModel> {
  return buildModel({ inputDim: 6, numClasses: 2, aggregator, losses: { ce: { name: 'cross-entropy', weight: 1 } }, seed: 5 });
}

function makeStrategy(model: MilModel, options: Record<string, unknown>): Strategy & { readonly modules: Record<string, { namedTensors(): Array<[string, { variable: tf.Variable }]>; dispose(): void }> } {
  const create = mhimPlugin.create as (options: unknown, ctx: unknown) => ReturnType<typeof makeStrategy>;
  return create(MhimOptions.parse(options), { model, numClasses: 2, rng: new Rng(9), logger: silentLogger });
}

function stepOf(model: MilModel, features: tf.Tensor2D, globalStep = 0, injected?: Record<string, tf.Tensor>): StrategyStep {
  return {
    model, bag: { slideId: 'b', features, label: 1 }, label: 1, numClasses: 2,
    io: injected ? { training: true, rng: new Rng(2), injected } : { training: true, rng: new Rng(2) },
    isTraining: () => true, epoch: 0, stepInEpoch: globalStep, globalStep, stepsPerEpoch: 10, totalEpochs: 2,
  };
}

describe('mhim strategy on an abmil student', () => {
  const abmil = { name: 'abmil', projectDim: 4, attnDim: 3, gated: false, attnActivation: 'relu', attnBias: false, dropout: 0 };

  it('teacher starts as the stage\'s weights, receives no gradient, and the student\'s gradient treats F_t as a constant', async () => {
    const model = await studentModel(abmil);
    const strategy = makeStrategy(model, { maskRatioHigh: 0.25, alpha: 1, teacherMode: 'eval' });
    strategy.init?.(model);
    const teacherTensors = strategy.modules['teacher']?.namedTensors() ?? [];
    const studentTensors = [...model.aggregator.namedTensors('aggregator.'), ...(model.classifier?.namedTensors('classifier.') ?? [])];
    expect(teacherTensors.map(([n]) => n)).toEqual(studentTensors.map(([n]) => n));
    for (const [i, [, entry]] of teacherTensors.entries()) expect(Array.from(entry.variable.dataSync())).toEqual(Array.from(studentTensors[i]?.[1].variable.dataSync() ?? []));

    // Move the student away from the teacher so the two differ, as after some steps.
    for (const [, entry] of studentTensors) entry.variable.assign(tf.tidy(() => tf.add(entry.variable, 0.05)));
    const x = tf.tensor2d(Array.from({ length: 8 * 6 }, (_, i) => Math.sin(i * 0.37)), [8, 6]);
    const trainable = studentTensors.map(([, e]) => e.variable);
    const teacherVars = teacherTensors.map(([, e]) => e.variable);
    const { value, grads } = tf.variableGrads(() => {
      const step = stepOf(model, x);
      const out = strategy.forward?.(step) as NonNullable<ReturnType<NonNullable<Strategy['forward']>>>;
      const { total } = model.losses(out, 1, 2);
      return tf.add(total, strategy.lossTerms?.(step, out)['consistency'] as tf.Scalar) as tf.Scalar;
    }, [...trainable, ...teacherVars]);
    for (const v of teacherVars) expect(grads[v.name], `teacher ${v.name} has no gradient`).toBeFalsy();
    const metrics = strategy.stepMetrics?.(stepOf(model, x), undefined) ?? {};
    expect(metrics).toMatchObject({ masked_high: 2, masked: 2, masked_low: 0, masked_random: 0, ratio_high: 0.25, teacher_rate: 0.9999 });

    // By hand: teacher attention (teacher weights), top-2 masked, student on the kept rows, F_t as a constant.
    const teacherValues = teacherVars.map((v) => tf.clone(v));
    const studentValues = trainable.map((v) => tf.clone(v));
    trainable.forEach((v, i) => v.assign(teacherValues[i] as tf.Tensor));
    const [attention, teacherFeature] = tf.tidy(() => {
      const out = model.aggregator.forward({ slideId: 'b', features: x }, { training: false, rng: new Rng(0) });
      return [Array.from(out.instanceScores?.dataSync() ?? []), tf.keep(out.embedding)];
    });
    trainable.forEach((v, i) => v.assign(studentValues[i] as tf.Tensor));
    const masked = rankedIndices(attention, true).slice(0, 2);
    const kept = Array.from({ length: 8 }, (_, i) => i).filter((i) => !masked.includes(i));
    const byHand = tf.variableGrads(() => {
      const out = model.forward({ slideId: 'b', features: tf.gather(x, kept) as tf.Tensor2D }, { training: true, rng: new Rng(2) });
      return tf.add(model.losses(out, 1, 2).total, consistencyLoss(teacherFeature, out.embedding, 0.1, 1)) as tf.Scalar;
    }, trainable);
    expect(value.dataSync()[0]).toBeCloseTo(byHand.value.dataSync()[0] as number, 5);
    for (const v of trainable) {
      const a = Array.from(grads[v.name]?.dataSync() ?? []);
      const b = Array.from(byHand.grads[v.name]?.dataSync() ?? []);
      expect(a.length).toBe(b.length);
      a.forEach((g, i) => expect(g).toBeCloseTo(b[i] as number, 5));
    }
    tf.dispose([value, teacherFeature, ...Object.values(grads), byHand.value, ...Object.values(byHand.grads), ...teacherValues, ...studentValues, x]);
    strategy.dispose?.();
    strategy.modules['teacher']?.dispose();
    model.dispose();
  });

  it('the teacher moves by the EMA after each update, with the cosine rate of the global step; state round trip keeps the schedule', async () => {
    const model = await studentModel(abmil);
    const strategy = makeStrategy(model, { momentum: 0.9, momentumSchedule: 'cosine', maskRatioHigh: 0.2, decayHigh: true });
    strategy.init?.(model);
    const x = tf.tensor2d(Array.from({ length: 10 * 6 }, (_, i) => Math.cos(i * 0.11)), [10, 6]);
    const step = stepOf(model, x, 5); // T = 10 · 2 = 20; i = 5
    tf.tidy(() => {
      strategy.forward?.(step);
    });
    const metrics = strategy.stepMetrics?.(step, undefined) ?? {};
    expect(metrics['ratio_high']).toBeCloseTo(0.5 * 0.2 * (1 + Math.cos(Math.PI / 4)), 12);
    expect(metrics['masked_high']).toBe(Math.ceil(10 * 0.5 * 0.2 * (1 + Math.cos(Math.PI / 4))));
    const m = 1 + 0.5 * (0.9 - 1) * (1 + Math.cos(Math.PI / 4));
    expect(metrics['teacher_rate']).toBeCloseTo(m, 12);
    const [name, studentEntry] = model.aggregator.namedTensors('aggregator.')[0] as [string, { variable: tf.Variable }];
    const teacherEntry = strategy.modules['teacher']?.namedTensors().find(([n]) => n === name)?.[1];
    const teacherBefore = Array.from(teacherEntry?.variable.dataSync() ?? []);
    studentEntry.variable.assign(tf.tidy(() => tf.add(studentEntry.variable, 1)));
    strategy.afterUpdate?.({ globalStep: 5, epoch: 0 });
    const expected = teacherBefore.map((t) => Math.fround(m * t + (1 - m) * (t + 1)));
    Array.from(teacherEntry?.variable.dataSync() ?? []).forEach((t, i) => expect(t).toBeCloseTo(expected[i] as number, 5));

    const state = JSON.parse(JSON.stringify(strategy.state?.())) as Record<string, unknown>;
    expect(state).toEqual({ emaUpdates: 1, stepsPerEpoch: 10, totalEpochs: 2 });
    const resumed = makeStrategy(model, { momentum: 0.9, momentumSchedule: 'cosine', maskRatioHigh: 0.2, decayHigh: true });
    resumed.loadState?.(state);
    expect(resumed.state?.()).toEqual(state);
    // After a resume the rate of step 15 comes from the restored iteration count, without a forward first.
    expect((resumed as unknown as { momentumAt(i: number): number }).momentumAt(15)).toBeCloseTo(1 + 0.5 * (0.9 - 1) * (1 + Math.cos((Math.PI * 15) / 20)), 12);
    for (const s of [strategy, resumed]) {
      s.dispose?.();
      for (const module of Object.values(s.modules)) module.dispose();
    }
    x.dispose();
    model.dispose();
  });

  it('v2 with GRN: class-aware scores, ⌊N′ρ⌋ rows passed plus k tokens, the bank moves after the update', async () => {
    const model = await studentModel(abmil);
    const strategy = makeStrategy(model, { version: 'v2', grn: true, grnTokens: 2, grnHeads: 2, grnKeepRatio: 0.5, grnMomentum: 0.5, maskRatioHigh: 0.2, grnDropout: 0 });
    strategy.init?.(model);
    const x = tf.tensor2d(Array.from({ length: 10 * 6 }, (_, i) => Math.sin(i * 0.23)), [10, 6]);
    const step = stepOf(model, x, 0, { 'mhim.grn': tf.tensor1d([7, 6, 5, 4, 3, 2, 1, 0], 'int32') });
    const attention = tf.tidy(() => {
      const out = strategy.forward?.(step);
      return (out?.instanceScores as tf.Tensor2D).shape[1];
    });
    expect(attention).toBe(Math.floor(8 * 0.5) + 2); // 10 − 2 masked = 8 kept; 4 passed + 2 tokens
    const bank = strategy.modules['grn']?.namedTensors().find(([n]) => n === 'global_tokens')?.[1].variable as tf.Variable;
    const before = Array.from(bank.dataSync());
    strategy.afterUpdate?.({ globalStep: 0, epoch: 0 });
    const after = Array.from(bank.dataSync());
    expect(after).not.toEqual(before);
    // G' = 0.5 G + 0.5 Z ⇒ Z = 2 G' − G must be a finite token row set
    after.forEach((g, i) => expect(Number.isFinite(2 * g - (before[i] as number))).toBe(true));
    strategy.dispose?.();
    for (const module of Object.values(strategy.modules)) module.dispose();
    tf.dispose([x, ...Object.values(step.io.injected ?? {})]);
    model.dispose();
  });

  it('leaks no tensors across steps (teacher pass, masking, GRN, EMA and bank updates)', async () => {
    const model = await studentModel(abmil);
    const strategy = makeStrategy(model, { version: 'v2', grn: true, grnTokens: 2, grnHeads: 2, grnKeepRatio: 0.5, maskRatio: 0.3, maskRatioHigh: 0.2, maskRatioHighRandom: 0.5 });
    strategy.init?.(model);
    const x = tf.tensor2d(Array.from({ length: 12 * 6 }, (_, i) => Math.sin(i * 0.5)), [12, 6]);
    const oneStep = (i: number): void => {
      const step = stepOf(model, x, i);
      const { value, grads } = tf.variableGrads(() => {
        const out = strategy.forward?.(step) as NonNullable<ReturnType<NonNullable<Strategy['forward']>>>;
        strategy.stepMetrics?.(step, out);
        return tf.add(model.losses(out, 1, 2).total, strategy.lossTerms?.(step, out)['consistency'] as tf.Scalar) as tf.Scalar;
      });
      tf.dispose([value, ...Object.values(grads)]);
      strategy.afterUpdate?.({ globalStep: i, epoch: 0 });
    };
    oneStep(0);
    const before = tf.memory().numTensors;
    oneStep(1);
    oneStep(2);
    expect(tf.memory().numTensors).toBe(before);
    strategy.dispose?.();
    for (const module of Object.values(strategy.modules)) module.dispose();
    x.dispose();
    model.dispose();
  });

  it('needs an aggregator with parts', async () => {
    const model = await studentModel({ name: 'mean-pool', projectDim: 4 });
    expect(() => makeStrategy(model, {})).toThrow(/capability parts/);
    model.dispose();
  });
});
