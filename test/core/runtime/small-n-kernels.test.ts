import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime, loadNativeBlas, restoreStockWasmKernels } from '../../../src/core/runtime/index.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { activeSmallNKernels, installSmallNKernels, restoreSmallNKernels } from '../../../src/core/runtime/small-n-kernels.js';
import { on, randomData, readAll, type Values } from './compare.js';

const probe = await loadNativeBlas();

interface SliceCase {
  readonly label: string;
  readonly shape: number[];
  readonly begin: number[];
  /** -1 entries: to the end. */
  readonly size: number[];
  readonly dtype: 'float32' | 'int32' | 'bool';
}

/** Random slices of every rank 1-6 from a seeded stream: leading, inner and last axes cut, -1 sizes, empty slices. */
function sliceCases(): SliceCase[] {
  const rng = new Rng('small-n-slice-cases');
  const cases: SliceCase[] = [];
  const dtypes = ['float32', 'int32', 'bool'] as const;
  for (let i = 0; i < 60; i += 1) {
    const rank = 1 + (i % 6);
    const shape = Array.from({ length: rank }, () => 1 + rng.int(rank > 4 ? 4 : 7));
    const begin = shape.map((d) => rng.int(d));
    const size = shape.map((d, axis) => {
      const roll = rng.int(5);
      if (roll === 0) return -1;
      if (roll === 1) return d - begin[axis]!; // to the end, spelt out
      return rng.int(d - begin[axis]! + 1); // may be 0: an empty slice
    });
    const dtype = dtypes[i % 3]!;
    cases.push({ label: `${dtype} [${shape}] begin [${begin}] size [${size}]`, shape, begin, size, dtype });
  }
  // Patterns the models send: a row block, a column block of a matrix (non-leading axis), the whole tensor, a scalar slice.
  cases.push({ label: 'rows of [1000, 512]', shape: [1000, 512], begin: [16, 0], size: [300, -1], dtype: 'float32' });
  cases.push({ label: 'columns of [64, 48]', shape: [64, 48], begin: [0, 5], size: [-1, 17], dtype: 'float32' });
  cases.push({ label: 'whole [1, 1000]', shape: [1, 1000], begin: [0, 0], size: [1, 1000], dtype: 'float32' });
  cases.push({ label: 'middle axis of [3, 5, 7]', shape: [3, 5, 7], begin: [1, 2, 0], size: [2, 2, -1], dtype: 'int32' });
  return cases;
}

function input(c: SliceCase, rng: Rng): tf.Tensor {
  const values = randomData(rng, c.shape);
  if (c.dtype === 'float32') return tf.tensor(values, c.shape);
  if (c.dtype === 'int32') return tf.tensor(Int32Array.from(values, (v) => Math.round(v * 100)), c.shape, 'int32');
  return tf.tensor(Uint8Array.from(values, (v) => (v > 0 ? 1 : 0)), c.shape, 'bool');
}

describe.skipIf(!probe.available)('small-N wasm kernels', () => {
  beforeAll(async () => {
    await initRuntime({ backend: 'wasm', blas: 'on', blasThreads: 2 }, { logger: silentLogger });
  });
  afterAll(() => {
    restoreStockWasmKernels();
  });

  it('are installed with the BLAS extras and put back by restore', () => {
    expect(activeSmallNKernels()).toEqual(['Slice', 'UnsortedSegmentSum']);
    restoreSmallNKernels();
    expect(activeSmallNKernels()).toEqual([]);
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeUndefined();
    installSmallNKernels();
    installSmallNKernels(); // idempotent
    expect(activeSmallNKernels()).toEqual(['Slice', 'UnsortedSegmentSum']);
  });

  it.each(sliceCases())('Slice equals the stock wasm kernel: $label', (c) => {
    const run = (): Values[] => readAll(() => tf.slice(input(c, new Rng(c.label)), c.begin, c.size));
    restoreSmallNKernels();
    const [stock] = run();
    installSmallNKernels();
    const [mine] = run();
    expect(mine!.shape).toEqual(stock!.shape);
    expect(Array.from(mine!.data)).toEqual(Array.from(stock!.data));
  });

  it('Slice reads only the part it copies (no whole-input read back)', () => {
    const x = tf.randomNormal([4000, 256]);
    const wasm = tf.backend() as unknown as { readSync: (id: object) => unknown };
    const readSync = wasm.readSync.bind(wasm);
    let reads = 0;
    wasm.readSync = (id: object) => {
      reads += 1;
      return readSync(id);
    };
    try {
      const part = tf.slice(x, [100, 0], [8, -1]);
      expect(part.shape).toEqual([8, 256]);
      expect(reads).toBe(0);
      part.dispose();
    } finally {
      wasm.readSync = readSync;
      x.dispose();
    }
  });

  it('the gradient through a sliced tensor is unchanged', async () => {
    const rng = new Rng('slice-grad');
    const data = randomData(rng, [6, 5, 4]);
    const weights = randomData(rng, [3, 2, 4]);
    const grad = (): tf.Tensor => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.slice(x, [2, 1, 0], [3, 2, -1]), tf.tensor(weights, [3, 2, 4]))))(tf.tensor(data, [6, 5, 4]));
    const [mine] = readAll(grad);
    const [cpu] = await on('cpu', grad);
    expect(Array.from(mine!.data)).toEqual(Array.from(cpu!.data));
  });

  it('UnsortedSegmentSum matches the cpu kernel: repeated, missing and out-of-range ids, int32 and float32', async () => {
    const rng = new Rng('segment-sum');
    const data = randomData(rng, [7, 3, 2]);
    const ids = [4, 0, 4, 2, -1, 9, 0]; // 1 and 3 empty; -1 and 9 dropped
    const sums = (): tf.Tensor[] => [
      tf.unsortedSegmentSum(tf.tensor(data, [7, 3, 2]), tf.tensor1d(ids, 'int32'), 5),
      tf.unsortedSegmentSum(tf.tensor(Int32Array.from(data, (v) => Math.round(10 * v)), [7, 3, 2], 'int32'), tf.tensor1d(ids, 'int32'), 5),
    ];
    const mine = readAll(sums);
    const cpu = await on('cpu', sums);
    for (let i = 0; i < 2; i += 1) {
      expect(mine[i]!.shape).toEqual([5, 3, 2]);
      expect(Array.from(mine[i]!.data)).toEqual(Array.from(cpu[i]!.data));
    }
    // Row 1 (no id) is zero even on a heap block that held other values before.
    expect(Array.from(mine[0]!.data.slice(6, 12))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('tf.gather of rows is differentiable on wasm, with the cpu backend\'s value and gradient', async () => {
    const rng = new Rng('gather-grad');
    const data = randomData(rng, [50, 8]);
    const upstream = randomData(rng, [6, 8]);
    const rows = [7, 0, 49, 7, 13, 2]; // a repeated row sums its gradients
    const both = (): tf.Tensor[] => {
      const x = tf.tensor(data, [50, 8]);
      const f = (t: tf.Tensor): tf.Tensor => tf.sum(tf.mul(tf.gather(t, tf.tensor1d(rows, 'int32')), tf.tensor(upstream, [6, 8])));
      return [tf.gather(x, tf.tensor1d(rows, 'int32')), tf.grad(f)(x)];
    };
    const mine = readAll(both);
    const cpu = await on('cpu', both);
    expect(Array.from(mine[0]!.data)).toEqual(Array.from(cpu[0]!.data));
    expect(Array.from(mine[1]!.data)).toEqual(Array.from(cpu[1]!.data));
    // Row 7 was taken twice: its gradient is the sum of both upstream rows.
    expect(mine[1]!.data[7 * 8]).toBeCloseTo(upstream[0]! + upstream[3 * 8]!, 6);
  });
});
