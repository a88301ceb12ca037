// Golden cases: one small JSON file per plugin (`<plugin>.golden.json` next to its source) holding a fixed input
// and the output an independent implementation computed for it. Model weights are not stored: both sides fill
// every tensor from the same deterministic pattern keyed by its PyTorch state-dict key, so a golden stays a few KB
// while still pinning every weight. Comparison reports mismatches as data, so a test can assert that a wrong
// implementation (e.g. a mutant) is caught.
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { DataError } from '../../core/errors.js';
import type { NamedTensorEntry } from '../../core/nn/module.js';

/** The fields every golden file has; `case` and `expected` are kind-specific. */
export interface GoldenFile<Case = unknown, Expected = unknown> {
  readonly kind: string;
  readonly plugin: string;
  /** Repository-relative script that computed `expected` (or `fingerprint` for regression fingerprints). */
  readonly generator: string;
  readonly case: Case;
  readonly expected: Expected;
  /** |actual - expected| ≤ atol + rtol·|expected| element-wise. */
  readonly tolerance?: { readonly atol?: number; readonly rtol?: number };
}

/** Outcome of one golden check: empty `mismatches` means it passed. */
export interface GoldenReport {
  readonly plugin: string;
  readonly mismatches: readonly string[];
}

export const DEFAULT_ATOL = 1e-4;
export const DEFAULT_RTOL = 1e-3;

/** Reads and minimally validates a golden file; a broken file is a DataError naming it. */
export function readGolden<Case, Expected>(path: string, kind: string): GoldenFile<Case, Expected> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new DataError('golden-unreadable', `${path}: cannot read the golden case as JSON.`, { hint: 'Regenerate it with its generator script.', cause });
  }
  const golden = parsed as Partial<GoldenFile<Case, Expected>>;
  if (golden === null || typeof golden !== 'object' || golden.kind !== kind || typeof golden.plugin !== 'string' || golden.case === undefined || golden.expected === undefined) {
    throw new DataError('golden-invalid', `${path}: not a ${kind} golden case (needs "kind": "${kind}", "plugin", "case" and "expected").`, {
      hint: 'Regenerate it with the script named in its "generator" field.',
    });
  }
  return golden as GoldenFile<Case, Expected>;
}

/** FNV-1a over the key's UTF-16 code units (keys are ASCII), the pattern's per-tensor phase. */
export function keyHash(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i += 1) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * "pattern-v1" weights, in torch layout, rounded to float32. wave_i = sin(0.7548776662·i + phase(key)) with
 * phase = (hash mod 6283) / 1000. Scales keep activations O(1) whatever the layer: ≥2-D weights wave·1.5/√fan_in
 * (fan_in = product of the non-leading torch dims), 1-D `…weight` (norm gains) 1 + 0.2·wave, other 1-D (biases)
 * 0.1·wave, `…running_var` 0.75 + 0.5·wave², `…running_mean` 0.1·wave. test/reference/golden_common.py mirrors it.
 */
export function patternValues(key: string, torchShape: readonly number[]): Float32Array {
  const size = torchShape.reduce((a, b) => a * b, 1);
  const phase = (keyHash(key) % 6283) / 1000;
  const out = new Float32Array(size);
  const fanIn = torchShape.slice(1).reduce((a, b) => a * b, 1);
  for (let i = 0; i < size; i += 1) {
    const wave = Math.sin(0.7548776662 * i + phase);
    let value: number;
    if (key.endsWith('running_var')) value = 0.75 + 0.5 * wave * wave;
    else if (key.endsWith('running_mean')) value = 0.1 * wave;
    else if (torchShape.length >= 2) value = (wave * 1.5) / Math.sqrt(fanIn);
    else if (key.endsWith('weight')) value = 1 + 0.2 * wave;
    else value = 0.1 * wave;
    out[i] = value;
  }
  return out;
}

/** A tensor to fill: its torch key and the milkit entry (variable + torch layout). */
export interface PatternTarget {
  readonly torchKey: string;
  readonly entry: NamedTensorEntry;
}

function inverse(perm: readonly number[]): number[] {
  return perm.map((_, axis) => perm.indexOf(axis));
}

/** Fills every float tensor with `patternValues`; integer buffers (label constants, counters) keep their value. */
export function fillPattern(targets: readonly PatternTarget[]): void {
  for (const { torchKey, entry } of targets) {
    if (entry.variable.dtype !== 'float32') continue;
    const perm = entry.torch.perm;
    const shape = entry.variable.shape;
    const torchShape = perm ? perm.map((axis) => shape[axis] as number) : [...shape];
    tf.tidy(() => {
      const stored = tf.tensor(patternValues(torchKey, torchShape), torchShape, 'float32');
      entry.variable.assign(perm ? tf.transpose(stored, inverse(perm)) : stored);
    });
  }
}

/** Row-major flattening of nested number arrays (golden tensors are JSON nested lists). */
export function flatten(value: unknown): number[] {
  if (typeof value === 'number') return [value];
  if (Array.isArray(value)) return value.flatMap((v) => flatten(v));
  throw new DataError('golden-invalid', `golden tensor holds ${JSON.stringify(value)}, expected numbers.`, { hint: 'Regenerate the golden case.' });
}

/** Shape of a nested number array (the first element of each level). */
export function shapeOf(value: unknown): number[] {
  const shape: number[] = [];
  let level = value;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  return shape;
}

/**
 * Compares `actual` with a nested expected array; returns one line describing the worst element and the shape
 * problem, if any, or nothing when they agree.
 */
export function compareValues(what: string, actual: ArrayLike<number>, actualShape: readonly number[], expected: unknown, tolerance?: GoldenFile['tolerance']): string[] {
  const expectedShape = shapeOf(expected);
  const wanted = flatten(expected);
  if (actualShape.join() !== expectedShape.join()) return [`${what}: shape [${actualShape.join(', ')}], expected [${expectedShape.join(', ')}]`];
  const atol = tolerance?.atol ?? DEFAULT_ATOL;
  const rtol = tolerance?.rtol ?? DEFAULT_RTOL;
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < wanted.length; i += 1) {
    const a = actual[i] as number;
    const e = wanted[i] as number;
    const excess = Number.isFinite(a) ? Math.abs(a - e) - (atol + rtol * Math.abs(e)) : Infinity;
    if (excess > worst) {
      worst = excess;
      worstAt = i;
    }
  }
  return worstAt < 0 ? [] : [`${what}: element ${worstAt} is ${actual[worstAt]}, expected ${wanted[worstAt]} (±${atol} + ${rtol}·|expected|)`];
}

/** `compareValues` for a tensor (read synchronously; golden tensors are tiny). */
export function compareTensor(what: string, actual: tf.Tensor | undefined, expected: unknown, tolerance?: GoldenFile['tolerance']): string[] {
  if (!actual) return [`${what}: missing from the output`];
  return compareValues(what, actual.dataSync() as Float32Array, actual.shape, expected, tolerance);
}

/** Nested number array → float32 tensor of its own shape. */
export function tensorOf(value: unknown, dtype: 'float32' | 'int32' = 'float32'): tf.Tensor {
  return tf.tensor(flatten(value), shapeOf(value), dtype);
}
