// The host-evaluated smooth top-1 SVM (plugins/losses/_shared/smooth-svm.ts) against its tensor formulation (the code
// it replaced): per-sample values and gradients, smooth and hard rows, several α and τ, cpu and wasm.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { smoothTop1SvmLosses } from '../../../plugins/losses/_shared/smooth-svm.js';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime } from '../../../src/core/runtime/index.js';
import { RuntimeSection } from '../../../src/core/runtime/schema.js';
import { Rng } from '../../../src/core/runtime/random.js';

/** The tensor formulation: smooth τ·logsumexp, hard max where the top-2 gap ≥ τ ln 1000 (gap decided off the tape). */
function tensorSvm(scores: tf.Tensor2D, labels: number[], alpha: number, tau: number): tf.Tensor1D {
  const numClasses = scores.shape[1];
  const truth = tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses), 'float32');
  const shifted = tf.sub(tf.add(scores, tf.mul(tf.sub(1, truth), alpha)), tf.sum(tf.mul(scores, truth), 1, true));
  const smooth = tf.mul(tf.logSumExp(tf.div(shifted, tau), 1), tau);
  const hard = tf.max(shifted, 1);
  const values = scores.arraySync();
  const useHard = tf.tensor1d(values.map((row) => {
    const sorted = [...row].sort((a, b) => b - a);
    return (sorted[0] as number) - (sorted[1] as number) >= tau * Math.log(1000) ? 1 : 0;
  }));
  return tf.add(tf.mul(useHard, hard), tf.mul(tf.sub(1, useHard), smooth)) as tf.Tensor1D;
}

function case_(seed: string, rows: number, classes: number, spread: number): { scores: number[][]; labels: number[]; weights: number[] } {
  const rng = new Rng(seed);
  const scores = Array.from({ length: rows }, () => Array.from(rng.normalArray(classes, 0, spread)));
  // Rows whose top score clears the second by far: the hard branch.
  scores[0]![0] = 40;
  scores[1]![classes - 1] = -3;
  return { scores, labels: Array.from({ length: rows }, (_, m) => m % classes), weights: Array.from(rng.normalArray(rows, 1, 0.5)) };
}

describe.each(['cpu', 'wasm'] as const)('smooth top-1 SVM on %s', (backend) => {
  beforeAll(async () => {
    await initRuntime(RuntimeSection.parse({ backend }), { logger: silentLogger });
  });

  it.each([
    { classes: 2, alpha: 1, tau: 1, spread: 2 },
    { classes: 4, alpha: 0.5, tau: 0.1, spread: 3 },
    { classes: 3, alpha: 2, tau: 5, spread: 10 },
  ])('values and gradients match the tensor formulation (C $classes, α $alpha, τ $tau)', ({ classes, alpha, tau, spread }) => {
    const { scores, labels, weights } = case_(`svm/${classes}/${tau}`, 16, classes, spread);
    const run = (loss: (s: tf.Tensor2D) => tf.Tensor1D): { values: number[]; grad: number[] } => tf.tidy(() => {
      const x = tf.tensor2d(scores);
      const w = tf.tensor1d(weights);
      const values = Array.from(loss(x).dataSync());
      const grad = Array.from(tf.grad((s: tf.Tensor) => tf.sum(tf.mul(loss(s as tf.Tensor2D), w)))(x).dataSync());
      return { values, grad };
    });
    const host = run((s) => smoothTop1SvmLosses(s, tf.tensor1d(labels, 'int32'), alpha, tau));
    const reference = run((s) => tensorSvm(s, labels, alpha, tau));
    host.values.forEach((v, i) => expect(Math.abs(v - (reference.values[i] as number))).toBeLessThanOrEqual(2e-6 * Math.max(1, Math.abs(reference.values[i] as number))));
    host.grad.forEach((g, i) => expect(Math.abs(g - (reference.grad[i] as number))).toBeLessThanOrEqual(1e-6));
    // Both branches were exercised.
    expect(reference.grad.some((g) => g !== 0)).toBe(true);
  });

  it('leaves no tensor behind', () => {
    const x = tf.tensor2d([[0.1, 0.7], [3, -50]]);
    const labels = tf.tensor1d([1, 0], 'int32');
    const before = tf.memory().numTensors;
    tf.dispose([smoothTop1SvmLosses(x, labels), tf.grad((s: tf.Tensor) => tf.sum(smoothTop1SvmLosses(s as tf.Tensor2D, labels)))(x)]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, labels]);
  });
});
