import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../../src/core/runtime/index.js';
import { buildModel, checkFixtureParity, bagOf, io } from '../../helpers/zoo.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('aggregator/abmil', () => {
  it.each(['abmil-gated', 'abmil-plain'])('matches the PyTorch reference %s (eval outputs, loss, gradients)', async (name) => {
    await checkFixtureParity(name);
  });

  it('matches the PyTorch reference on the wasm backend with milkit\'s runtime kernels', async () => {
    await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: 1 }), { logger: silentLogger });
    try {
      await checkFixtureParity('abmil-gated');
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('returns softmax attention [1, N] as instanceScores', async () => {
    const model = await buildModel({ inputDim: 6, numClasses: 2, aggregator: { name: 'abmil', projectDim: 4, attnDim: 3 } });
    const x = tf.randomNormal([5, 6], 0, 1, 'float32', 3) as tf.Tensor2D;
    const out = model.forward(bagOf(x), io(false));
    expect(out.instanceScores?.shape).toEqual([1, 5]);
    expect(tf.sum(out.instanceScores as tf.Tensor).dataSync()[0]).toBeCloseTo(1, 6);
    expect(Math.min(...(out.instanceScores as tf.Tensor).dataSync())).toBeGreaterThan(0);
    model.dispose();
  });
});
