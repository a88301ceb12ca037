import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, describe, expect, it } from 'vitest';
import { depthwiseConvSame, sequenceConvSame } from '../../../src/core/nn/depthwise-conv.js';
import { installHeapKernels, restoreHeapKernels } from '../../../src/core/runtime/heap-kernels.js';
import { expectClose } from '../../helpers/zoo.js';

afterAll(async () => {
  await tf.setBackend('cpu');
});

/** Gradients of Σ(w_out ⊙ conv(x, k)) w.r.t. x and k, through `conv`. */
function grads(conv: (x: tf.Tensor4D, k: tf.Tensor4D) => tf.Tensor4D, x: tf.Tensor4D, k: tf.Tensor4D, weights: tf.Tensor4D): tf.Tensor[] {
  return tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a as tf.Tensor4D, b as tf.Tensor4D), weights)))([x, k]);
}

const CASES: Array<[string, [number, number, number], [number, number]]> = [
  ['7×7 on 5×6', [5, 6, 3], [7, 7]],
  ['3×3 on 4×4', [4, 4, 2], [3, 3]],
  ['33×1 along a sequence of 20', [20, 4, 2], [33, 1]],
  ['1×5 on 3×7', [3, 7, 2], [1, 5]],
];

describe('nn/depthwise-conv', () => {
  it.each(CASES)('matches tfjs\' own depthwise conv and its gradients on cpu (%s)', async (_, [h, w, c], [kh, kw]) => {
    await tf.setBackend('cpu');
    const x = tf.randomNormal([1, h, w, c], 0, 1, 'float32', 1) as tf.Tensor4D;
    const k = tf.randomNormal([kh, kw, c, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
    const weights = tf.randomNormal([1, h, w, c], 0, 1, 'float32', 3) as tf.Tensor4D;
    expectClose(depthwiseConvSame(x, k).dataSync(), tf.depthwiseConv2d(x, k, 1, 'same').dataSync(), 'forward', 1e-5, 1e-5);
    const [dx, dk] = grads(depthwiseConvSame, x, k, weights);
    const [sx, sk] = grads((a, b) => tf.depthwiseConv2d(a, b, 1, 'same'), x, k, weights);
    expectClose((dx as tf.Tensor).dataSync(), (sx as tf.Tensor).dataSync(), 'dx', 1e-4, 1e-4);
    expectClose((dk as tf.Tensor).dataSync(), (sk as tf.Tensor).dataSync(), 'dk', 1e-4, 1e-4);
  });

  it('trains on wasm, whose stock depthwise gradient kernels are missing', async () => {
    await tf.setBackend('wasm');
    const x = tf.randomNormal([1, 6, 6, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const k = tf.randomNormal([7, 7, 3, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
    const weights = tf.randomNormal([1, 6, 6, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
    expect(() => grads((a, b) => tf.depthwiseConv2d(a, b, 1, 'same'), x, k, weights)).toThrow(/not registered for backend 'wasm'/);
    const [dx, dk] = grads(depthwiseConvSame, x, k, weights);
    const wasmDx = (dx as tf.Tensor).dataSync().slice();
    const wasmDk = (dk as tf.Tensor).dataSync().slice();
    const xs = x.dataSync().slice();
    const ks = k.dataSync().slice();
    const ws = weights.dataSync().slice();
    await tf.setBackend('cpu');
    const [sx, sk] = grads((a, b) => tf.depthwiseConv2d(a, b, 1, 'same'), tf.tensor4d(xs, [1, 6, 6, 3]), tf.tensor4d(ks, [7, 7, 3, 1]), tf.tensor4d(ws, [1, 6, 6, 3]));
    expectClose(wasmDx, (sx as tf.Tensor).dataSync(), 'wasm dx', 1e-4, 1e-4);
    expectClose(wasmDk, (sk as tf.Tensor).dataSync(), 'wasm dk', 1e-4, 1e-4);
  });

  it.each([[[5, 6, 20], [7, 7]], [[9, 4, 8], [3, 5]], [[1, 1, 4], [3, 3]], [[3, 11, 36], [5, 1]]] as Array<[[number, number, number], [number, number]]>)(
    'with the wasm heap kernels installed (%j, kernel %j): forward and both gradients match tfjs on cpu, the filter gradient through the heap kernel',
    async ([h, w, c], [kh, kw]) => {
      await tf.setBackend('wasm');
      expect(installHeapKernels()).toBe(true);
      try {
        const x = tf.randomNormal([1, h, w, c], 0, 1, 'float32', 11) as tf.Tensor4D;
        const k = tf.randomNormal([kh, kw, c, 1], 0, 1, 'float32', 12) as tf.Tensor4D;
        const weights = tf.randomNormal([1, h, w, c], 0, 1, 'float32', 13) as tf.Tensor4D;
        const [xs, ks, ws] = [x, k, weights].map((t) => t.dataSync().slice());
        const forward = depthwiseConvSame(x, k).dataSync().slice();
        let result: tf.Tensor[] = [];
        const profile = await tf.profile(() => {
          result = grads(depthwiseConvSame, x, k, weights);
        });
        expect(profile.kernels.map((kernel) => kernel.name)).toContain('MilkitDepthwiseFilterGrad');
        const [dx, dk] = result.map((t) => t.dataSync().slice());
        await tf.setBackend('cpu');
        const [cx, ck, cw] = [tf.tensor4d(xs!, [1, h, w, c]), tf.tensor4d(ks!, [kh, kw, c, 1]), tf.tensor4d(ws!, [1, h, w, c])];
        expectClose(forward, tf.depthwiseConv2d(cx, ck, 1, 'same').dataSync(), 'forward', 1e-5, 1e-5);
        const [sx, sk] = grads((a, b) => tf.depthwiseConv2d(a, b, 1, 'same'), cx, ck, cw);
        expectClose(dx!, (sx as tf.Tensor).dataSync(), 'dx', 1e-4, 1e-4);
        expectClose(dk!, (sk as tf.Tensor).dataSync(), 'dk', 1e-4, 1e-4);
      } finally {
        await tf.setBackend('wasm');
        restoreHeapKernels();
      }
    },
  );

  it.each([[33, 20, 4], [33, 70, 3], [5, 9, 2], [1, 6, 3]])('computes the per-head sequence conv (k = %i, L = %i, d = %i) as block-Toeplitz matmuls, gradients included', async (k, length, depth) => {
    await tf.setBackend('cpu');
    const heads = 2;
    const v = tf.randomNormal([heads, length, depth], 0, 1, 'float32', 7) as tf.Tensor3D;
    const w = tf.randomNormal([k, 1, heads, 1], 0, 1, 'float32', 8) as tf.Tensor4D;
    const weights = tf.randomNormal([heads, length, depth], 0, 1, 'float32', 9) as tf.Tensor3D;
    // Reference: the same conv as NHWC depthwise conv2d with heads as channels.
    const direct = (a: tf.Tensor, b: tf.Tensor): tf.Tensor => tf.transpose(tf.squeeze(tf.depthwiseConv2d(tf.expandDims(tf.transpose(a, [1, 2, 0]), 0) as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), [0]), [2, 0, 1]);
    expectClose(sequenceConvSame(v, w).dataSync(), direct(v, w).dataSync(), 'forward', 1e-5, 1e-5);
    const loss = (conv: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor) => (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a, b), weights));
    const [dv, dw] = tf.grads(loss((a, b) => sequenceConvSame(a as tf.Tensor3D, b as tf.Tensor4D)))([v, w]);
    const [sv, sw] = tf.grads(loss(direct))([v, w]);
    expectClose((dv as tf.Tensor).dataSync(), (sv as tf.Tensor).dataSync(), 'dv', 1e-4, 1e-4);
    expectClose((dw as tf.Tensor).dataSync(), (sw as tf.Tensor).dataSync(), 'dw', 1e-4, 1e-4);
  });

  it('rejects even kernels', async () => {
    await tf.setBackend('cpu');
    expect(() => depthwiseConvSame(tf.zeros([1, 3, 3, 1]) as tf.Tensor4D, tf.zeros([2, 2, 1, 1]) as tf.Tensor4D)).toThrow(/odd-sized/);
  });
});
