import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Loss, ModelOutput } from '../../../src/registry/index.js';
import clamInstance, { ClamInstanceOptions } from '../../../plugins/losses/clam-instance.js';
import binaryCrossEntropy from '../../../plugins/losses/binary-cross-entropy.js';
import dsmilMaxInstance, { DsmilMaxInstanceOptions } from '../../../plugins/losses/dsmil-max-instance.js';
import dtfdTier1 from '../../../plugins/losses/dtfd-tier1.js';
import smoothTop1Svm, { SmoothTop1SvmOptions } from '../../../plugins/losses/smooth-top1-svm.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const target = (label: number, numClasses = 2) => ({ label, numClasses });

function output(logits: number[][], extras: Record<string, tf.Tensor> = {}): ModelOutput {
  return { embedding: tf.zeros([1, 1]), logits: tf.tensor2d(logits), extras };
}

function value(loss: Loss, out: ModelOutput, label: number, numClasses = 2): number {
  const terms = loss.compute(out, target(label, numClasses));
  expect(Object.keys(terms)).toEqual(['']);
  return (terms[''] as tf.Scalar).dataSync()[0] as number;
}

/** Three picked instances: smooth branch (gap 1), hard branch with margin violated, hard branch satisfied. */
const instanceExtras = () => ({
  instanceLogits: tf.tensor2d([[1, 2], [10, 0], [10, 0]]),
  instanceTargets: tf.tensor1d([0, 1, 0], 'int32'),
  instanceWeights: tf.tensor1d([0.5, 0.25, 0.25]),
});

describe('loss/clam-instance', () => {
  it('sums weighted smooth top-1 SVM terms, switching to the hard max beyond a ln(1000) gap', () => {
    const loss = clamInstance.create(ClamInstanceOptions.parse({}), { numClasses: 2 });
    // 0.5·log(1 + e²) + 0.25·11 + 0.25·0
    expect(value(loss, output([[0, 0]], instanceExtras()), 0)).toBeCloseTo(0.5 * Math.log(1 + Math.exp(2)) + 2.75, 5);
  });

  it('sums weighted cross-entropy terms with fn: ce', () => {
    const loss = clamInstance.create(ClamInstanceOptions.parse({ fn: 'ce' }), { numClasses: 2 });
    const expected = 0.5 * Math.log(1 + Math.E) + 0.25 * (10 + Math.log1p(Math.exp(-10))) + 0.25 * Math.log1p(Math.exp(-10));
    expect(value(loss, output([[0, 0]], instanceExtras()), 0)).toBeCloseTo(expected, 5);
  });

  it('has the SVM gradient σ(gap) on the smooth branch and ±1 on the hard branch', () => {
    const loss = clamInstance.create(ClamInstanceOptions.parse({}), { numClasses: 2 });
    const targets = tf.tensor1d([0, 1], 'int32');
    const weights = tf.tensor1d([1, 1]);
    const grad = tf.grad((s: tf.Tensor) => loss.compute(output([[0, 0]], { instanceLogits: s, instanceTargets: targets, instanceWeights: weights }), target(0))[''] as tf.Scalar);
    const g = grad(tf.tensor2d([[1, 2], [10, 0]])).arraySync() as number[][];
    const sigma = 1 / (1 + Math.exp(-2));
    expect(g[0]?.[0]).toBeCloseTo(-sigma, 5);
    expect(g[0]?.[1]).toBeCloseTo(sigma, 5);
    expect(g[1]).toEqual([1, -1]);
  });

  it('gives no term without the extras (evaluation)', () => {
    const loss = clamInstance.create(ClamInstanceOptions.parse({}), { numClasses: 2 });
    expect(loss.compute(output([[0, 0]]), target(0))).toEqual({});
  });
});

describe('loss/binary-cross-entropy', () => {
  it('averages BCE with logits over the one-hot classes', () => {
    const loss = binaryCrossEntropy.create({}, { numClasses: 2 });
    expect(value(loss, output([[0.5, -1]]), 1)).toBeCloseTo((Math.log(1 + Math.exp(0.5)) + Math.log(1 + Math.E)) / 2, 5);
  });
});

describe('loss/dsmil-max-instance', () => {
  it('applies BCE (default) or CE to the max-instance logits', () => {
    const extras = { maxInstanceLogits: tf.tensor2d([[0.5, -1]]) };
    const bce = dsmilMaxInstance.create(DsmilMaxInstanceOptions.parse({}), { numClasses: 2 });
    expect(value(bce, output([[9, 9]], extras), 1)).toBeCloseTo((Math.log(1 + Math.exp(0.5)) + Math.log(1 + Math.E)) / 2, 5);
    const ce = dsmilMaxInstance.create(DsmilMaxInstanceOptions.parse({ criterion: 'ce' }), { numClasses: 2 });
    expect(value(ce, output([[9, 9]], extras), 1)).toBeCloseTo(Math.log(1 + Math.exp(1.5)), 5);
  });

  it('equals BCE on s for single-logit logits [0, s] with criterion ce', () => {
    const ce = dsmilMaxInstance.create(DsmilMaxInstanceOptions.parse({ criterion: 'ce' }), { numClasses: 2 });
    const s = 0.7;
    expect(value(ce, output([[0, 0]], { maxInstanceLogits: tf.tensor2d([[0, s]]) }), 1)).toBeCloseTo(Math.log(1 + Math.exp(-s)), 6);
  });
});

describe('loss/dtfd-tier1', () => {
  it('averages the cross-entropy of every pseudo-bag against the slide label', () => {
    const loss = dtfdTier1.create({}, { numClasses: 2 });
    expect(value(loss, output([[0, 0]], { pseudoBagLogits: tf.tensor2d([[1, 0], [0, 0]]) }), 0)).toBeCloseTo((Math.log1p(Math.exp(-1)) + Math.LN2) / 2, 6);
  });
});

describe('loss/smooth-top1-svm', () => {
  it('is the smooth SVM of the slide logits, hard beyond the gap', () => {
    const loss = smoothTop1Svm.create(SmoothTop1SvmOptions.parse({}), { numClasses: 3 });
    // s = [1, 2, 0], y = 0: log(1 + e^(2+1-1) + e^(0+1-1))
    expect(value(loss, output([[1, 2, 0]]), 0, 3)).toBeCloseTo(Math.log(1 + Math.exp(2) + 1), 5);
    // s = [0, 9, 0], y = 1: gap 9 → hard: max(0+1-9, 0, 0+1-9) = 0
    expect(value(loss, output([[0, 9, 0]]), 1, 3)).toBe(0);
  });
});
