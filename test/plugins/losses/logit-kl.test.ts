import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import logitKl from '../../../plugins/losses/logit-kl.js';
import type { ModelOutput } from '../../../src/registry/index.js';

const loss = logitKl.create(logitKl.options.parse({}), { numClasses: 3 });
const target = { label: 0, numClasses: 3 };

function output(extras: Record<string, tf.Tensor>): ModelOutput {
  return { embedding: tf.zeros([1, 1]) as tf.Tensor2D, logits: tf.zeros([1, 3]) as tf.Tensor2D, extras };
}

function softmax(z: number[]): number[] {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('loss/logit-kl', () => {
  it('is KL(teacher ‖ student) = Σ p_tea (log p_tea - log p_stu), batchmean over one bag', () => {
    const zt = [4, 0, 0.5];
    const zs = [0, 0.2, 0];
    const pt = softmax(zt);
    const ps = softmax(zs);
    const byHand = pt.reduce((sum, p, c) => sum + p * (Math.log(p) - Math.log(ps[c] as number)), 0);
    const reverse = ps.reduce((sum, p, c) => sum + p * (Math.log(p) - Math.log(pt[c] as number)), 0);
    const value = loss.compute(output({ teacherLogits: tf.tensor2d([zt]), studentLogits: tf.tensor2d([zs]) }), target)['']?.dataSync()[0] as number;
    expect(value).toBeCloseTo(byHand, 6);
    expect(Math.abs(value - reverse)).toBeGreaterThan(0.05); // the direction matters and is teacher ‖ student
  });

  it('does not detach the teacher: its logits receive the gradient of the KL', () => {
    const zt = tf.tensor2d([[1, 0, -1]]);
    const zs = tf.tensor2d([[0, 0, 0]]);
    const grad = tf.grad((t: tf.Tensor) => loss.compute(output({ teacherLogits: t, studentLogits: zs }), target)[''] as tf.Scalar)(zt);
    // d/dz_t Σ p (log p - log q) = p ⊙ (log p - log q - KL)
    const p = softmax([1, 0, -1]);
    const logq = Math.log(1 / 3);
    const kl = p.reduce((s, v) => s + v * (Math.log(v) - logq), 0);
    const expected = p.map((v) => v * (Math.log(v) - logq - kl));
    Array.from(grad.dataSync()).forEach((g, i) => expect(g).toBeCloseTo(expected[i] as number, 6));
  });

  it('is zero for identical logits and has no term without a student branch', () => {
    const z = tf.tensor2d([[0.3, -0.2, 1]]);
    expect(loss.compute(output({ teacherLogits: z, studentLogits: z }), target)['']?.dataSync()[0]).toBeCloseTo(0, 7);
    expect(loss.compute(output({ teacherLogits: z }), target)).toEqual({});
  });
});
