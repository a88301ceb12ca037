import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../../src/core/runtime/index.js';
import { bagOf, buildModel, checkFixtureParity, io } from '../../helpers/zoo.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('aggregator/clam-sb and aggregator/clam-mb', () => {
  it.each(['clam-sb', 'clam-sb-subtyping', 'clam-mb', 'clam-mb-binary'])('matches the PyTorch reference %s (eval outputs, 0.7·CE + 0.3·instance loss, gradients)', async (name) => {
    await checkFixtureParity(name);
  });

  it('matches the PyTorch reference on the wasm backend with milkit\'s runtime kernels', async () => {
    await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: 1 }), { logger: silentLogger });
    try {
      await checkFixtureParity('clam-mb');
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('pseudo-labels the top-k as 1 and the bottom-k as 0 for the true class, weighted 1/2k', async () => {
    const model = await buildModel({ inputDim: 4, numClasses: 2, aggregator: { name: 'clam-sb', hiddenDim: 5, attnDim: 3, kSample: 2, dropout: 0, attnDropout: 0 } });
    const x = tf.randomNormal([6, 4], 0, 1, 'float32', 5) as tf.Tensor2D;
    const out = model.forward(bagOf(x, 1), io(true));
    expect(out.extras?.instanceLogits?.shape).toEqual([4, 2]);
    expect(Array.from(out.extras?.instanceTargets?.dataSync() ?? [])).toEqual([1, 1, 0, 0]);
    expect(Array.from(out.extras?.instanceWeights?.dataSync() ?? [])).toEqual([0.25, 0.25, 0.25, 0.25]);
    model.dispose();
  });

  it('clamps k to N for bags smaller than kSample (the reference errors there)', async () => {
    const model = await buildModel({ inputDim: 4, numClasses: 3, aggregator: { name: 'clam-mb', hiddenDim: 5, attnDim: 3, kSample: 8, subtyping: true } });
    const x = tf.randomNormal([3, 4], 0, 1, 'float32', 6) as tf.Tensor2D;
    const out = model.forward(bagOf(x, 0), io(true));
    // true class: 3 + 3 picks, each other class: 3 picks; all weights ÷ C.
    expect(out.extras?.instanceLogits?.shape).toEqual([12, 2]);
    const weights = Array.from(out.extras?.instanceWeights?.dataSync() ?? []);
    expect(weights.slice(0, 6).every((w) => Math.abs(w - 1 / 18) < 1e-7)).toBe(true);
    expect(weights.slice(6).every((w) => Math.abs(w - 1 / 9) < 1e-7)).toBe(true);
    model.dispose();
  });

  it('emits no clustering extras without a label (evaluation)', async () => {
    const model = await buildModel({ inputDim: 4, numClasses: 2, aggregator: { name: 'clam-mb', hiddenDim: 5, attnDim: 3 }, losses: { instance: { name: 'clam-instance', weight: 0.3 } } });
    const x = tf.randomNormal([6, 4], 0, 1, 'float32', 7) as tf.Tensor2D;
    model.setTraining(false);
    const out = model.forward(bagOf(x), io(false));
    expect(out.extras).toEqual({});
    expect(Object.keys(model.losses(out, 0, 2).terms)).toEqual([]);
    model.dispose();
  });
});
