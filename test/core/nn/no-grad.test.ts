// constantOf / selectionMatrix: values computed off the gradient tape (torch no_grad). The gradient treats the result
// as a constant, backprop runs no kernel for it (no product for the gradient of a selection matrix, no zero
// gradients for its inputs), and an input reached only through constants gets no gradient.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { constantOf, selectionMatrix, selectRows } from '../../../src/core/nn/no-grad.js';
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

    it('selectRows gathers rows and scatters their gradient like the selection-matrix product, repeated rows summed', () => {
      const x = tf.tensor2d([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]);
      const indices = tf.tensor1d([2, 0, 2], 'float32'); // a repeated row; float32 as constantOf returns indices
      const weights = tf.tensor2d([[1, -1, 2], [0.5, 3, -2], [4, 0.25, 1]]);
      const viaGather = (v: tf.Tensor): tf.Scalar => tf.sum(tf.mul(selectRows(v as tf.Tensor2D, indices), weights));
      const viaMatrix = (v: tf.Tensor): tf.Scalar => tf.sum(tf.mul(tf.matMul(selectionMatrix(indices, 4), v as tf.Tensor2D), weights));
      expect(Array.from(selectRows(x, indices).dataSync())).toEqual([7, 8, 9, 1, 2, 3, 7, 8, 9]);
      const dx = tf.grad(viaGather)(x);
      expect(Array.from(dx.dataSync())).toEqual(Array.from(tf.grad(viaMatrix)(x).dataSync()));
      expect(Array.from(dx.dataSync())).toEqual([0.5, 3, -2, 0, 0, 0, 5, -0.75, 3, 0, 0, 0]);
    });

    it('selectRows rejects a row outside the matrix', () => {
      expect(() => selectRows(tf.zeros([3, 2]) as tf.Tensor2D, tf.tensor1d([1, 3], 'int32'))).toThrow(/row 3 is outside \[0, 3\)/);
    });
  });
}
