import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { bagOf, buildModel, checkFixtureParity, io } from '../../helpers/zoo.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('aggregator/transmil', () => {
  it.each(['transmil', 'transmil-fixed', 'transmil-no-pad'])('matches the PyTorch reference %s (eval outputs, loss, gradients)', async (name) => {
    await checkFixtureParity(name);
  });

  it('has the published parameter count at the default size (C = 2: 2.67M)', async () => {
    const model = await buildModel({ inputDim: 1024, numClasses: 2, aggregator: { name: 'transmil' } });
    const count = model.trainableVariables().reduce((sum, v) => sum + v.size, 0);
    // fc1 524,800 + cls 512 + PPEG 44,032 + 2 × (LN 1,024 + qkv 786,432 + out 262,656 + res 264) + LN 1,024 + fc2 1,026
    expect(count).toBe(2_672_146);
    model.dispose();
  });

  it('depends on instance order (PPEG), unlike the attention poolings', async () => {
    const model = await buildModel({ inputDim: 6, numClasses: 2, aggregator: { name: 'transmil', embedDim: 8, heads: 2, landmarks: 4 } });
    const x = tf.randomNormal([7, 6], 0, 1, 'float32', 9) as tf.Tensor2D;
    const reversed = tf.reverse(x, 0) as tf.Tensor2D;
    const a = model.forward(bagOf(x), io(false)).logits.dataSync();
    const b = model.forward(bagOf(reversed), io(false)).logits.dataSync();
    expect(Math.abs((a[0] as number) - (b[0] as number))).toBeGreaterThan(1e-6);
    model.dispose();
  });
});
