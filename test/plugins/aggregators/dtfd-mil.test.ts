import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../../src/core/runtime/index.js';
import { toInt32 } from '../../../src/core/nn/safetensors.js';
import { bagOf, buildModel, checkFixtureParity, io, type Fixture } from '../../helpers/zoo.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** The reference's instance permutation, injected so both sides split the same pseudo-bags. */
function permutation(fixture: Fixture): Record<string, tf.Tensor> {
  const record = fixture.tensors.permutation;
  if (!record) throw new Error('fixture has no permutation');
  return { permutation: tf.tensor1d(toInt32(record), 'int32') };
}

describe('aggregator/dtfd-mil', () => {
  it.each(['dtfd-afs', 'dtfd-maxmins', 'dtfd-maxs'])('matches the PyTorch reference %s (eval outputs, tier-1 + tier-2 loss, gradients with tier 2 detached)', async (name) => {
    await checkFixtureParity(name, permutation);
  });

  it('matches the PyTorch reference on the wasm backend with milkit\'s runtime kernels', async () => {
    await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: 1 }), { logger: silentLogger });
    try {
      await checkFixtureParity('dtfd-maxmins', permutation);
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('declares the four clipping groups of the reference at norm 5', async () => {
    const model = await buildModel({ inputDim: 6, numClasses: 2, aggregator: { name: 'dtfd-mil', embedDim: 4, attnDim: 3 } });
    expect(model.aggregator.gradientClipGroups).toEqual([
      { prefixes: ['dim_reduction.'], maxNorm: 5 },
      { prefixes: ['attention.'], maxNorm: 5 },
      { prefixes: ['classifier.'], maxNorm: 5 },
      { prefixes: ['att_classifier.'], maxNorm: 5 },
    ]);
    const names = model.aggregator.namedTensors().map(([key]) => key);
    for (const group of model.aggregator.gradientClipGroups ?? []) {
      expect(names.some((key) => group.prefixes.some((p) => key.startsWith(p))), `${group.prefixes[0]} matches a parameter`).toBe(true);
    }
    model.dispose();
  });

  it('splits like numpy.array_split and clamps G to N for tiny bags', async () => {
    const model = await buildModel({ inputDim: 6, numClasses: 2, aggregator: { name: 'dtfd-mil', embedDim: 4, attnDim: 3, numGroups: 4 } });
    const two = tf.randomNormal([2, 6], 0, 1, 'float32', 10) as tf.Tensor2D;
    expect(model.forward(bagOf(two), io(false)).extras?.pseudoBagLogits?.shape).toEqual([2, 2]);
    const seven = tf.randomNormal([7, 6], 0, 1, 'float32', 11) as tf.Tensor2D;
    const out = model.forward(bagOf(seven), io(false));
    expect(out.extras?.pseudoBagLogits?.shape).toEqual([4, 2]);
    // Each pseudo-bag's attention sums to 1: total 4 over the 7 instances.
    expect(tf.sum(out.instanceScores as tf.Tensor).dataSync()[0]).toBeCloseTo(4, 5);
    model.dispose();
  });

  it('sends no tier-2 gradient into tier 1', async () => {
    const model = await buildModel({ inputDim: 6, numClasses: 2, aggregator: { name: 'dtfd-mil', embedDim: 4, attnDim: 3, distill: 'maxmins', totalInstance: 4 }, losses: { bag: { name: 'cross-entropy', weight: 1 } } });
    const x = tf.randomNormal([9, 6], 0, 1, 'float32', 12) as tf.Tensor2D;
    const tierOne = model.aggregator.namedTensors().filter(([key]) => !key.startsWith('att_classifier.')).map(([, e]) => e.variable);
    const { grads } = tf.variableGrads(() => model.losses(model.forward(bagOf(x, 1), io(true)), 1, 2).total, model.trainableVariables());
    for (const v of tierOne) {
      const g = grads[v.name];
      if (g) expect(tf.max(tf.abs(g)).dataSync()[0], v.name).toBe(0);
    }
    model.dispose();
  });
});
