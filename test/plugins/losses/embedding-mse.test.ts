import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import embeddingMse from '../../../plugins/losses/embedding-mse.js';
import type { ModelOutput } from '../../../src/registry/index.js';

const loss = embeddingMse.create(embeddingMse.options.parse({}), { numClasses: 2 });

function output(extras: Record<string, tf.Tensor>): ModelOutput {
  return { embedding: tf.zeros([1, 1]) as tf.Tensor2D, logits: tf.zeros([1, 2]) as tf.Tensor2D, extras };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('loss/embedding-mse', () => {
  it('is the mean over all C·H entries of (E_stu - E_tea)^2', () => {
    const teacher = tf.tensor2d([[1, 2, 3], [0, -1, 4]]);
    const student = tf.tensor2d([[1.5, 2, 2], [0, 1, 4]]);
    // (0.25 + 0 + 1 + 0 + 4 + 0) / 6
    expect(loss.compute(output({ teacherEmbedding: teacher, studentEmbedding: student }), { label: 0, numClasses: 2 })['']?.dataSync()[0]).toBeCloseTo(5.25 / 6, 6);
  });

  it('sends gradients into the teacher too (not detached)', () => {
    const teacher = tf.tensor2d([[1, 2]]);
    const student = tf.tensor2d([[2, 0]]);
    const gradTeacher = tf.grad((t: tf.Tensor) => loss.compute(output({ teacherEmbedding: t, studentEmbedding: student }), { label: 0, numClasses: 2 })[''] as tf.Scalar)(teacher);
    // d/dt mean((s - t)^2) = -2 (s - t) / 2
    expect(Array.from(gradTeacher.dataSync())).toEqual([-1, 2]);
  });

  it('has no term when the aggregator produced no student branch', () => {
    expect(loss.compute(output({ teacherEmbedding: tf.zeros([2, 3]) }), { label: 0, numClasses: 2 })).toEqual({});
  });

  it('refuses embeddings of different shapes', () => {
    expect(() => loss.compute(output({ teacherEmbedding: tf.zeros([2, 3]), studentEmbedding: tf.zeros([1, 3]) }), { label: 0, numClasses: 2 })).toThrow(/differ/);
  });

  it('declares the extras it reads', () => {
    expect(embeddingMse.capabilities.requires).toEqual(['teacherEmbedding', 'studentEmbedding']);
  });
});
