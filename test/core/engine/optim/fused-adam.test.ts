// The fused Adam update (train.optimizer.fused) against the unfused one: bit-identical parameters and state over
// several steps with both weight-decay flavours, on the cpu and the wasm backend; the torch trajectories of the
// optimizer fixture; checkpoint state interchangeable; flat memory; and the error for optimizers it does not cover.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../../src/core/errors.js';
import { FUSED_ADAM_HOST_MAX_SIZE, FusedAdamOptimizer } from '../../../../src/core/engine/optim/fused-adam.js';
import { createOptimizer } from '../../../../src/core/engine/optim/index.js';
import { OptimizerSection } from '../../../../src/core/engine/schema.js';
import { silentLogger } from '../../../../src/core/logger.js';
import { initRuntime } from '../../../../src/core/runtime/index.js';
import { RuntimeSection } from '../../../../src/core/runtime/schema.js';
import { Rng } from '../../../../src/core/runtime/random.js';
import { expectClose, initialParams, loadOptimFixture, stepGrads } from './fixture.js';

const SHAPES: Record<string, number[]> = { 'big.weight': [130, 128], 'fc.weight': [33, 17], 'fc.bias': [17], 'head.coeffs': [5, 4, 3], scale: [] };
const LRS = [1e-3, 2e-3, 5e-4, 1e-2, 3e-4, 1e-3];

// One tensor above the host-loop size (the kernel path), the others below it.
it('mixes both update paths', () => {
  const sizes = Object.values(SHAPES).map((shape) => shape.reduce((a, b) => a * b, 1));
  expect(sizes.some((size) => size > FUSED_ADAM_HOST_MAX_SIZE)).toBe(true);
  expect(sizes.some((size) => size <= FUSED_ADAM_HOST_MAX_SIZE)).toBe(true);
});

function makeParams(seed: string): Array<[string, tf.Variable]> {
  const rng = new Rng(seed);
  return Object.entries(SHAPES).map(([name, shape]) => [name, tf.variable(tf.tensor(rng.normalArray(shape.reduce((a, b) => a * b, 1), 0, 1), shape, 'float32'), true)]);
}

/** Gradients of step `t`: random, with exact zeros and a large entry, the same for both runs. */
function gradsAt(t: number): tf.Tensor[] {
  const rng = new Rng(`grads/${t}`);
  return Object.values(SHAPES).map((shape) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = rng.normalArray(size, 0, 10 ** ((t % 3) - 2));
    values[0] = 0;
    if (size > 3) values[3] = 50;
    return tf.tensor(values, shape, 'float32');
  });
}

/** Parameters and state after the LRS steps under `section`. */
function trajectory(section: Record<string, unknown>, fused: boolean): { params: Float32Array[]; state: Record<string, Float32Array> } {
  const params = makeParams(fused ? 'fused' : 'plain');
  // Same starting values in both runs: copy the plain ones over.
  const reference = makeParams('plain');
  params.forEach(([, v], i) => v.assign((reference[i] as [string, tf.Variable])[1]));
  reference.forEach(([, v]) => v.dispose());
  const optimizer = createOptimizer(OptimizerSection.parse({ ...section, fused }), params);
  expect(optimizer instanceof FusedAdamOptimizer).toBe(fused);
  let tensors = -1;
  LRS.forEach((lr, t) => {
    const grads = gradsAt(t);
    optimizer.step(grads, lr);
    tf.dispose(grads);
    if (t === 0) tensors = tf.memory().numTensors;
    expect(tf.memory().numTensors).toBe(tensors);
  });
  const out = params.map(([, v]) => v.dataSync() as Float32Array);
  const state = Object.fromEntries(Object.entries(optimizer.state()).map(([k, v]) => [k, Float32Array.from(v.dataSync())]));
  optimizer.dispose();
  params.forEach(([, v]) => v.dispose());
  return { params: out, state };
}

const SECTIONS: Array<[string, Record<string, unknown>]> = [
  ['adam, no decay', { name: 'adam', weightDecay: 0 }],
  ['adam, L2 decay except biases', { name: 'adam', weightDecay: 1e-2, excludeFromDecay: ['*.bias'] }],
  ['adamw, decoupled decay', { name: 'adamw', weightDecay: 5e-2, betas: [0.8, 0.99], eps: 1e-6 }],
];

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`core/engine/optim fused Adam on ${backend}`, () => {
    beforeAll(async () => {
      if (backend === 'wasm') await initRuntime(RuntimeSection.parse({ backend: 'wasm', blas: 'off' }), { logger: silentLogger });
      else await tf.setBackend('cpu');
      expect(tf.getBackend()).toBe(backend);
    });

    it.each(SECTIONS)('%s: bit-identical to the unfused update, with flat memory', (_label, section) => {
      const plain = trajectory(section, false);
      const fused = trajectory(section, true);
      plain.params.forEach((values, i) => expect(fused.params[i], `param ${i}`).toEqual(values));
      expect(Object.keys(fused.state).sort()).toEqual(Object.keys(plain.state).sort());
      for (const [key, values] of Object.entries(plain.state)) expect(fused.state[key], key).toEqual(values);
      // The update moved the parameters (a fused step that did nothing would fail here).
      const start = makeParams('plain');
      expect(Math.max(...Array.from(plain.params[0] as Float32Array).map((p, j) => Math.abs(p - ((start[0] as [string, tf.Variable])[1].dataSync()[j] as number))))).toBeGreaterThan(1e-3);
      start.forEach(([, v]) => v.dispose());
    });

    it('follows the torch Adam trajectories of the optimizer fixture', () => {
      const fixture = loadOptimFixture();
      const adamCases = fixture.cases.filter((c) => ['adam', 'adamw'].includes(String(c.optimizer['name'] ?? 'adam')) && c.optimizer['lookahead'] === undefined);
      expect(adamCases.length).toBeGreaterThan(0);
      for (const c of adamCases) {
        const params = initialParams(fixture);
        const optimizer = createOptimizer(OptimizerSection.parse({ ...c.optimizer, fused: true }), params);
        c.steps.forEach((step, t) => {
          const grads = stepGrads(fixture, step.grads);
          optimizer.step(grads, c.lrs[t] as number);
          tf.dispose(grads);
          for (const [name, variable] of params) expectClose(variable.dataSync(), step.params[name] as number[], 1e-6, 1e-5, `${c.name} step ${t + 1} ${name}`);
        });
        optimizer.dispose();
        params.forEach(([, v]) => v.dispose());
      }
    });
  });
}

describe('core/engine/optim fused Adam: state and options', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  afterAll(() => undefined);

  it('resumes an unfused checkpoint and continues identically', () => {
    const section = { name: 'adam', weightDecay: 1e-3 };
    const params = makeParams('resume');
    const copy = makeParams('resume');
    const plain = createOptimizer(OptimizerSection.parse(section), params);
    const fused = createOptimizer(OptimizerSection.parse({ ...section, fused: true }), copy);
    plain.step(gradsAt(0), 1e-3);
    const saved = plain.state();
    copy.forEach(([, v], i) => v.assign((params[i] as [string, tf.Variable])[1]));
    fused.loadState(saved);
    tf.dispose(Object.values(saved));
    const grads = gradsAt(1);
    plain.step(grads, 2e-3);
    fused.step(grads, 2e-3);
    params.forEach(([, v], i) => expect((copy[i] as [string, tf.Variable])[1].dataSync()).toEqual(v.dataSync()));
    tf.dispose(grads);
    [plain, fused].forEach((o) => o.dispose());
    [...params, ...copy].forEach(([, v]) => v.dispose());
  });

  it('is on by default (off on request) and refused for optimizers it does not implement', () => {
    const params0 = makeParams('default');
    for (const [section, fusedClass] of [[{}, true], [{ name: 'adamw' }, true], [{ fused: false }, false]] as const) {
      const optimizer = createOptimizer(OptimizerSection.parse(section), params0);
      expect(optimizer instanceof FusedAdamOptimizer, JSON.stringify(section)).toBe(fusedClass);
      optimizer.dispose();
    }
    params0.forEach(([, v]) => v.dispose());
    const params = makeParams('refuse');
    expect(() => createOptimizer(OptimizerSection.parse({ name: 'sgd', fused: true }), params)).toThrow(ConfigError);
    // The default does not refuse the others: it applies to adam/adamw only.
    expect(() => createOptimizer(OptimizerSection.parse({ name: 'sgd' }), params).dispose()).not.toThrow();
    expect(() => createOptimizer(OptimizerSection.parse({ name: 'radam', fused: true }), params)).toThrow(/only implemented for adam and adamw/);
    params.forEach(([, v]) => v.dispose());
  });
});
