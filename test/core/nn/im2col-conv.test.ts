// The im2col convolution against tfjs' own conv2d and its gradient kernels on cpu (forward, dX, dW), against
// central finite differences (the loss Σ r ⊙ conv(x, W) is linear in each argument, so a difference of step 1 is
// exact up to float rounding), on wasm with milkit's BLAS kernels, and through Conv2d's `algorithm` option.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, describe, expect, it } from 'vitest';
import { Conv2d } from '../../../src/core/nn/conv.js';
import { col2im, conv2dIm2col, im2col } from '../../../src/core/nn/im2col-conv.js';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../../src/core/runtime/index.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { expectClose } from '../../helpers/zoo.js';

afterAll(async () => {
  await tf.setBackend('cpu');
});

type Shape4 = [number, number, number, number];

/** [label, input [N, H, W, C], kernel side, output channels, stride, padding]. */
const CASES: Array<[string, Shape4, number, number, number, number]> = [
  ['LeNet conv1: 5×5, 1→4 on 12×12', [2, 12, 12, 1], 5, 4, 1, 0],
  ['LeNet conv2: 5×5, 3→5 on 8×8', [3, 8, 8, 3], 5, 5, 1, 0],
  ['3×3 padded on a 7×5 input', [2, 7, 5, 2], 3, 3, 1, 1],
  ['3×3 stride 2 padded (odd remainder)', [1, 8, 7, 2], 3, 2, 2, 1],
  ['4×4 stride 3 unpadded', [2, 11, 10, 3], 4, 2, 3, 0],
];

function loss(y: tf.Tensor, r: tf.Tensor): tf.Scalar {
  return tf.sum(tf.mul(y, r));
}

describe('nn/im2col-conv', () => {
  it.each(CASES)('equals tfjs conv2d and its gradient kernels on cpu (%s)', async (_, xShape, k, outChannels, stride, pad) => {
    await tf.setBackend('cpu');
    const x = tf.randomNormal(xShape, 0, 1, 'float32', 1) as tf.Tensor4D;
    const w = tf.randomNormal([k, k, xShape[3], outChannels], 0, 1, 'float32', 2) as tf.Tensor4D;
    const expected = tf.conv2d(x, w, stride, pad);
    const actual = conv2dIm2col(x, w, stride, pad);
    expect(actual.shape).toEqual(expected.shape);
    const r = tf.randomNormal(expected.shape, 0, 1, 'float32', 3);
    expectClose(actual.dataSync(), expected.dataSync(), 'forward', 1e-4, 1e-4);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => loss(conv2dIm2col(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad), r))([x, w]);
    const [sx, sw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => loss(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad), r))([x, w]);
    expectClose((dx as tf.Tensor).dataSync(), (sx as tf.Tensor).dataSync(), 'dx', 1e-4, 1e-4);
    expectClose((dw as tf.Tensor).dataSync(), (sw as tf.Tensor).dataSync(), 'dw', 1e-4, 1e-4);
  });

  it('has the gradient of central finite differences, entry by entry', async () => {
    await tf.setBackend('cpu');
    const [, xShape, k, outChannels, stride, pad] = CASES[3] as (typeof CASES)[number];
    const x = tf.randomNormal(xShape, 0, 1, 'float32', 4) as tf.Tensor4D;
    const w = tf.randomNormal([k, k, xShape[3], outChannels], 0, 1, 'float32', 5) as tf.Tensor4D;
    const r = tf.randomNormal(conv2dIm2col(x, w, stride, pad).shape, 0, 1, 'float32', 6);
    const f = (a: tf.Tensor4D, b: tf.Tensor4D): number => loss(conv2dIm2col(a, b, stride, pad), r).dataSync()[0] as number;
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => loss(conv2dIm2col(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad), r))([x, w]);
    const numeric = (t: tf.Tensor4D, at: (moved: tf.Tensor4D) => number): Float32Array => {
      const base = t.dataSync();
      return Float32Array.from(base, (_, i) => {
        const bump = (delta: number): number => {
          const moved = Float32Array.from(base);
          moved[i] = (moved[i] as number) + delta;
          return at(tf.tensor4d(moved, t.shape));
        };
        return (bump(1) - bump(-1)) / 2;
      });
    };
    expectClose((dx as tf.Tensor).dataSync(), numeric(x, (moved) => f(moved, w)), 'dx vs finite differences', 1e-3, 1e-3);
    expectClose((dw as tf.Tensor).dataSync(), numeric(w, (moved) => f(x, moved)), 'dw vs finite differences', 1e-3, 1e-3);
  });

  it('col2im is the adjoint of im2col: ⟨im2col(x), P⟩ = ⟨x, col2im(P)⟩, and windows on the padding read zeros', async () => {
    await tf.setBackend('cpu');
    const x = tf.randomNormal([2, 6, 5, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    const columns = im2col(x, 3, 2, 1);
    expect(columns.shape).toEqual([2 * 3 * 3, 27]);
    const p = tf.randomNormal(columns.shape, 0, 1, 'float32', 8) as tf.Tensor2D;
    const left = tf.sum(tf.mul(columns, p)).dataSync()[0] as number;
    const right = tf.sum(tf.mul(x, col2im(p, [2, 6, 5, 3], 3, 2, 1))).dataSync()[0] as number;
    expect(Math.abs(left - right)).toBeLessThan(1e-3 * Math.max(1, Math.abs(left)));
    // Output (0, 0) with padding 1 reads rows −1..1 and columns −1..1: its first three offsets are all padding.
    expect(Array.from(columns.slice([0, 0], [1, 9]).dataSync())).toEqual(Array.from({ length: 9 }, () => 0));
  });

  it('gives the same values and gradients on wasm with milkit\'s BLAS kernels as on cpu', async () => {
    await tf.setBackend('cpu');
    const [, xShape, k, outChannels, stride, pad] = CASES[1] as (typeof CASES)[number];
    const xs = tf.randomNormal(xShape, 0, 1, 'float32', 9).dataSync();
    const ws = tf.randomNormal([k, k, xShape[3], outChannels], 0, 1, 'float32', 10).dataSync();
    const run = (): Float32Array[] => {
      const x = tf.tensor4d(xs, xShape);
      const w = tf.tensor4d(ws, [k, k, xShape[3], outChannels]);
      const y = conv2dIm2col(x, w, stride, pad);
      const r = tf.tensor(Float32Array.from({ length: y.size }, (_, i) => Math.sin(0.37 * i)), y.shape);
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => loss(conv2dIm2col(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad), r))([x, w]);
      return [y.dataSync() as Float32Array, (dx as tf.Tensor).dataSync() as Float32Array, (dw as tf.Tensor).dataSync() as Float32Array];
    };
    const onCpu = run();
    await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
    const before = tf.memory().numTensors;
    const onWasm = run();
    ['forward', 'dx', 'dw'].forEach((what, i) => expectClose(onWasm[i] as Float32Array, onCpu[i] as Float32Array, `wasm ${what}`, 1e-4, 1e-4));
    tf.disposeVariables();
    expect(tf.memory().numTensors - before).toBeLessThan(12); // the run's own outputs and operands, no per-op leak
  });

  it('is what Conv2d runs with algorithm "im2col" (same output and gradients as the direct path) and refuses depthwise', async () => {
    await tf.setBackend('cpu');
    const direct = new Conv2d(3, 4, { kernelSize: 3, padding: 1, bias: true }, new Rng('im2col-test'));
    const patched = new Conv2d(3, 4, { kernelSize: 3, padding: 1, bias: true, algorithm: 'im2col' }, new Rng('im2col-test'));
    const x = tf.randomNormal([2, 6, 6, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
    expectClose(patched.forward(x).dataSync(), direct.forward(x).dataSync(), 'Conv2d forward', 1e-5, 1e-5);
    const gradsOf = (conv: Conv2d): Float32Array => {
      const { grads } = tf.variableGrads(() => tf.sum(tf.square(conv.forward(x))) as tf.Scalar, [conv.weight]);
      return grads[conv.weight.name]?.dataSync() as Float32Array;
    };
    expectClose(gradsOf(patched), gradsOf(direct), 'Conv2d dW', 1e-4, 1e-4);
    expect(() => new Conv2d(3, 3, { kernelSize: 3, groups: 3, algorithm: 'im2col' }, new Rng('dw'))).toThrow(/regular convolutions only/);
  });
});
