import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { Linear } from '../../../src/core/nn/layers.js';
import { initRuntime, loadNativeBlas, restoreStockWasmKernels } from '../../../src/core/runtime/index.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { RuntimeSection } from '../../../src/core/runtime/schema.js';
import { relativeMaxDiff } from './compare.js';

const blasHere = (await loadNativeBlas()).available;

// Large enough that OpenBLAS splits the sgemm calls over its threads (so thread count could matter), small enough
// for a unit test.
const [N, D, H, C, STEPS] = [512, 256, 64, 2, 6];

interface Trained {
  readonly hash: string;
  readonly weights: Float32Array;
  readonly losses: number[];
}

/** Linear → ReLU → Linear, softmax cross-entropy, Adam: STEPS full-batch steps from seed 7 on a fixed bag. */
function train(): Trained {
  const rng = new Rng(7);
  const dataRng = rng.fork('data');
  const x = tf.tensor2d(dataRng.normalArray(N * D), [N, D]);
  const labels = Array.from({ length: N }, () => dataRng.int(C));
  const y = tf.oneHot(tf.tensor1d(labels, 'int32'), C);
  const hidden = new Linear(D, H, rng.fork('hidden'));
  const head = new Linear(H, C, rng.fork('head'));
  const optimizer = tf.train.adam(1e-2);
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step += 1) {
    const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, head.forward(tf.relu(hidden.forward(x)))), true);
    losses.push(loss?.dataSync()[0] ?? Number.NaN);
    loss?.dispose();
  }
  const parts = [...hidden.trainableVariables(), ...head.trainableVariables()].map((v) => Float32Array.from(v.dataSync()));
  const weights = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    weights.set(p, offset);
    offset += p.length;
  }
  optimizer.dispose();
  hidden.dispose();
  head.dispose();
  tf.dispose([x, y]);
  return { hash: createHash('sha256').update(new Uint8Array(weights.buffer)).digest('hex'), weights, losses };
}

async function trainWith(section: Partial<RuntimeSection>, blasCandidates?: string[]): Promise<Trained> {
  await initRuntime(RuntimeSection.parse(section), { logger: silentLogger, ...(blasCandidates ? { blasCandidates } : {}) });
  return train();
}

describe('a small Linear + Adam training run', () => {
  it('ends with the cpu backend\'s weights on wasm without BLAS (forced fallback), and repeats bit for bit', async () => {
    const reference = await trainWith({ backend: 'cpu' });
    const fallback = await trainWith({ backend: 'wasm', blas: 'auto' }, ['libmilkit-no-such-blas.so']);
    const again = await trainWith({ backend: 'wasm', blas: 'off' });
    expect(fallback.losses[STEPS - 1]).toBeLessThan(fallback.losses[0] ?? 0); // it learns
    expect(relativeMaxDiff(fallback.weights, reference.weights)).toBeLessThanOrEqual(1e-4);
    expect(again.hash).toBe(fallback.hash);
    restoreStockWasmKernels();
  });

  it.skipIf(!blasHere)('gives bit-identical weights twice with the same blasThreads, and the cpu result within 1e-4', async () => {
    const reference = await trainWith({ backend: 'cpu' });
    for (const blasThreads of [2, 1]) {
      const first = await trainWith({ backend: 'wasm', blas: 'on', blasThreads });
      const second = await trainWith({ backend: 'wasm', blas: 'on', blasThreads: blasThreads === 2 ? 1 : 2 }).then(() =>
        trainWith({ backend: 'wasm', blas: 'on', blasThreads }),
      );
      expect(second.hash).toBe(first.hash);
      expect(relativeMaxDiff(first.weights, reference.weights)).toBeLessThanOrEqual(1e-4);
      expect(first.losses[STEPS - 1]).toBeLessThan(first.losses[0] ?? 0);
    }
    restoreStockWasmKernels();
  });
});
