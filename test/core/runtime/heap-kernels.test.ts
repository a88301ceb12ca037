// The fused heap kernels (src/core/runtime/heap-kernels.ts): the committed binary is the assembled .wat; the fused
// ReLU/tanh/sigmoid backward and the in-place Adam step are bit-identical to the stock tfjs chains they replace, on
// vector bodies and scalar tails and on special values; the stock chains really are replaced (kernel names in a
// profile); the gradients fall back where the kernels cannot run; and nothing leaks.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdamOptimizer } from '../../../src/core/engine/optim/adam.js';
import type { ParamSlot } from '../../../src/core/engine/optim/base.js';
import { silentLogger } from '../../../src/core/logger.js';
import { activeHeapKernels, adamStepOnHeap, heapKernelsAvailable, installHeapKernels, restoreHeapKernels } from '../../../src/core/runtime/heap-kernels.js';
import { HEAP_KERNELS_WASM_BASE64 } from '../../../src/core/runtime/heap-kernels-wasm.js';
import { initRuntime, overriddenWasmKernels, RuntimeSection } from '../../../src/core/runtime/index.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { assembleHeapKernels } from '../../reference/assemble-heap-kernels.js';

/** float32 bit patterns, every NaN as one pattern (payloads are not part of the contract). */
function bits(values: ArrayLike<number>): number[] {
  const f = Float32Array.from(values as ArrayLike<number>);
  const u = new Uint32Array(f.buffer);
  return Array.from(f, (v, i) => (Number.isNaN(v) ? 0x7fc00000 : (u[i] as number)));
}

const SPECIAL = [0, -0, 1, -1, 1e-30, -1e-30, 3.4e38, -3.4e38, Infinity, -Infinity, NaN, 0.5, 1 - 2 ** -24];

/** Values with the special ones spread in; sizes cover an empty tensor, tails of 1–3 and whole vectors. */
function data(size: number, rng: Rng, scale = 2): Float32Array {
  const values = Float32Array.from(rng.normalArray(size, 0, scale));
  for (let i = 0; i < size; i += 7) values[i] = SPECIAL[(i / 7) % SPECIAL.length] as number;
  return values;
}
const SHAPES: number[][] = [[0], [1], [3], [4], [5], [7, 9], [37, 53], [1000, 128]];

type Activation = 'relu' | 'tanh' | 'sigmoid';
const ACTIVATIONS: Record<Activation, { fn: (x: tf.Tensor) => tf.Tensor; kernel: string; stockKernels: string[] }> = {
  relu: { fn: tf.relu, kernel: 'MilkitReluGrad', stockKernels: ['Step'] },
  tanh: { fn: tf.tanh, kernel: 'MilkitTanhGrad', stockKernels: ['Square'] },
  sigmoid: { fn: tf.sigmoid, kernel: 'MilkitSigmoidGrad', stockKernels: ['Sub'] },
};

/** d(sum(f(x) · w))/dx: the upstream gradient is w, so every special value reaches the backward as dy too. */
function gradient(activation: Activation, x: Float32Array, w: Float32Array, shape: number[]): Float32Array {
  return tf.tidy(() => {
    const xs = tf.tensor(x, shape, 'float32');
    const ws = tf.tensor(w, shape, 'float32');
    const g = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(ACTIVATIONS[activation].fn(input), ws)))(xs);
    return Float32Array.from(g.dataSync());
  });
}

it('the committed binary is heap-kernels.wat assembled', async () => {
  const binary = await assembleHeapKernels();
  expect(Buffer.from(binary).toString('base64')).toBe(HEAP_KERNELS_WASM_BASE64);
});

describe('core/runtime heap kernels on wasm', () => {
  beforeAll(async () => {
    await initRuntime(RuntimeSection.parse({ backend: 'wasm', blas: 'off' }), { logger: silentLogger });
    expect(heapKernelsAvailable()).toBe(true);
  });
  afterAll(() => restoreHeapKernels());

  for (const activation of Object.keys(ACTIVATIONS) as Activation[]) {
    it(`${activation} backward: bit-identical to tfjs's chain on every size and special value, and used`, async () => {
      const rng = new Rng(`heap/${activation}`);
      for (const shape of SHAPES) {
        const size = shape.reduce((a, b) => a * b, 1);
        const x = data(size, rng);
        const w = data(size, rng, 1).reverse();
        restoreHeapKernels();
        const stock = gradient(activation, x, w, shape);
        expect(installHeapKernels()).toBe(true);
        const fused = gradient(activation, x, w, shape);
        expect(bits(fused), `[${shape}]`).toEqual(bits(stock));
        if (size > 7) expect(stock.some((v) => v !== 0 && Number.isFinite(v)), `[${shape}] has non-trivial values`).toBe(true);
      }
      // The fused kernel replaced the chain: one call, and not the chain's first kernel.
      const xs = tf.randomNormal([64, 32]);
      const profile = await tf.profile(() => tf.dispose(tf.grad((input: tf.Tensor) => tf.sum(ACTIVATIONS[activation].fn(input)))(xs)));
      xs.dispose();
      const names = profile.kernels.map((k) => k.name);
      expect(names.filter((n) => n === ACTIVATIONS[activation].kernel)).toHaveLength(1);
      for (const stockKernel of ACTIVATIONS[activation].stockKernels) expect(names).not.toContain(stockKernel);
    });
  }

  it('Exp: within 2 ulp of the correctly rounded e^x over the float32 range, special values exact, tails included', () => {
    installHeapKernels();
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    const bitsOf = (v: number): number => {
      f[0] = v;
      return u[0] as number;
    };
    // A dense grid over everything between underflow and overflow, and the edges themselves.
    const grid: number[] = [];
    for (let v = -110; v <= 90; v += 0.000731) grid.push(v);
    grid.push(88.72283, 88.7228394, 88.72284, 88.8, -87.33654, -87.3365, -87.4, -100, -103.97, -103.98, -104, -150, 1e-10, -1e-10, 0.5, -0.5, 1, -1, 2 ** -20);
    for (const size of [grid.length, 1, 3, 5]) {
      const xs = Float32Array.from(grid.slice(0, size));
      const ys = tf.tidy(() => Float32Array.from(tf.exp(tf.tensor(xs, [size], 'float32')).dataSync()));
      let worstUlp = 0;
      for (let i = 0; i < size; i += 1) {
        const x = xs[i] as number;
        const exact = Math.fround(Math.exp(x));
        const got = ys[i] as number;
        if (exact === Infinity) expect(got, `e^${x}`).toBe(Infinity);
        else if (exact < 2 ** -126) expect(Math.abs(got - exact), `e^${x} (denormal range)`).toBeLessThanOrEqual(2 ** -148);
        else worstUlp = Math.max(worstUlp, Math.abs(bitsOf(got) - bitsOf(exact)));
      }
      expect(worstUlp, `size ${size}`).toBeLessThanOrEqual(2);
    }
    const special = tf.tidy(() => Array.from(tf.exp(tf.tensor([NaN, Infinity, -Infinity, 0, -0, 89, -104, 1000, -1000])).dataSync()));
    expect(special).toEqual([NaN, Infinity, 0, 1, 1, Infinity, 0, Infinity, 0]);
    expect(activeHeapKernels()).toContain('Exp');
    // The stock kernel is put back with the others.
    restoreHeapKernels();
    expect(activeHeapKernels()).not.toContain('Exp');
    expect(tf.tidy(() => tf.exp(tf.tensor([0, 1])).dataSync()[0])).toBe(1);
  });

  it('depthwise conv (stride 1, same, odd kernels): matches a float64 loop on every edge, batch and channel block; other configurations fall back', async () => {
    installHeapKernels();
    const rng = new Rng('heap-kernels/depthwise');
    /** out[b, y, x, c] = Σ_{i,j} in[b, y+i-ph, x+j-pw, c]·w[i, j, c] over taps inside the image, in float64. */
    const reference = (x: Float32Array, w: Float32Array, [batch, h, wd, c]: number[], kh: number, kw: number): Float64Array => {
      const out = new Float64Array(batch! * h! * wd! * c!);
      const [ph, pw] = [(kh - 1) / 2, (kw - 1) / 2];
      for (let b = 0; b < batch!; b += 1) for (let y = 0; y < h!; y += 1) for (let xx = 0; xx < wd!; xx += 1) for (let ch = 0; ch < c!; ch += 1) {
        let sum = 0;
        for (let i = 0; i < kh; i += 1) for (let j = 0; j < kw; j += 1) {
          const [yy, xj] = [y + i - ph, xx + j - pw];
          if (yy >= 0 && yy < h! && xj >= 0 && xj < wd!) sum += (x[((b * h! + yy) * wd! + xj) * c! + ch] as number) * (w[(i * kw + j) * c! + ch] as number);
        }
        out[((b * h! + y) * wd! + xx) * c! + ch] = sum;
      }
      return out;
    };
    // Channels 4 (one vector), 20 (a 16-wide block and a 4-wide rest), 48; images smaller than the kernel; batch 2;
    // non-square kernels.
    const cases: Array<[number[], number, number]> = [[[1, 5, 6, 4], 3, 3], [[1, 9, 7, 20], 7, 7], [[2, 4, 11, 48], 5, 3], [[1, 2, 3, 16], 7, 5], [[1, 1, 1, 4], 3, 3]];
    for (const [shape, kh, kw] of cases) {
      const x = Float32Array.from(rng.normalArray(shape.reduce((a, b) => a * b, 1), 0, 1));
      const w = Float32Array.from(rng.normalArray(kh * kw * shape[3]!, 0, 1));
      const got = tf.tidy(() => tf.depthwiseConv2d(tf.tensor4d(x, shape as [number, number, number, number]), tf.tensor4d(w, [kh, kw, shape[3]!, 1]), 1, 'same').dataSync());
      const want = reference(x, w, shape, kh, kw);
      let worst = 0;
      want.forEach((v, i) => { worst = Math.max(worst, Math.abs((got[i] as number) - v) / (1 + Math.abs(v))); });
      expect(worst, `${shape.join('x')} k${kh}x${kw}`).toBeLessThan(1e-5);
    }
    const profiled = async (fn: () => tf.Tensor): Promise<string[]> => (await tf.profile(() => { tf.dispose(fn()); })).kernels.map((k) => k.name);
    const x = tf.randomNormal([1, 6, 6, 8]) as tf.Tensor4D;
    // Fallbacks: stride 2, 'valid' padding, channels not a multiple of 4, channel multiplier 2. All must agree with the
    // stock kernel exactly, because they are the stock kernel.
    const variants: Array<() => tf.Tensor> = [
      () => tf.depthwiseConv2d(x, tf.ones([3, 3, 8, 1]), 2, 'same'),
      () => tf.depthwiseConv2d(x, tf.ones([3, 3, 8, 1]), 1, 'valid'),
      () => tf.depthwiseConv2d(tf.slice(x, [0, 0, 0, 0], [1, 6, 6, 6]) as tf.Tensor4D, tf.ones([3, 3, 6, 1]), 1, 'same'),
      () => tf.depthwiseConv2d(x, tf.ones([3, 3, 8, 2]), 1, 'same'),
    ];
    // Which kernel ran: the heap kernel skips taps outside the image, the stock one multiplies the zero padding, so an
    // infinite weight on a tap that only ever sees padding (a 1 × 1 image, any tap but the centre) tells them apart.
    const paddingOnly = (): number[] => tf.tidy(() => Array.from(tf.depthwiseConv2d(tf.ones([1, 1, 1, 4]) as tf.Tensor4D, tf.tensor4d([Infinity, 0, 0, 0, ...new Array<number>(4 * 8).fill(1)], [3, 3, 4, 1]), 1, 'same').dataSync()));
    expect(paddingOnly()).toEqual([1, 1, 1, 1]);
    const installed = variants.map((fn) => tf.tidy(() => Array.from(fn().dataSync())));
    restoreHeapKernels();
    const stock = variants.map((fn) => tf.tidy(() => Array.from(fn().dataSync())));
    expect(installed).toEqual(stock);
    expect(paddingOnly()[0]).toBeNaN();
    x.dispose();
    expect(activeHeapKernels()).not.toContain('DepthwiseConv2dNative');
    expect(await profiled(() => tf.depthwiseConv2d(tf.ones([1, 3, 3, 4]) as tf.Tensor4D, tf.ones([3, 3, 4, 1]) as tf.Tensor4D, 1, 'same'))).toContain('DepthwiseConv2dNative');
  });

  it('keeps the tensor count flat and is listed among the runtime kernels only while installed', () => {
    installHeapKernels();
    const x = tf.randomNormal([300, 20]);
    const step = (): void => tf.dispose(tf.grad((input: tf.Tensor) => tf.sum(tf.sigmoid(tf.tanh(tf.relu(input)))))(x));
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i += 1) step();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    expect(activeHeapKernels()).toEqual(['DepthwiseConv2dNative', 'Exp', 'MilkitDepthwiseFilterGrad', 'MilkitReluGrad', 'MilkitSigmoidGrad', 'MilkitTanhGrad']);
    restoreHeapKernels();
    expect(activeHeapKernels()).toEqual([]);
    expect(overriddenWasmKernels()).not.toContain('MilkitReluGrad');
  });

  it('Adam in place: bit-identical to the unfused kernels (L2, decoupled, none), tails included; refuses shared buffers', () => {
    const rng = new Rng('heap/adam');
    const settings = [
      { decoupled: false, wd: 0 },
      { decoupled: false, wd: 1e-2 },
      { decoupled: true, wd: 5e-2 },
    ];
    for (const { decoupled, wd } of settings) {
      for (const shape of [[1], [3], [5], [33, 17]]) {
        const size = shape.reduce((a, b) => a * b, 1);
        const start = Float32Array.from(rng.normalArray(size, 0, 1));
        // The variable's own buffer (tf.variable shares its initial tensor's until that is disposed).
        const slot = (): ParamSlot => {
          const initial = tf.tensor(start, shape, 'float32');
          const variable = tf.variable(initial);
          initial.dispose();
          return { name: 'w', variable, weightDecay: wd };
        };
        const plainSlot = slot();
        const heapSlot = slot();
        const settingsOf = { betas: [0.8, 0.99] as const, eps: 1e-6, decoupledWeightDecay: decoupled };
        const plain = new AdamOptimizer([plainSlot], settingsOf);
        // The same state layout, stepped through the heap kernel directly.
        const heap = new AdamOptimizer([heapSlot], settingsOf) as unknown as { expAvg: tf.Variable[]; expAvgSq: tf.Variable[] } & AdamOptimizer;
        for (let t = 1; t <= 4; t += 1) {
          const lr = 10 ** -(1 + t);
          const grad = tf.tensor(data(size, rng, 10 ** (t - 3)).map((v) => (Number.isFinite(v) ? v : 1)), shape, 'float32');
          plain.step([grad], lr);
          const f32 = Math.fround;
          const done = adamStepOnHeap(heapSlot.variable, grad, heap.expAvg[0] as tf.Variable, heap.expAvgSq[0] as tf.Variable, {
            b1: f32(0.8), oneMinusB1: f32(1 - 0.8), b2: f32(0.99), oneMinusB2: f32(1 - 0.99),
            sqrtBc2: f32(Math.sqrt(1 - 0.99 ** t)), eps: f32(1e-6), stepSize: f32(lr / (1 - 0.8 ** t)),
            coupledWeightDecay: !decoupled && wd !== 0 ? f32(wd) : 0, decay: decoupled && wd !== 0 ? f32(1 - lr * wd) : 1,
          });
          expect(done).toBe(true);
          grad.dispose();
          const label = `decoupled ${decoupled} wd ${wd} [${shape}] step ${t}`;
          expect(bits(heapSlot.variable.dataSync()), label).toEqual(bits(plainSlot.variable.dataSync()));
          const plainState = plain.state();
          expect(bits((heap.expAvgSq[0] as tf.Variable).dataSync()), label).toEqual(bits((plainState['exp_avg_sq/w'] as tf.Tensor).dataSync()));
          expect(bits((heap.expAvg[0] as tf.Variable).dataSync()), label).toEqual(bits((plainState['exp_avg/w'] as tf.Tensor).dataSync()));
          tf.dispose(Object.values(plainState));
        }
        // It moved (element 0 gets a zero gradient every step, so a single element may not under no decay).
        if (size > 1) expect(Array.from(heapSlot.variable.dataSync()).some((v, i) => v !== start[i])).toBe(true);
        // A snapshot sharing the parameter's buffer must not change: the heap step declines.
        const snapshot = tf.reshape(heapSlot.variable, [-1]); // shares the buffer (as tf.clone does under the BLAS extras)
        const before = Float32Array.from(snapshot.dataSync());
        const grad = tf.onesLike(heapSlot.variable);
        expect(adamStepOnHeap(heapSlot.variable, grad, heap.expAvg[0] as tf.Variable, heap.expAvgSq[0] as tf.Variable, {
          b1: 0.9, oneMinusB1: 0.1, b2: 0.999, oneMinusB2: 0.001, sqrtBc2: 1, eps: 1e-8, stepSize: 0.1, coupledWeightDecay: 0, decay: 1,
        })).toBe(false);
        expect(snapshot.dataSync()).toEqual(before);
        tf.dispose([snapshot, grad]);
        plain.dispose();
        heap.dispose();
        plainSlot.variable.dispose();
        heapSlot.variable.dispose();
      }
    }
  });
});

describe('core/runtime heap kernels elsewhere', () => {
  it('on cpu: not available, and the installed gradients fall back to tfjs\'s own', async () => {
    await initRuntime(RuntimeSection.parse({ backend: 'wasm', blas: 'off' }), { logger: silentLogger });
    installHeapKernels();
    await tf.setBackend('cpu');
    expect(heapKernelsAvailable()).toBe(false);
    const x = data(40, new Rng('heap/cpu'));
    const w = data(40, new Rng('heap/cpu-w'), 1);
    const withInstalled = gradient('tanh', x, w, [40]);
    restoreHeapKernels();
    expect(bits(withInstalled)).toEqual(bits(gradient('tanh', x, w, [40])));
    const v = tf.variable(tf.zeros([4]));
    expect(adamStepOnHeap(v, tf.ones([4]), tf.variable(tf.zeros([4])), tf.variable(tf.zeros([4])), {
      b1: 0.9, oneMinusB1: 0.1, b2: 0.999, oneMinusB2: 0.001, sqrtBc2: 1, eps: 1e-8, stepSize: 0.1, coupledWeightDecay: 0, decay: 1,
    })).toBe(false);
  });
});
