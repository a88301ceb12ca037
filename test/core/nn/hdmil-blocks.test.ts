import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { BatchNorm } from '../../../src/core/nn/batchnorm.js';
import { Conv2d, conv2dAnyBackend, depthwiseConv2dAnyBackend } from '../../../src/core/nn/conv.js';
import { maskedColumnMax, nonZeroDivisor, stepGate, stopGradient, straightThroughGate } from '../../../src/core/nn/gradients.js';
import { unionKeepRate } from '../../../src/core/nn/keep-rate.js';
import { makeDivisible } from '../../../src/core/nn/mobilenet-v4.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { expectClose, useBackend } from '../../helpers/hdmil.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('nn/gradients', () => {
  it('stopGradient keeps the value and blocks the gradient', () => {
    const x = tf.tensor1d([1, 2]);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(stopGradient(v), v)))(x);
    expect(Array.from(g.dataSync())).toEqual([1, 2]); // d/dv (c·v) with c = v held constant
  });

  it('straightThroughGate has the hard value and the gradient of the soft input', () => {
    const soft = tf.tensor1d([0.2, 0.5, 0.51, 0.9]);
    const gate = straightThroughGate(soft, 0.5);
    expect(Array.from(gate.dataSync())).toEqual([0, 0, 1, 1]); // strict >
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(straightThroughGate(v, 0.5), tf.tensor1d([1, 2, 3, 4]))))(soft);
    expect(Array.from(g.dataSync())).toEqual([1, 2, 3, 4]);
  });

  it('stepGate has zero gradient and lets a comparison sit on the differentiable path', () => {
    const x = tf.tensor1d([-1, 3]);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(stepGate(v, 0), v)))(x);
    expect(Array.from(g.dataSync())).toEqual([0, 1]);
  });

  it('maskedColumnMax takes the max over kept rows, 0 for an empty column', () => {
    const x = tf.tensor2d([[1, 5, -2], [4, -1, -3]]);
    const mask = tf.tensor2d([[1, 0, 0], [0, 1, 0]]);
    expect(Array.from(maskedColumnMax(x, mask).dataSync())).toEqual([1, -1, 0]);
  });

  it('nonZeroDivisor replaces exact zeros by 1 and passes the gradient elsewhere', () => {
    const x = tf.tensor1d([0, 2]);
    expect(Array.from(nonZeroDivisor(x).dataSync())).toEqual([1, 2]);
    expect(Array.from(tf.grad((v: tf.Tensor) => tf.sum(nonZeroDivisor(v)))(x).dataSync())).toEqual([0, 1]);
  });
});

describe('nn/keep-rate', () => {
  it('counts the union of the first two branches with the gradient of their sum / N', () => {
    const mask = tf.tensor2d([[1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0]]);
    expect(unionKeepRate(mask, 'first-two').dataSync()[0]).toBeCloseTo(0.5, 7);
    expect(unionKeepRate(mask, 'all').dataSync()[0]).toBeCloseTo(0.75, 7);
    const g = tf.grad((m: tf.Tensor) => unionKeepRate(m as tf.Tensor2D, 'first-two'))(mask).arraySync() as number[][];
    expect(g).toEqual(Array.from({ length: 4 }, () => [0.25, 0.25, 0]));
  });
});

describe('nn/conv', () => {
  it('computes a stride-2, pad-1 convolution as PyTorch does (torch weight loaded through perm)', () => {
    const conv = new Conv2d(1, 1, { kernelSize: 3, stride: 2 }, new Rng(0));
    // torch weight [1, 1, 3, 3] = 1..9 row-major; milkit stores [3, 3, 1, 1].
    conv.weight.assign(tf.tensor4d(Array.from({ length: 9 }, (_, i) => i + 1), [3, 3, 1, 1]));
    const x = tf.tensor4d(Array.from({ length: 16 }, (_, i) => i), [1, 4, 4, 1]);
    // Output (0,0): window rows -1..1, cols -1..1 → only x[0..1][0..1] = [0,1;4,5] meet w[1..2][1..2] = [5,6;8,9].
    const y = conv.forward(x).dataSync();
    expect(y[0]).toBe(0 * 5 + 1 * 6 + 4 * 8 + 5 * 9);
    expect(conv.namedTensors()[0]?.[1].torch.perm).toEqual([3, 2, 0, 1]);
  });

  it('applies one filter per channel when depthwise (torch [C, 1, k, k], perm [2, 3, 0, 1])', () => {
    const conv = new Conv2d(2, 2, { kernelSize: 1, groups: 2 }, new Rng(0));
    conv.weight.assign(tf.tensor4d([2, -3], [1, 1, 2, 1]));
    const y = conv.forward(tf.tensor4d([1, 1, 5, 5], [1, 2, 1, 2])).dataSync();
    expect(Array.from(y)).toEqual([2, -3, 10, -15]);
    expect(conv.namedTensors()[0]?.[1].torch.perm).toEqual([2, 3, 0, 1]);
  });

  it.each([
    // [kernel, stride, pad, H, W, C_in, C_out]
    [3, 2, 1, 16, 16, 3, 4],
    [3, 2, 1, 4, 4, 2, 3],
    [1, 1, 0, 4, 4, 3, 2],
    [5, 2, 2, 2, 2, 2, 2],
    [3, 1, 1, 5, 3, 2, 2],
    [5, 1, 2, 2, 2, 3, 3],
    [3, 2, 1, 5, 5, 2, 2],
  ])('regular and depthwise gradients (k%i s%i p%i, %ix%i) on cpu and wasm equal tfjs\' native cpu ones', async (k, stride, pad, h, w, cin, cout) => {
    const rng = new Rng(`conv/${k}/${stride}/${h}`);
    const xData = rng.normalArray(2 * h * w * cin);
    const wData = rng.normalArray(k * k * cin * cout);
    const dwData = rng.normalArray(k * k * cin);
    const probe = (y: tf.Tensor): tf.Scalar => tf.sum(tf.mul(y, tf.sin(tf.range(0, y.size).reshape(y.shape)))) as tf.Scalar;
    const gradsOf = (conv: (a: tf.Tensor4D, b: tf.Tensor4D) => tf.Tensor, filter: Float32Array, filterShape: number[]): Float32Array[] => tf.tidy(() => {
      const x = tf.tensor4d(xData, [2, h, w, cin]);
      const f = tf.tensor4d(filter, filterShape as [number, number, number, number]);
      return tf.grads((a: tf.Tensor, b: tf.Tensor) => probe(conv(a as tf.Tensor4D, b as tf.Tensor4D)))([x, f]).map((g) => g.dataSync() as Float32Array);
    });
    const regular = [k, k, cin, cout];
    const depthwise = [k, k, cin, 1];
    await useBackend('cpu');
    const native = gradsOf((a, b) => tf.conv2d(a, b, stride, pad), wData, regular);
    const nativeDw = gradsOf((a, b) => tf.depthwiseConv2d(a, b, stride, pad), dwData, depthwise);
    for (const backend of ['cpu', 'wasm'] as const) {
      await useBackend(backend);
      gradsOf((a, b) => conv2dAnyBackend(a, b, stride, pad), wData, regular).forEach((g, i) => expectClose(g, native[i] as Float32Array, 1e-4, 1e-4, `${backend} conv d${i}`));
      gradsOf((a, b) => depthwiseConv2dAnyBackend(a, b, stride, pad), dwData, depthwise).forEach((g, i) => expectClose(g, nativeDw[i] as Float32Array, 1e-4, 1e-4, `${backend} depthwise d${i}`));
    }
    await useBackend('cpu');
  });

  it('draws fan-out normal weights: std sqrt(2/(k·k·out))', () => {
    const conv = new Conv2d(16, 48, { kernelSize: 3, init: 'fan-out-normal' }, new Rng(1));
    const v = Array.from(conv.weight.dataSync());
    const std = Math.sqrt(v.reduce((a, b) => a + b * b, 0) / v.length);
    expect(std / Math.sqrt(2 / (9 * 48)) - 1).toBeLessThan(0.05);
  });
});

describe('nn/batchnorm', () => {
  it('normalises by batch statistics in training and updates running stats with the unbiased variance', () => {
    const bn = new BatchNorm(1);
    const x = tf.tensor2d([[1], [2], [3], [6]]); // mean 3, biased var 3.5, unbiased 14/3
    const y = bn.forward(x, true).dataSync();
    expectClose(y, [1, 2, 3, 6].map((v) => (v - 3) / Math.sqrt(3.5 + 1e-5)), 1e-6, 1e-5, 'normalised');
    expectClose(bn.runningMean.dataSync(), [0.3], 1e-7, 1e-6, 'running mean');
    expectClose(bn.runningVar.dataSync(), [0.9 + 0.1 * (14 / 3)], 1e-6, 1e-6, 'running var');
    expect(bn.batchesTracked.dataSync()[0]).toBe(1);
    const evalY = bn.forward(tf.tensor2d([[0.3]]), false).dataSync();
    expect(evalY[0]).toBeCloseTo(0, 6);
  });

  it('rounds the MobileNet expansion width to a multiple of 8', () => {
    expect(makeDivisible(48)).toBe(48);
    expect(makeDivisible(96)).toBe(96);
    expect(makeDivisible(20)).toBe(24);
    expect(makeDivisible(9)).toBe(16);
  });
});
