import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import keepRate from '../../../plugins/losses/keep-rate.js';
import type { ModelOutput } from '../../../src/registry/index.js';
import { builtinRegistry } from '../../helpers/registry.js';

function output(extras: Record<string, tf.Tensor>): ModelOutput {
  return { embedding: tf.zeros([1, 1]) as tf.Tensor2D, logits: tf.zeros([1, 2]) as tf.Tensor2D, extras };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('loss/keep-rate', () => {
  it('is (rate - r)^2 with r the fraction KEPT (default 0.6)', () => {
    const loss = keepRate.create(keepRate.options.parse({}), { numClasses: 2 });
    expect(loss.compute(output({ keepRate: tf.scalar(0.75) }), { label: 0, numClasses: 2 })['']?.dataSync()[0]).toBeCloseTo(0.0225, 7);
    const seventy = keepRate.create(keepRate.options.parse({ target: 0.7 }), { numClasses: 2 });
    expect(seventy.compute(output({ keepRate: tf.scalar(0.5) }), { label: 0, numClasses: 2 })['']?.dataSync()[0]).toBeCloseTo(0.04, 7);
  });

  it('has gradient 2(rate - r) with respect to the rate', () => {
    const loss = keepRate.create(keepRate.options.parse({ target: 0.6 }), { numClasses: 2 });
    const grad = tf.grad((rate: tf.Tensor) => loss.compute(output({ keepRate: rate }), { label: 0, numClasses: 2 })[''] as tf.Scalar)(tf.scalar(0.9));
    expect(grad.dataSync()[0]).toBeCloseTo(0.6, 6);
  });

  it('has no term without a student branch', () => {
    const loss = keepRate.create(keepRate.options.parse({}), { numClasses: 2 });
    expect(loss.compute(output({}), { label: 0, numClasses: 2 })).toEqual({});
  });

  it('rejects a target outside (0, 1]', async () => {
    await expect(builtinRegistry().resolve('loss', { name: 'keep-rate', target: 0 }, { key: 'model.losses.rate' })).rejects.toThrow('model.losses.rate.target');
    await expect(builtinRegistry().resolve('loss', { name: 'keep-rate', target: 1.5 }, { key: 'model.losses.rate' })).rejects.toThrow('model.losses.rate.target');
  });
});
