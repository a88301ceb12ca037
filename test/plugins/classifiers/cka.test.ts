import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import cka, { CkaClassifier, CkaOptions } from '../../../plugins/classifiers/cka.js';
import { chebyshevBasis } from '../../../src/core/nn/chebyshev.js';
import { Rng } from '../../../src/core/runtime/random.js';
import type { NamedTensorEntry } from '../../../src/registry/index.js';
import { builtinRegistry } from '../../helpers/registry.js';
import { expectClose, formulaState, loadTorchLayout, readFixture, toTorchLayout, type FormulaEntry } from '../../helpers/hdmil.js';

interface CkaFixture {
  readonly in: number;
  readonly out: number;
  readonly degree: number;
  readonly spec: FormulaEntry[];
  readonly x: number[];
  readonly upstream: number[];
  readonly y: number[];
  readonly gradX: number[];
  readonly grads: Record<string, number[]>;
  readonly yZero: number[];
  readonly degreeZero: { spec: FormulaEntry[]; y: number[] };
}

const io = { training: false, rng: new Rng(0) };

/** The single coefficient tensor of a one-layer CKA. */
function onlyTensor(layer: CkaClassifier): [string, NamedTensorEntry] {
  const all = layer.namedTensors();
  expect(all).toHaveLength(1);
  return all[0] as [string, NamedTensorEntry];
}

function build(inDim: number, outDim: number, options: Partial<CkaOptions> = {}, seed = 0): CkaClassifier {
  return new CkaClassifier(CkaOptions.parse(options), { inputDim: inDim, outputDim: outDim, rng: new Rng(seed) });
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('classifier/cka', () => {
  it('computes the Chebyshev recursion T_k(t) = cos(k·acos t)', () => {
    const t = tf.tensor1d([-0.9, -0.3, 0, 0.4, 0.95]);
    const basis = chebyshevBasis(t, 6).arraySync() as number[][];
    [-0.9, -0.3, 0, 0.4, 0.95].forEach((value, i) => {
      const expected = Array.from({ length: 7 }, (_, k) => Math.cos(k * Math.acos(value)));
      expectClose(basis[i] as number[], expected, 1e-6, 1e-5, `T(${value})`);
    });
    t.dispose();
  });

  it('uses the original HDMIL key act_fun.0.cheby_coeffs with torch shape [I, O, K+1]', () => {
    const layer = build(512, 1);
    const [key, entry] = onlyTensor(layer);
    expect(key).toBe('act_fun.0.cheby_coeffs');
    const torchShape = (entry.torch.perm ?? []).map((axis) => entry.variable.shape[axis]);
    expect(torchShape).toEqual([512, 1, 13]);
    layer.dispose();
  });

  it('matches the torch reference forward and gradients (hdmil-cka.json)', async () => {
    const fx = await readFixture<CkaFixture>('hdmil-cka.json');
    const layer = build(fx.in, fx.out, { degree: fx.degree });
    loadTorchLayout(layer, formulaState(fx.spec));
    const x = tf.tensor2d(fx.x, [fx.x.length / fx.in, fx.in]);
    const upstream = tf.tensor2d(fx.upstream, [fx.x.length / fx.in, fx.out]);
    expectClose(tf.tidy(() => layer.forward(x, io).dataSync()), fx.y, 1e-5, 1e-4, 'y');
    const vars = layer.trainableVariables();
    const { grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.forward(x, io), upstream)) as tf.Scalar, vars);
    const [key, entry] = onlyTensor(layer);
    expectClose(toTorchLayout(grads[entry.variable.name] as tf.Tensor, entry.torch.perm), fx.grads[key] as number[], 1e-5, 1e-4, 'dΘ');
    const gradX = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(layer.forward(input as tf.Tensor2D, io), upstream)))(x);
    expectClose(gradX.dataSync(), fx.gradX, 1e-5, 1e-4, 'dx');
    tf.dispose([x, upstream, gradX, ...Object.values(grads)]);
    layer.dispose();
  });

  it('has gradients equal to central finite differences', () => {
    const layer = build(3, 2, { degree: 4 }, 5);
    const x = tf.tensor2d([[0.3, -1.2, 0.8], [1.5, 0.1, -0.4]]);
    const weight = tf.tensor2d([[0.7, -1.1], [0.2, 0.9]]);
    const f = (input: tf.Tensor2D): tf.Scalar => tf.sum(tf.mul(layer.forward(input, io), weight));
    const analytic = tf.grad((input: tf.Tensor) => f(input as tf.Tensor2D))(x).dataSync();
    const base = x.dataSync();
    const h = 1e-2;
    const numeric = Array.from(base, (_, i) => {
      const plus = Float32Array.from(base);
      const minus = Float32Array.from(base);
      plus[i] = (plus[i] as number) + h;
      minus[i] = (minus[i] as number) - h;
      const value = (data: Float32Array): number => tf.tidy(() => f(tf.tensor2d(data, [2, 3])).dataSync()[0] as number);
      return (value(plus) - value(minus)) / (2 * h);
    });
    // float32 central differences with h = 1e-2: truncation O(h²) and rounding ~1e-5 / h.
    expectClose(analytic, numeric, 2e-3, 1e-2, 'dx vs finite differences');
    const [coefficients] = layer.trainableVariables() as [tf.Variable];
    const { grads } = tf.variableGrads(() => f(x), [coefficients]);
    const analyticTheta = (grads[coefficients.name] as tf.Tensor).dataSync();
    const theta = Float32Array.from(coefficients.dataSync());
    const numericTheta = [0, 7, 19, 29].map((i) => {
      const shifted = (delta: number): number => {
        const data = Float32Array.from(theta);
        data[i] = (data[i] as number) + delta;
        tf.tidy(() => coefficients.assign(tf.tensor(data, coefficients.shape)));
        return tf.tidy(() => f(x).dataSync()[0] as number);
      };
      const d = (shifted(h) - shifted(-h)) / (2 * h);
      tf.tidy(() => coefficients.assign(tf.tensor(theta, coefficients.shape)));
      return d;
    });
    expectClose([0, 7, 19, 29].map((i) => analyticTheta[i] as number), numericTheta, 2e-3, 1e-2, 'dΘ vs finite differences');
    tf.dispose([x, weight, ...Object.values(grads)]);
    layer.dispose();
  });

  it('maps an all-zero input (empty selection) to Σ_i Σ_k Θ[i,o,k]·cos(kπ/2)', async () => {
    const fx = await readFixture<CkaFixture>('hdmil-cka.json');
    const layer = build(fx.in, fx.out, { degree: fx.degree });
    loadTorchLayout(layer, formulaState(fx.spec));
    const [, entry] = onlyTensor(layer);
    const theta = entry.variable.arraySync() as number[][][]; // [I, K+1, O]
    const byHand = Array.from({ length: fx.out }, (_, o) => {
      let sum = 0;
      for (let i = 0; i < fx.in; i += 1) for (let k = 0; k <= fx.degree; k += 1) sum += (theta[i]?.[k]?.[o] as number) * Math.round(Math.cos((k * Math.PI) / 2));
      return sum;
    });
    const zeros = tf.zeros([2, fx.in]) as tf.Tensor2D;
    const y = tf.tidy(() => layer.forward(zeros, io).dataSync());
    expectClose(y, [...byHand, ...byHand], 1e-5, 1e-4, 'CKA(0)');
    expectClose(y, fx.yZero, 1e-5, 1e-4, 'CKA(0) vs torch');
    zeros.dispose();
    layer.dispose();
  });

  it('with degree 0 is a constant Σ_i Θ[i,o,0], whatever the input', async () => {
    const fx = await readFixture<CkaFixture>('hdmil-cka.json');
    const layer = build(fx.in, fx.out, { degree: 0 });
    loadTorchLayout(layer, formulaState(fx.degreeZero.spec));
    const x = tf.tensor2d(fx.x, [fx.x.length / fx.in, fx.in]);
    const y = tf.tidy(() => layer.forward(x, io).dataSync());
    expectClose(y, fx.degreeZero.y, 1e-5, 1e-4, 'degree 0 vs torch');
    const [, entry] = onlyTensor(layer);
    const theta = entry.variable.arraySync() as number[][][];
    const constant = Array.from({ length: fx.out }, (_, o) => theta.reduce((s, row) => s + (row[0]?.[o] as number), 0));
    for (let row = 0; row < y.length / fx.out; row += 1) expectClose(Array.from(y.slice(row * fx.out, (row + 1) * fx.out)), constant, 1e-5, 1e-4, `row ${row}`);
    x.dispose();
    layer.dispose();
  });

  it('draws xavier-normal on the 3-D tensor: std = sqrt(2/((I+O)(K+1)))', () => {
    const layer = build(512, 2, {}, 3);
    const values = layer.trainableVariables()[0]?.dataSync() as Float32Array;
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    // I=512, O=2, K=12 → sqrt(2/6682) ≈ 0.01730 (docs/methods/hdmil.md#cka); 13,312 draws → ~0.6% sampling error.
    expect(Math.abs(std / Math.sqrt(2 / 6682) - 1)).toBeLessThan(0.03);
    layer.dispose();
  });

  it('stacks hidden KAN layers as act_fun.0, act_fun.1 with no activation in between', () => {
    const layer = build(4, 2, { degree: 3, hiddenDims: [5] });
    expect(layer.namedTensors().map(([key]) => key)).toEqual(['act_fun.0.cheby_coeffs', 'act_fun.1.cheby_coeffs']);
    const x = tf.tensor2d([[0.1, 0.2, -0.3, 0.4]]);
    const [first, second] = layer.trainableVariables() as [tf.Variable, tf.Variable];
    // By hand: y = L2(L1(x)), each L squashing its own input with tanh.
    const manual = tf.tidy(() => {
      const apply = (input: tf.Tensor2D, theta: tf.Variable, inDim: number): tf.Tensor2D =>
        tf.matMul(tf.reshape(chebyshevBasis(tf.tanh(input), 3), [1, inDim * 4]), tf.reshape(theta, [inDim * 4, -1])) as tf.Tensor2D;
      return apply(apply(x, first, 4), second, 5).dataSync();
    });
    expectClose(tf.tidy(() => layer.forward(x, io).dataSync()), manual, 1e-6, 1e-5, 'two layers');
    x.dispose();
    layer.dispose();
  });

  it('leaks no tensors in a forward/backward step', () => {
    const layer = build(8, 2);
    const x = tf.randomNormal([5, 8]) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => tf.sum(layer.forward(x, io)) as tf.Scalar, layer.trainableVariables());
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    layer.dispose();
  });

  it.each([
    [{ degree: -1 }, 'model.classifier.degree'],
    [{ degree: 2.5 }, 'model.classifier.degree'],
    [{ init: 'xavier' }, 'model.classifier.init'],
    [{ hiddenDims: [0] }, 'model.classifier.hiddenDims'],
  ])('rejects invalid options %j at %s', async (options, keyPath) => {
    await expect(builtinRegistry().resolve('classifier', { name: 'cka', ...options }, { key: 'model.classifier' })).rejects.toThrow(keyPath);
  });

  it('pins the message for an unknown option', async () => {
    await expect(builtinRegistry().resolve('classifier', { name: 'cka', degre: 12 }, { key: 'model.classifier' })).rejects.toThrowErrorMatchingInlineSnapshot(`[ConfigError: model.classifier.degre: unknown key (got 12). Allowed: degree, hiddenDims, init. Did you mean "degree"?]`);
  });

  it('is registered as classifier/cka', () => {
    expect(cka.kind).toBe('classifier');
    expect(cka.name).toBe('cka');
  });
});
