// encoder/lenet-mnist against test/reference/lenet_mnist.py (PyTorch, written from docs/methods/abmil.md#mnist-model):
// the embeddings of two real digits and the gradient of every weight under a fixed loss, within 1e-4, on the cpu
// backend and on wasm with milkit's runtime kernels (the path training takes); plus the shape error.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import lenetMnist, { LenetMnistEncoder } from '../../../plugins/encoders/lenet-mnist.js';
import { loadMnistDigits, MNIST_PIXELS } from '../../../src/core/data/mnist.js';
import { DataError } from '../../../src/core/errors.js';
import { silentLogger } from '../../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../../src/core/runtime/index.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { fillPattern } from '../../../src/testing/contracts/golden.js';
import { FIXTURES } from '../../helpers/zoo.js';

interface GradEntry {
  readonly shape: number[];
  readonly projection: number;
  readonly values: number[];
  /** When set, `values` holds only the first `leadRows` slices along the first (torch) axis. */
  readonly leadRows?: number;
}

interface LenetFixture {
  readonly embeddingDim: number;
  readonly digits: number[];
  readonly h: number[][];
  readonly lossValue: number;
  readonly grads: Readonly<Record<string, GradEntry>>;
}

const fixture = JSON.parse(readFileSync(join(FIXTURES, 'lenet-mnist.json'), 'utf8')) as LenetFixture;

/** The first digit of each class, normalised as mnist-bags does: [N, 28, 28, 1]. */
function firstDigits(classes: readonly number[]): tf.Tensor4D {
  const digits = loadMnistDigits();
  const values = new Float32Array(classes.length * MNIST_PIXELS);
  classes.forEach((digit, i) => {
    const row = digits.labels.indexOf(digit);
    for (let p = 0; p < MNIST_PIXELS; p += 1) values[i * MNIST_PIXELS + p] = ((digits.images[row * MNIST_PIXELS + p] as number) - 0.1307) / 0.3081;
  });
  return tf.tensor4d(values, [classes.length, 28, 28, 1]);
}

function wave(size: number, a: number, b: number, fn: (v: number) => number): Float32Array {
  return Float32Array.from({ length: size }, (_, k) => fn(a * k + b));
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, atol = 1e-4, rtol = 1e-4): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i += 1) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) throw new Error(`${what}: element ${i} is ${a}, PyTorch has ${e}`);
  }
}

/** Forward on the fixture's digits and the gradients (torch layout) of L = Σ h ⊙ r. */
function runCase(): { h: Float32Array; loss: number; grads: Map<string, Float32Array> } {
  const encoder = new LenetMnistEncoder({ embeddingDim: fixture.embeddingDim }, { rng: new Rng(0), logger: silentLogger });
  const named = encoder.namedTensors();
  fillPattern(named.map(([torchKey, entry]) => ({ torchKey, entry })));
  encoder.setTraining(true);
  const x = firstDigits(fixture.digits);
  const rows = fixture.digits.length;
  const r = tf.tensor2d(wave(rows * fixture.embeddingDim, 0.37, 0.2, Math.cos), [rows, fixture.embeddingDim]);
  const io = { training: true, rng: new Rng(1) };
  const h = encoder.forward(x, io);
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(encoder.forward(x, io), r)) as tf.Scalar, encoder.trainableVariables());
  const torchGrads = new Map<string, Float32Array>();
  for (const [key, entry] of named) {
    const g = grads[entry.variable.name] as tf.Tensor;
    const perm = entry.torch.perm;
    torchGrads.set(key, tf.tidy(() => (perm ? tf.transpose(g, [...perm]) : g).dataSync() as Float32Array));
  }
  const out = { h: h.dataSync() as Float32Array, loss: value.dataSync()[0] as number, grads: torchGrads };
  tf.dispose([x, r, h, value, ...Object.values(grads)]);
  encoder.dispose();
  return out;
}

function checkAgainstFixture(): void {
  const { h, loss, grads } = runCase();
  expectClose(h, fixture.h.flat(), 'h');
  expectClose([loss], [fixture.lossValue], 'loss');
  expect(new Set(grads.keys())).toEqual(new Set(Object.keys(fixture.grads)));
  for (const [key, expected] of Object.entries(fixture.grads)) {
    const actual = grads.get(key) as Float32Array;
    const slice = expected.leadRows === undefined ? actual : actual.subarray(0, (expected.leadRows * actual.length) / (expected.shape[0] as number));
    expectClose(slice, expected.values, `grad ${key}`);
    const pattern = wave(actual.length, 0.113, 0.3, Math.sin);
    const projection = actual.reduce((s, v, k) => s + v * (pattern[k] as number), 0);
    expectClose([projection], [expected.projection], `grad ${key} projection (every element)`, 1e-4, 1e-4);
  }
}

describe('encoder/lenet-mnist', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('matches the PyTorch reference: embeddings of two digits and every weight gradient (cpu)', () => {
    checkAgainstFixture();
  });

  it('matches the PyTorch reference on wasm with milkit\'s runtime kernels', async () => {
    await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: 1 }), { logger: silentLogger });
    try {
      checkAgainstFixture();
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('names its weights with the torch keys of Ilse et al.\'s model.py', () => {
    const encoder = lenetMnist.create({ embeddingDim: 500 }, { rng: new Rng(0), logger: silentLogger });
    expect(encoder?.namedTensors().map(([key, entry]) => [key, entry.torch.perm ? entry.torch.perm.map((a) => entry.variable.shape[a]) : entry.variable.shape])).toEqual([
      ['feature_extractor_part1.0.weight', [20, 1, 5, 5]], ['feature_extractor_part1.0.bias', [20]],
      ['feature_extractor_part1.3.weight', [50, 20, 5, 5]], ['feature_extractor_part1.3.bias', [50]],
      ['feature_extractor_part2.0.weight', [500, 800]], ['feature_extractor_part2.0.bias', [500]],
    ]);
    encoder?.dispose();
  });

  it('rejects instances that are not 28×28×1 digits with a DataError naming the shape', () => {
    const encoder = new LenetMnistEncoder({ embeddingDim: 4 }, { rng: new Rng(0), logger: silentLogger });
    const flat = tf.zeros([3, 784]);
    expect(() => encoder.forward(flat, { training: false, rng: new Rng(0) })).toThrow(DataError);
    expect(() => encoder.forward(flat, { training: false, rng: new Rng(0) })).toThrow(/\[N, 28, 28, 1\], got \[3, 784\]/);
    flat.dispose();
    encoder.dispose();
  });
});
