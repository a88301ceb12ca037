import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../../src/core/runtime/index.js';
import { bagOf, buildModel, checkFixtureParity, io } from '../../helpers/zoo.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('aggregator/dsmil', () => {
  it.each(['dsmil', 'dsmil-passing-v', 'dsmil-single-logit'])('matches the PyTorch reference %s (eval outputs, 0.5/0.5 bag + max-instance loss, gradients)', async (name) => {
    await checkFixtureParity(name);
  });

  it('matches the PyTorch reference on the wasm backend with milkit\'s runtime kernels', async () => {
    await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: 1 }), { logger: silentLogger });
    try {
      await checkFixtureParity('dsmil');
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('normalises attention over instances per class and exposes the max-instance logits', async () => {
    const model = await buildModel({ inputDim: 6, numClasses: 2, aggregator: { name: 'dsmil', queryDim: 4 } });
    const x = tf.randomNormal([9, 6], 0, 1, 'float32', 8) as tf.Tensor2D;
    const out = model.forward(bagOf(x), io(false));
    expect(out.instanceScores?.shape).toEqual([2, 9]);
    const sums = tf.sum(out.instanceScores as tf.Tensor, 1).dataSync();
    expect(Math.abs((sums[0] as number) - 1)).toBeLessThan(1e-6);
    expect(Math.abs((sums[1] as number) - 1)).toBeLessThan(1e-6);
    expect(out.extras?.maxInstanceLogits?.shape).toEqual([1, 2]);
    model.dispose();
  });

  it('rejects binarySingleLogit on a multi-class task', async () => {
    await expect(buildModel({ inputDim: 6, numClasses: 3, aggregator: { name: 'dsmil', binarySingleLogit: true } })).rejects.toThrowErrorMatchingInlineSnapshot(`[PluginError: aggregator "dsmil": binarySingleLogit needs a binary task (got 3 classes).]`);
  });
});
