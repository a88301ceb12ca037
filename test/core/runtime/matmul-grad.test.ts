import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import {
  activeMatMulGrad,
  initRuntime,
  installExplicitTransposeMatMulGrad,
  restoreStockMatMulGrad,
} from '../../../src/core/runtime/index.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { randomData, readAll, relativeMaxDiff, type Values } from './compare.js';

interface Case {
  readonly name: string;
  /** Batch dims of A and B; the matrices are [m, k] and [k, n] before any transpose. */
  readonly batchA: number[];
  readonly batchB: number[];
}

const CASES: Case[] = [
  { name: '2-D', batchA: [], batchB: [] },
  { name: 'batch 3', batchA: [3], batchB: [3] },
  { name: 'rank 4', batchA: [2, 3], batchB: [2, 3] },
  { name: 'A 2-D, B batched', batchA: [], batchB: [4] },
  { name: 'A broadcast [1]', batchA: [1], batchB: [3] },
  { name: 'B broadcast [1]', batchA: [3], batchB: [1] },
  { name: 'both broadcast [2,1]×[1,3]', batchA: [2, 1], batchB: [1, 3] },
];
const TRANSPOSES: Array<[boolean, boolean]> = [[false, false], [false, true], [true, false], [true, true]];
const [M, K, N] = [5, 7, 3];

function stored(batch: number[], rows: number, cols: number, transposed: boolean): number[] {
  return transposed ? [...batch, cols, rows] : [...batch, rows, cols];
}

function broadcastShape(a: number[], b: number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const pad = (s: number[]): number[] => [...new Array<number>(rank - s.length).fill(1), ...s];
  const pa = pad(a);
  const pb = pad(b);
  return pa.map((d, i) => Math.max(d, pb[i] ?? 1));
}

/** Stock gradient of Σ W ⊙ matMul(A, B) with broadcasting spelled out as tile (whose gradient sums back). */
function referenceGrads(c: Case, tA: boolean, tB: boolean, a: tf.Tensor, b: tf.Tensor, w: tf.Tensor): tf.Tensor[] {
  const outBatch = broadcastShape(c.batchA, c.batchB);
  const expand = (x: tf.Tensor, batch: number[]): tf.Tensor => {
    if (outBatch.length === 0) return x;
    const padded = [...new Array<number>(outBatch.length - batch.length).fill(1), ...batch];
    const reshaped = tf.reshape(x, [...padded, ...x.shape.slice(-2)]);
    return tf.tile(reshaped, [...outBatch.map((d, i) => d / (padded[i] ?? 1)), 1, 1]);
  };
  const f = (x: tf.Tensor, y: tf.Tensor): tf.Scalar => tf.sum(tf.mul(tf.matMul(expand(x, c.batchA), expand(y, c.batchB), tA, tB), w));
  return tf.grads(f)([a, b]);
}

function explicitGrads(tA: boolean, tB: boolean, a: tf.Tensor, b: tf.Tensor, w: tf.Tensor): tf.Tensor[] {
  return tf.grads((x: tf.Tensor, y: tf.Tensor): tf.Scalar => tf.sum(tf.mul(tf.matMul(x, y, tA, tB), w)))([a, b]);
}

describe.each(['cpu', 'wasm'] as const)('explicit-transpose matMul gradient on %s', (backend) => {
  beforeAll(async () => {
    await initRuntime({ backend, blas: 'off' }, { logger: silentLogger });
  });
  afterAll(() => {
    restoreStockMatMulGrad();
  });

  const rows = CASES.flatMap((c) => TRANSPOSES.map(([tA, tB]) => ({ c, tA, tB, label: `${c.name}, transposeA=${tA}, transposeB=${tB}` })));

  it.each(rows)('equals the stock gradient: $label', ({ c, tA, tB }) => {
    const rng = new Rng(`grad/${c.name}/${tA}/${tB}`);
    const aShape = stored(c.batchA, M, K, tA);
    const bShape = stored(c.batchB, K, N, tB);
    const wShape = [...broadcastShape(c.batchA, c.batchB), M, N];
    const aData = randomData(rng, aShape);
    const bData = randomData(rng, bShape);
    const wData = randomData(rng, wShape);
    const run = (grads: typeof explicitGrads | null): Values[] =>
      readAll(() => {
        const a = tf.tensor(aData, aShape);
        const b = tf.tensor(bData, bShape);
        const w = tf.tensor(wData, wShape);
        return grads ? grads(tA, tB, a, b, w) : referenceGrads(c, tA, tB, a, b, w);
      });

    restoreStockMatMulGrad();
    expect(activeMatMulGrad()).toBe('stock');
    const [stockA, stockB] = run(null);
    installExplicitTransposeMatMulGrad();
    expect(activeMatMulGrad()).toBe('explicit-transpose');
    const [mineA, mineB] = run(explicitGrads);

    expect(mineA?.shape).toEqual(aShape);
    expect(mineB?.shape).toEqual(bShape);
    expect(relativeMaxDiff(mineA?.data ?? [], stockA?.data ?? [])).toBeLessThanOrEqual(1e-6);
    expect(relativeMaxDiff(mineB?.data ?? [], stockB?.data ?? [])).toBeLessThanOrEqual(1e-6);
  });

  it('leaves no tensors behind', () => {
    installExplicitTransposeMatMulGrad();
    const a = tf.randomNormal([4, 6]);
    const b = tf.randomNormal([6, 2]);
    const aT = tf.transpose(a);
    const bT = tf.transpose(b);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i += 1) tf.dispose(tf.grads((x: tf.Tensor, y: tf.Tensor): tf.Scalar => tf.sum(tf.matMul(x, y, true, true)))([aT, bT]));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([a, b, aT, bT]);
  });
});
