import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../../src/core/runtime/index.js';
import { BackendError } from '../../../src/core/errors.js';
import { MemoryBudget, defaultMemoryLimit } from '../../../src/core/engine/memory-budget.js';
import { bagOf, buildModel, checkFixtureParity, expectClose, io } from '../../helpers/zoo.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('aggregator/transmil', () => {
  it.each(['transmil', 'transmil-fixed', 'transmil-no-pad'])('matches the PyTorch reference %s (eval outputs, loss, gradients)', async (name) => {
    await checkFixtureParity(name);
  });

  it('matches the PyTorch reference on the wasm backend with milkit\'s runtime kernels', async () => {
    await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: 1 }), { logger: silentLogger });
    try {
      await checkFixtureParity('transmil');
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('raises the memory budget to the heap a step needs at large N on wasm: 78,000 instances pass, 78,200 fail before compute', async () => {
    await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: 1 }), { logger: silentLogger });
    try {
      const model = await buildModel({ inputDim: 16, numClasses: 2, aggregator: { name: 'transmil' } });
      const aggregator = model.aggregator;
      // The probes' line as measured at D = 1,024 (453.6 MB + 35.5 KB per instance): alone it would admit about 90,150.
      const probe = async (n: number): Promise<number> => 453_551_352 + 35_464 * n;
      let computed = 0;
      const budget = new MemoryBudget({ limit: defaultMemoryLimit('wasm'), model: 'transmil', probe, floor: (n, mode) => aggregator.minimumPeakBytes?.(n, mode) });
      const bag = (n: number) => ({ slideId: `n${n}`, n, d: 1, features: new Float32Array(n) });
      const step = async (n: number): Promise<void> => {
        await budget.check(bag(n), 'train', `slide n${n}`);
        computed += 1; // where the trainer would run the step
      };
      // The heap measured at 50,000 instances (2,335,768,576 bytes) is what the floor gives there, rounded up.
      expect(aggregator.minimumPeakBytes?.(50_000, 'train')).toBeGreaterThanOrEqual(2_335_768_576);
      expect(aggregator.minimumPeakBytes?.(50_000, 'train')).toBeLessThan(2_335_768_576 * 1.001);
      // Below ≈ 40,000 instances the line is above the floor and decides (8,000: the line, 737 MB).
      expect(await budget.estimate(bag(8000), 'train')).toBe(453_551_352 + 35_464 * 8000);
      await step(50_000);
      await step(78_000); // just under: the floor reaches the limit (3.40 GB) at about 78,140 instances; a real step at 78,000 fitted (heap 3.39 GB)
      const error = await step(78_200).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackendError);
      const text = (error as BackendError).render();
      expect(text).toMatch(/About 78,1\d\d instances fit/);
      expect(text).toContain('the wasm heap this aggregator was measured to need');
      expect(computed).toBe(2);
      expect(aggregator.minimumPeakBytes?.(50_000, 'eval')).toBeUndefined(); // measured for training steps only
      await tf.setBackend('cpu');
      expect(aggregator.minimumPeakBytes?.(50_000, 'train')).toBeUndefined(); // a wasm-heap measurement
      model.dispose();
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('has the published parameter count at the default size (C = 2: 2.67M)', async () => {
    const model = await buildModel({ inputDim: 1024, numClasses: 2, aggregator: { name: 'transmil' } });
    const count = model.trainableVariables().reduce((sum, v) => sum + v.size, 0);
    // fc1 524,800 + cls 512 + PPEG 44,032 + 2 × (LN 1,024 + qkv 786,432 + out 262,656 + res 264) + LN 1,024 + fc2 1,026
    expect(count).toBe(2_672_146);
    model.dispose();
  });

  it.each([['pinned-0.0.9', true], ['fixed', false]] as const)('with %s alignment, layer 2\'s value residual is inert: %s', async (alignment, inert) => {
    const model = await buildModel({
      inputDim: 6, numClasses: 2, seed: 4,
      aggregator: { name: 'transmil', embedDim: 8, heads: 2, landmarks: 16, residualKernel: 5, nystromAlignment: alignment },
      losses: { bag: { name: 'cross-entropy', weight: 1 } },
    });
    const x = tf.randomNormal([10, 6], 0, 1, 'float32', 13) as tf.Tensor2D; // 17 tokens → 15 zero rows of left padding
    const variable = new Map(model.namedTrainable()).get('aggregator.layer2.attn.res_conv.weight') as tf.Variable;
    const { grads } = tf.variableGrads(() => model.losses(model.forward(bagOf(x, 1), io(true)), 1, 2).total, [variable]);
    const size = tf.max(tf.abs(grads[variable.name] as tf.Tensor)).dataSync()[0] as number;
    if (inert) expect(size).toBe(0);
    else expect(size).toBeGreaterThan(0);
    expect(model.aggregator.inertParameters).toEqual(inert ? ['layer2.attn.res_conv.weight'] : []);
    model.dispose();
  });

  it('gives the same loss and gradients with and without recomputing its layers, dropout included', async () => {
    const run = async (checkpointLayers: boolean): Promise<number[]> => {
      const model = await buildModel({
        inputDim: 6, numClasses: 2, seed: 3,
        aggregator: { name: 'transmil', embedDim: 8, heads: 2, landmarks: 4, residualKernel: 5, attnDropout: 0.5, checkpointLayers },
        losses: { bag: { name: 'cross-entropy', weight: 1 } },
      });
      const x = tf.randomNormal([11, 6], 0, 1, 'float32', 14) as tf.Tensor2D;
      const { value, grads } = tf.variableGrads(() => model.losses(model.forward(bagOf(x, 1), io(true, 7)), 1, 2).total, model.trainableVariables());
      const flat = [value.dataSync()[0] as number, ...model.trainableVariables().flatMap((v) => Array.from(grads[v.name]?.dataSync() ?? []))];
      model.dispose();
      return flat;
    };
    const [plain, recomputed] = [await run(false), await run(true)];
    expect(recomputed.length).toBe(plain.length);
    expectClose(recomputed, plain, 'checkpointed vs plain', 1e-6, 1e-5);
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
