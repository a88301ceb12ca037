// constantOf / selectionMatrix: values computed off the gradient tape (torch no_grad). The gradient treats the result
// as a constant, backprop runs no kernel for it (no product for the gradient of a selection matrix, no zero
// gradients for its inputs), and an input reached only through constants gets no gradient.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { constantOf, selectionMatrix } from '../../../src/core/nn/no-grad.js';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime } from '../../../src/core/runtime/index.js';
import { RuntimeSection } from '../../../src/core/runtime/schema.js';

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`core/nn/no-grad on ${backend}`, () => {
    beforeAll(async () => {
      if (backend === 'wasm') await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
      else await tf.setBackend('cpu');
      expect(tf.getBackend()).toBe(backend);
    });

    it('differentiates the rest of the function with the constant held fixed', () => {
      const x = tf.tensor1d([1, -2, 3]);
      // L = Σ c ⊙ x with c = x² held constant: dL/dx = x², not 3x².
      const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(constantOf((t) => tf.square(t), v), v)))(x);
      expect(Array.from(dx.dataSync())).toEqual([1, 4, 9]);
      tf.dispose([x, dx]);
    });

    it('casts to float32 and works outside any gradient', () => {
      const picked = constantOf((t) => tf.argMax(t), tf.tensor2d([[1, 5], [7, 2]]));
      expect(picked.dtype).toBe('float32');
      expect(Array.from(picked.dataSync())).toEqual([1, 0]);
    });

    it('runs no backward kernel for a selection matrix, and its input gets no gradient', async () => {
      const h = tf.variable(tf.tensor2d([[1, 2], [3, 4], [5, 6]]), true, `h-${backend}`);
      const scores = tf.variable(tf.tensor1d([0.1, 0.9, 0.5]), true, `s-${backend}`);
      const loss = (): tf.Scalar => {
        const select = constantOf((s) => selectionMatrix(tf.topk(s, 2).indices as tf.Tensor1D, 3), scores); // rows 1, 2
        return tf.sum(tf.matMul(select, h));
      };
      let grads: Record<string, tf.Tensor> = {};
      const profile = await tf.profile(() => {
        const result = tf.variableGrads(loss, [h, scores]);
        grads = result.grads;
        return [result.value, ...Object.values(result.grads)];
      });
      expect(Array.from(grads[h.name]!.dataSync())).toEqual([0, 0, 1, 1, 1, 1]);
      expect(grads[scores.name]).toBeUndefined();
      // Forward: TopK, OneHot and casts, one product; backward: dh = Sᵀ·1 only (one product; no dS = 1·hᵀ, no zeros).
      expect(profile.kernels.filter((k) => k.name === 'BatchMatMul' || k.name === '_FusedMatMul')).toHaveLength(2);
      expect(profile.kernels.some((k) => k.name === 'ZerosLike' || k.name === 'Fill')).toBe(false);
      tf.dispose([h, scores, ...Object.values(grads)]);
    });
  });
}
