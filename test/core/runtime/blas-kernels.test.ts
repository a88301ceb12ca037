import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime, loadNativeBlas, restoreStockWasmKernels, type RuntimeInfo } from '../../../src/core/runtime/index.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { on, randomData, relativeMaxDiff, type Values } from './compare.js';

// CI installs libopenblas0-pthread (.ci/run); with MILKIT_BLAS_LIBRARY=none only the fallback block runs.
const probe = await loadNativeBlas();

type Activation = 'linear' | 'relu' | 'relu6' | 'elu' | 'sigmoid' | 'leakyrelu' | 'prelu';

interface MatMulCase {
  readonly label: string;
  readonly aShape: number[];
  readonly bShape: number[];
  readonly tA: boolean;
  readonly tB: boolean;
}

/** Random shapes from a seeded stream: every transpose combination, batch > 1 and broadcast batch. */
function randomCases(): MatMulCase[] {
  const rng = new Rng('blas-kernel-shapes');
  const dim = (): number => 1 + rng.int(40);
  const batches: Array<[number[], number[]]> = [[[], []], [[3], [3]], [[2, 3], [2, 3]], [[1], [4]], [[4], [1]], [[], [3]], [[2], []], [[2, 1], [1, 3]], [[3, 1, 2], [4, 1]]];
  const cases: MatMulCase[] = [];
  for (const [batchA, batchB] of batches) {
    for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      const [m, k, n] = [dim(), dim(), dim()];
      cases.push({
        label: `[${batchA}]×[${batchB}] m=${m} k=${k} n=${n} tA=${tA} tB=${tB}`,
        aShape: tA ? [...batchA, k, m] : [...batchA, m, k],
        bShape: tB ? [...batchB, n, k] : [...batchB, k, n],
        tA,
        tB,
      });
    }
  }
  // Narrow products (sgemv per column for n ≤ 4, per row for m ≤ 4, sger for k = 1) and their edges, in every transpose
  // combination, unbatched, batched and with a shared B folded into rows.
  const unit: Array<[string, number, number, number]> = [
    ['m=1', 1, 37, 23], ['n=1', 29, 1, 31], ['k=1', 33, 27, 1], ['m=n=1', 1, 1, 19], ['m=k=1', 1, 21, 1],
    ['n=2', 31, 2, 17], ['n=4', 19, 4, 23], ['n=5', 13, 5, 11], ['m=3', 3, 29, 21], ['m=4', 4, 26, 7], ['m=2 n=3', 2, 3, 40], ['m=3 k=1', 3, 22, 1],
  ];
  for (const [name, m, n, k] of unit) {
    for (const [batchA, batchB] of [[[], []], [[3], [3]], [[2], []]] as Array<[number[], number[]]>) {
      for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
        cases.push({
          label: `unit ${name} [${batchA}]×[${batchB}] tA=${tA} tB=${tB}`,
          aShape: tA ? [...batchA, k, m] : [...batchA, m, k],
          bShape: tB ? [...batchB, n, k] : [...batchB, k, n],
          tA,
          tB,
        });
      }
    }
  }
  // Long inner dimension: float32 accumulation order differs from the cpu kernel's JS doubles.
  cases.push({ label: 'k=1000 row vector', aShape: [1, 1000], bShape: [1000, 64], tA: false, tB: false });
  cases.push({ label: 'k=1000 transposed column', aShape: [1000, 1], bShape: [1000, 64], tA: true, tB: false });
  cases.push({ label: '[300,257]×[257,129]ᵀ', aShape: [300, 257], bShape: [129, 257], tA: false, tB: true });
  return cases;
}

/**
 * Reference: the stock cpu kernel on operands tiled to the full batch shape (the stock kernels broadcast batch dims
 * by flat-index modulo, which is wrong for e.g. [2,1]×[1,3]; tiling leaves nothing to broadcast).
 */
function cpuReference(c: MatMulCase, a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const batchA = c.aShape.slice(0, -2);
  const batchB = c.bShape.slice(0, -2);
  const rank = Math.max(batchA.length, batchB.length);
  const pad = (s: number[]): number[] => [...new Array<number>(rank - s.length).fill(1), ...s];
  const out = pad(batchA).map((d, i) => Math.max(d, pad(batchB)[i] ?? 1));
  const full = (x: tf.Tensor, batch: number[]): tf.Tensor => (rank === 0 ? x : tf.broadcastTo(x, [...out, ...x.shape.slice(-2)]));
  return tf.matMul(full(a, batchA), full(b, batchB), c.tA, c.tB);
}

function activate(y: tf.Tensor, activation: Activation, alpha: tf.Tensor): tf.Tensor {
  switch (activation) {
    case 'linear':
      return y;
    case 'relu':
      return tf.relu(y);
    case 'relu6':
      return tf.relu6(y);
    case 'elu':
      return tf.elu(y);
    case 'sigmoid':
      return tf.sigmoid(y);
    case 'leakyrelu':
      return tf.leakyRelu(y, 0.1);
    case 'prelu':
      return tf.prelu(y, alpha);
  }
}

function expectClose(actual: Values | undefined, expected: Values | undefined, tolerance = 1e-4): void {
  expect(actual?.shape).toEqual(expected?.shape);
  expect(relativeMaxDiff(actual?.data ?? [], expected?.data ?? [])).toBeLessThanOrEqual(tolerance);
}

async function fusedCase(tA: boolean, tB: boolean, activation: Activation, biasShape: number[]): Promise<{ mine: Values; reference: Values }> {
  const rng = new Rng(`fused/${tA}/${tB}/${activation}/${biasShape}`);
  const [m, k, n] = [6, 9, 5];
  const aShape = tA ? [k, m] : [m, k];
  const bShape = tB ? [n, k] : [k, n];
  const aData = randomData(rng, aShape);
  const bData = randomData(rng, bShape);
  const biasData = randomData(rng, biasShape);
  const alphaData = randomData(rng, [n]);
  const build = (): [tf.Tensor2D, tf.Tensor2D, tf.Tensor, tf.Tensor] => [
    tf.tensor2d(aData, aShape as [number, number]),
    tf.tensor2d(bData, bShape as [number, number]),
    tf.tensor(biasData, biasShape),
    tf.tensor(alphaData, [n]),
  ];
  const [reference] = await on('cpu', () => {
    const [a, b, bias, alpha] = build();
    return activate(tf.add(tf.matMul(a, b, tA, tB), bias), activation, alpha);
  });
  const mine = tf.tidy(() => {
    const [a, b, bias, alpha] = build();
    const y = tf.fused.matMul({ a, b, transposeA: tA, transposeB: tB, bias, activation, preluActivationWeights: alpha, leakyreluAlpha: 0.1 });
    return { shape: [...y.shape], data: Float32Array.from(y.dataSync()) };
  });
  if (!reference) throw new Error('no reference');
  return { mine, reference };
}

const FUSED_ROWS = (['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'] as const).flatMap((activation) =>
  ([[false, false], [false, true], [true, false], [true, true]] as const).map(([tA, tB]) => ({ activation, tA, tB })),
);

describe.skipIf(!probe.available)('wasm BLAS kernels (OpenBLAS, docs/runtime.md)', () => {
  let info: RuntimeInfo;
  beforeAll(async () => {
    info = await initRuntime({ backend: 'wasm', blas: 'on', blasThreads: 2 }, { logger: silentLogger });
  });
  afterAll(() => {
    restoreStockWasmKernels();
  });

  it('are active, with the library and thread count reported', () => {
    expect(info.blas.active).toBe(true);
    expect(info.blas.library).toMatch(/blas|blis/i);
    expect(info.blas.threads).toBe(2);
    // Slice and UnsortedSegmentSum: src/core/runtime/small-n-kernels.ts (copy-free Slice; tf.gather's gradient).
    expect(info.kernelOverrides).toEqual(['BatchMatMul', 'Cast', 'DepthwiseConv2dNative', 'Exp', 'Identity', 'MilkitDepthwiseFilterGrad', 'MilkitReluGrad', 'MilkitSigmoidGrad', 'MilkitTanhGrad', 'Slice', 'Sum', 'Tanh', 'UnsortedSegmentSum', '_FusedMatMul']);
    expect(info.matmulGrad).toBe('stock');
  });

  it.each(randomCases())('BatchMatMul matches the stock cpu kernel: $label', async (c) => {
    const rng = new Rng(`data/${c.label}`);
    const aData = randomData(rng, c.aShape);
    const bData = randomData(rng, c.bShape);
    const [reference] = await on('cpu', () => cpuReference(c, tf.tensor(aData, c.aShape), tf.tensor(bData, c.bShape)));
    const [mine] = await on('wasm', () => tf.matMul(tf.tensor(aData, c.aShape), tf.tensor(bData, c.bShape), c.tA, c.tB));
    expectClose(mine, reference);
  });

  it.each(FUSED_ROWS)('_FusedMatMul with bias + $activation, transposeA=$tA transposeB=$tB matches matMul+add on cpu', async ({ activation, tA, tB }) => {
    const { mine, reference } = await fusedCase(tA, tB, activation, [5]);
    expectClose(mine, reference);
  });

  it('_FusedMatMul takes a rank-2 bias (the stock wasm kernel only takes rank 1)', async () => {
    const { mine, reference } = await fusedCase(false, true, 'relu', [6, 5]);
    expectClose(mine, reference);
  });

  it('fixes the stock tfjs-backend-wasm 4.22 _FusedMatMul bug with bias + transpose', async () => {
    const { mine, reference } = await fusedCase(true, true, 'linear', [5]);
    expectClose(mine, reference, 1e-5);
  });

  it('gives an empty result for empty operands, and leaves int32 to the stock kernel', () => {
    const empty = tf.matMul(tf.zeros([0, 5]), tf.ones([5, 3]));
    expect(empty.shape).toEqual([0, 3]);
    expect(() => tf.matMul(tf.tensor2d([[1, 2]], [1, 2], 'int32'), tf.tensor2d([[3], [4]], [2, 1], 'int32'))).toThrow(/non-float32/);
    empty.dispose();
  });

  it('stays correct when allocating the output grows the wasm heap', () => {
    const heap = (): number => ((tf.backend() as BackendWasm).wasm as unknown as { HEAPU8: Uint8Array }).HEAPU8.buffer.byteLength;
    const heapBefore = heap();
    const rng = new Rng('heap-growth');
    const [m, k, n] = [2048, 8, 6000]; // 49 MB output
    const aData = randomData(rng, [m, k]);
    const bData = randomData(rng, [k, n]);
    const a = tf.tensor2d(aData, [m, k]);
    const b = tf.tensor2d(bData, [k, n]);
    const c = tf.matMul(a, b);
    expect(heap()).toBeGreaterThan(heapBefore);
    const out = c.dataSync();
    for (const [i, j] of [[0, 0], [m - 1, n - 1], [1234, 4321], [7, 5999]] as const) {
      let expected = 0;
      for (let p = 0; p < k; p += 1) expected += (aData[i * k + p] ?? 0) * (bData[p * n + j] ?? 0);
      expect(out[i * n + j]).toBeCloseTo(expected, 4);
    }
    tf.dispose([a, b, c]);
  });

  it('Sum over leading axes matches the stock cpu kernel, with and without keepDims', async () => {
    const rng = new Rng('sum');
    const data = randomData(rng, [37, 4, 11]);
    for (const [axis, keepDims] of [[0, false], [[0, 1], false], [0, true], [[1, 0], true], [2, false], [[0, 2], false]] as const) {
      const [reference] = await on('cpu', () => tf.sum(tf.tensor(data, [37, 4, 11]), axis as number | number[], keepDims));
      const [mine] = await on('wasm', () => tf.sum(tf.tensor(data, [37, 4, 11]), axis as number | number[], keepDims));
      expectClose(mine, reference, 1e-5);
    }
  });

  it('Tanh as 2σ(2x) − 1 stays within 2e-7 of Math.tanh, and within 2e-5 relative where |tanh| ≥ 0.01', async () => {
    const rng = new Rng('tanh');
    const values = Float32Array.from([
      ...rng.normalArray(2000, 0, 3),
      ...rng.uniformArray(500, -0.1, 0.1),
      0, -0, 1e-30, -1e-12, 1e-6, 0.0625, 9, -20, 88, -1e4,
    ]);
    const [mine] = await on('wasm', () => tf.tanh(tf.tensor1d(values)));
    let worstAbs = 0;
    let worstRel = 0;
    values.forEach((v, i) => {
      const expected = Math.tanh(v);
      const error = Math.abs((mine?.data[i] ?? Number.NaN) - expected);
      worstAbs = Math.max(worstAbs, Number.isNaN(error) ? Infinity : error);
      if (Math.abs(expected) >= 0.01) worstRel = Math.max(worstRel, error / Math.abs(expected));
    });
    expect(worstAbs).toBeLessThanOrEqual(2e-7);
    expect(worstRel).toBeLessThanOrEqual(2e-5);
  });

  it('Identity shares the buffer and the copy outlives its source', () => {
    const backend = tf.backend() as BackendWasm;
    const x = tf.tensor1d([1, 2, 3]);
    const buffersBefore = backend.numDataIds();
    const y = tf.clone(x);
    expect(backend.numDataIds()).toBe(buffersBefore); // no new buffer on the wasm heap
    expect(y.dataId).toBe(x.dataId);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    const v = tf.variable(tf.zeros([3]));
    v.assign(y);
    y.dispose();
    expect(Array.from(v.dataSync())).toEqual([1, 2, 3]);
    v.dispose();
  });

  it('Cast to the same dtype shares the buffer; a real conversion still converts', () => {
    const backend = tf.backend() as BackendWasm;
    const x = tf.tensor1d([1.5, -2, 3]);
    const buffersBefore = backend.numDataIds();
    const same = tf.cast(x, 'float32');
    expect(backend.numDataIds()).toBe(buffersBefore);
    expect(same.dataId).toBe(x.dataId);
    x.dispose();
    expect(Array.from(same.dataSync())).toEqual([1.5, -2, 3]);
    const ints = tf.cast(same, 'int32');
    expect(ints.dtype).toBe('int32');
    expect(ints.dataId).not.toBe(same.dataId);
    expect(Array.from(ints.dataSync())).toEqual([1, -2, 3]);
    const floats = tf.cast(tf.tensor1d([1, 0, 1], 'bool'), 'float32');
    expect(Array.from(floats.dataSync())).toEqual([1, 0, 1]);
    // The ReLU gradient casts its mask: same values as the stock copy.
    const grad = tf.grad((z: tf.Tensor) => tf.sum(tf.relu(z)))(tf.tensor1d([-1, 0.5, 2]));
    expect(Array.from(grad.dataSync())).toEqual([0, 1, 1]);
    tf.dispose([same, ints, floats, grad]);
  });

  it('gives the same gradients as the stock cpu backend', async () => {
    const rng = new Rng('grads');
    const xData = randomData(rng, [20, 16]);
    const wData = randomData(rng, [16, 8]);
    const vData = randomData(rng, [8]);
    const f = (): tf.Tensor[] => {
      const x = tf.tensor2d(xData, [20, 16]);
      const bias = tf.tensor1d(vData);
      return tf.grads((w: tf.Tensor, b: tf.Tensor): tf.Scalar => tf.sum(tf.tanh(tf.add(tf.matMul(x, w as tf.Tensor2D), b))))([tf.tensor2d(wData, [16, 8]), bias]);
    };
    const reference = await on('cpu', f);
    const mine = await on('wasm', f);
    expectClose(mine[0], reference[0], 1e-5);
    expectClose(mine[1], reference[1], 1e-5);
  });
});

describe('wasm without BLAS (fallback)', () => {
  let info: RuntimeInfo;
  beforeAll(async () => {
    info = await initRuntime({ backend: 'wasm', blas: 'auto' }, { logger: silentLogger, blasCandidates: ['libmilkit-no-such-blas.so'] });
  });
  afterAll(() => {
    restoreStockWasmKernels();
  });

  it('reports why and multiplies explicitly transposed operands with the stock kernel', () => {
    expect(info.blas).toEqual({ active: false, reason: 'no usable BLAS library (not found: libmilkit-no-such-blas.so)' });
    expect(info.kernelOverrides).toEqual(['BatchMatMul', '_FusedMatMul']);
    expect(info.matmulGrad).toBe('explicit-transpose');
  });

  it.each(randomCases())('BatchMatMul still matches the cpu kernel: $label', async (c) => {
    const rng = new Rng(`data/${c.label}`);
    const aData = randomData(rng, c.aShape);
    const bData = randomData(rng, c.bShape);
    const [reference] = await on('cpu', () => cpuReference(c, tf.tensor(aData, c.aShape), tf.tensor(bData, c.bShape)));
    const [mine] = await on('wasm', () => tf.matMul(tf.tensor(aData, c.aShape), tf.tensor(bData, c.bShape), c.tA, c.tB));
    expectClose(mine, reference);
  });

  it.each(FUSED_ROWS)('_FusedMatMul with bias + $activation, transposeA=$tA transposeB=$tB is right without BLAS too', async ({ activation, tA, tB }) => {
    const { mine, reference } = await fusedCase(tA, tB, activation, [5]);
    expectClose(mine, reference);
  });

  it('stock tfjs-backend-wasm 4.22 _FusedMatMul is wrong with bias + transpose (why the override exists)', async () => {
    restoreStockWasmKernels();
    const { mine, reference } = await fusedCase(false, true, 'linear', [5]);
    expect(relativeMaxDiff(mine.data, reference.data)).toBeGreaterThan(1e-2);
  });
});
