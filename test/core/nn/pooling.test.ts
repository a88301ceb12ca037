// Mean and max over instances (the mean-pool / max-pool reductions) on cpu and wasm: the values of tf.mean/tf.max,
// their gradients (max: one row per column, the first on ties), no transposing Mean/Max kernel on wasm, flat memory.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { maxOverInstances, meanOverInstances, ProjectedPool } from '../../../src/core/nn/pooling.js';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime } from '../../../src/core/runtime/index.js';
import { RuntimeSection } from '../../../src/core/runtime/schema.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i += 1) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  return worst;
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`core/nn/pooling on ${backend}`, () => {
    beforeAll(async () => {
      if (backend === 'wasm') await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
      else await tf.setBackend('cpu');
      expect(tf.getBackend()).toBe(backend);
    });

    it('means and maxima by hand', () => {
      const h = tf.tensor2d([[1, -2, 3], [5, 0, -1], [0, 4, -7]]);
      expect(Array.from(meanOverInstances(h).dataSync())).toEqual([2, 2 / 3, -5 / 3].map(Math.fround));
      expect(meanOverInstances(h).shape).toEqual([1, 3]);
      expect(Array.from(maxOverInstances(h).dataSync())).toEqual([5, 4, 3]);
      expect(maxOverInstances(h).shape).toEqual([1, 3]);
      expect(ProjectedPool.mean).toBe(meanOverInstances);
      expect(ProjectedPool.max).toBe(maxOverInstances);
      h.dispose();
    });

    it('matches tf.mean / tf.max and their gradients on a bag', () => {
      const h = tf.randomNormal([301, 67], 0, 1, 'float32', 9) as tf.Tensor2D;
      const dz = tf.randomNormal([1, 67], 0, 1, 'float32', 10);
      expect(maxAbsDiff(meanOverInstances(h).dataSync(), tf.mean(h, 0, true).dataSync())).toBeLessThan(1e-6);
      expect(maxAbsDiff(maxOverInstances(h).dataSync(), tf.max(h, 0, true).dataSync())).toBe(0);
      const gradOf = (reduce: (x: tf.Tensor2D) => tf.Tensor): Float32Array =>
        tf.grad((x: tf.Tensor) => tf.sum(tf.mul(reduce(x as tf.Tensor2D), dz)))(h).dataSync() as Float32Array;
      expect(maxAbsDiff(gradOf(meanOverInstances), gradOf((x) => tf.mean(x, 0, true)))).toBe(0);
      // Random normals have no ties, so the stock gradient (every row equal to the max) is the reference.
      const maxGrad = gradOf(maxOverInstances);
      expect(maxAbsDiff(maxGrad, gradOf((x) => tf.max(x, 0, true)))).toBe(0);
      expect(maxGrad.filter((g) => g !== 0).length).toBe(67);
      tf.dispose([h, dz]);
    });

    it('sends the max gradient to the first tied row only, through a projection', () => {
      const h = tf.tensor2d([[1, 2], [3, 2], [3, -1]]);
      const dh = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(maxOverInstances(x as tf.Tensor2D), tf.tensor2d([[10, 20]]))))(h);
      expect(dh.arraySync()).toEqual([[0, 20], [10, 0], [0, 0]]);
      // Upstream of a ReLU projection, as ProjectedPool computes it.
      const w = tf.variable(tf.tensor2d([[1, -1], [0.5, 2]]));
      const x = tf.tensor2d([[1, 0], [2, 1], [-1, 3]]);
      const { grads } = tf.variableGrads(() => tf.sum(maxOverInstances(tf.relu(tf.matMul(x, w)) as tf.Tensor2D)), [w]);
      const { grads: stock } = tf.variableGrads(() => tf.sum(tf.max(tf.relu(tf.matMul(x, w)), 0, true)), [w]);
      expect((grads[w.name] as tf.Tensor).arraySync()).toEqual((stock[w.name] as tf.Tensor).arraySync());
      tf.dispose([h, dh, w, x, grads, stock]);
    });

    it('keeps memory flat over training steps', () => {
      const w = tf.variable(tf.randomNormal([16, 8], 0, 1, 'float32', 1));
      const x = tf.randomNormal([40, 16], 0, 1, 'float32', 2);
      const step = (): void => {
        const { value, grads } = tf.variableGrads(() => tf.add(tf.sum(meanOverInstances(tf.matMul(x, w) as tf.Tensor2D)), tf.sum(maxOverInstances(tf.matMul(x, w) as tf.Tensor2D))) as tf.Scalar, [w]);
        tf.dispose([value, grads]);
      };
      step();
      const tensors = tf.memory().numTensors;
      step();
      step();
      expect(tf.memory().numTensors).toBe(tensors);
      tf.dispose([w, x]);
    });

    if (backend === 'wasm') {
      it('uses neither the stock Mean nor Max kernel nor a Transpose on wasm', async () => {
        const h = tf.randomNormal([500, 64], 0, 1, 'float32', 4) as tf.Tensor2D;
        const info = await tf.profile(() => {
          tf.dispose([meanOverInstances(h), maxOverInstances(h)]);
        });
        const names = info.kernels.map((k) => k.name);
        for (const slow of ['Mean', 'Max', 'Transpose']) expect(names).not.toContain(slow);
        expect(names).toContain('MaxPool');
        h.dispose();
      });
    }
  });
}
