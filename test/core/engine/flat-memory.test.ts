// Memory stays flat over training steps on the wasm backend: the tensor count AND the wasm heap (which never
// shrinks, so any leak of tensors or of non-tensor wasm memory, or a fragmentation that keeps growing, shows as
// growth). Small N and narrow models to stay fast; dmin's gate keeps a different number of instances every step
// (the varying tensor sizes fragmentation would come from), transmil recomputes its layers and frees as it goes.
// The heap's high-water mark may still rise once while the allocator's free lists settle (transmil: 16 → 19.25 MB
// around step 25, then unchanged for 170 more steps), so the heap is compared after a longer warm-up; the tensor count
// is checked from step 3, every step.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initRuntime, RuntimeSection } from '../../../src/core/runtime/index.js';
import { silentLogger } from '../../../src/core/logger.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { buildModel, type ModelSpec } from '../../helpers/zoo.js';

const D = 64;

function wasmHeapBytes(): number {
  return (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
}

const SPECS: Record<string, ModelSpec> = {
  dmin: {
    inputDim: D, numClasses: 2, aggregator: { name: 'dmin', hiddenDim: 32, attnDim: 16, kSample: 4 }, classifier: { name: 'cka', degree: 4 },
    losses: { ce: { name: 'cross-entropy', weight: 0.7 }, clu: { name: 'clam-instance', weight: 0.3 }, mse: { name: 'embedding-mse', weight: 0.5 }, kl: { name: 'logit-kl', weight: 0.5 }, rate: { name: 'keep-rate', weight: 2 } },
  },
  transmil: { inputDim: D, numClasses: 2, aggregator: { name: 'transmil', embedDim: 32, heads: 4, landmarks: 16 }, losses: { bag: { name: 'cross-entropy', weight: 1 } } },
};

beforeAll(async () => {
  await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: 1 }), { logger: silentLogger });
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

describe('flat memory over training steps (wasm)', () => {
  for (const [name, spec] of Object.entries(SPECS)) {
    it(`${name}: tensor count unchanged every step after 3 warm-up steps, wasm heap unchanged over steps 40 to 60`, async () => {
      const model = await buildModel(spec);
      model.setTraining(true);
      const optimizer = tf.train.adam(1e-3);
      const x = tf.randomNormal([3000, D], 0, 1, 'float32', 11) as tf.Tensor2D;
      const rng = new Rng(`flat/${name}`);
      const step = (i: number): number => {
        const loss = optimizer.minimize(() => model.losses(model.forward({ slideId: 's', features: x, label: i % 2 }, { training: true, rng: rng.fork(`step-${i}`) }), i % 2, 2).total, true, model.trainableVariables());
        const value = loss?.dataSync()[0] ?? NaN;
        loss?.dispose();
        return value;
      };
      for (let i = 0; i < 3; i += 1) step(i);
      const tensors = tf.memory().numTensors;
      const losses: number[] = [];
      let heap = 0;
      for (let i = 3; i < 60; i += 1) {
        if (i === 40) heap = wasmHeapBytes();
        losses.push(step(i));
        expect(tf.memory().numTensors).toBe(tensors);
      }
      expect(wasmHeapBytes()).toBe(heap);
      expect(losses.every(Number.isFinite)).toBe(true);
      optimizer.dispose();
      model.dispose();
      x.dispose();
    }, 300_000);
  }
});
