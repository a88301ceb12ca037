// Helpers for the runtime tests: arrays computed on one backend compared with another backend's.
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../../src/core/runtime/random.js';

/** max |actual − expected| divided by max(1, max |expected|): the "relative" of "≤ 1e-4 relative". */
export function relativeMaxDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} ≠ ${expected.length}`);
  let scale = 1;
  let diff = 0;
  for (let i = 0; i < expected.length; i += 1) {
    const e = expected[i] as number;
    scale = Math.max(scale, Math.abs(e));
    const d = Math.abs((actual[i] as number) - e);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
  }
  return diff / scale;
}

/** A tensor's values and shape, read out so they survive a backend switch. */
export interface Values {
  readonly shape: number[];
  readonly data: Float32Array;
}

export function read(t: tf.Tensor): Values {
  return { shape: [...t.shape], data: Float32Array.from(t.dataSync()) };
}

/** Runs `fn` in a tidy scope and returns its outputs as plain values (no tensor survives). */
export function readAll(fn: () => tf.Tensor | tf.Tensor[]): Values[] {
  const outs = tf.tidy(() => {
    const out = fn();
    return Array.isArray(out) ? out : [out];
  });
  const values = outs.map(read);
  tf.dispose(outs);
  return values;
}

/** Runs `fn` on `backend` (tensors built inside from plain arrays) and returns its outputs as plain values. */
export async function on(backend: string, fn: () => tf.Tensor | tf.Tensor[]): Promise<Values[]> {
  const previous = tf.getBackend();
  await tf.setBackend(backend);
  // The cpu backend prints a tfjs-node advertisement on first use; initRuntime silences it the same way.
  if (backend === 'cpu') (tf.backend() as { firstUse?: boolean }).firstUse = false;
  try {
    return readAll(() => fn());
  } finally {
    if (previous) await tf.setBackend(previous);
  }
}

/** Seeded normal data of `shape`. */
export function randomData(rng: Rng, shape: readonly number[]): Float32Array {
  return rng.normalArray(shape.reduce((p, d) => p * d, 1));
}
