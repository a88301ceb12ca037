import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { DataError, NumericsError } from '../../../../src/core/errors.js';
import { createOptimizer, parameterWeightDecay, radamRectification } from '../../../../src/core/engine/optim/index.js';
import { OptimizerSection } from '../../../../src/core/engine/schema.js';
import { expectClose, initialParams, loadOptimFixture, stepGrads, type OptimizerCase } from './fixture.js';

const fixture = loadOptimFixture();
// Replaying torch's own gradients isolates the update rule: only float32 rounding order differs.
const ATOL = 1e-6;
const RTOL = 1e-5;

function caseNamed(name: string): OptimizerCase {
  const found = fixture.cases.find((c) => c.name === name);
  if (!found) throw new Error(`fixture has no case ${name}`);
  return found;
}

function disposeAll(params: Array<[string, tf.Variable]>): void {
  for (const [, v] of params) v.dispose();
}

function expectParamsMatch(params: Array<[string, tf.Variable]>, expected: Record<string, number[]>, label: string, atol = ATOL, rtol = RTOL): void {
  for (const [name, variable] of params) expectClose(variable.dataSync(), expected[name] as number[], atol, rtol, `${label} ${name}`);
}

/** Runs fixture steps [from, to) with torch's gradients. */
function replay(c: OptimizerCase, optimizer: ReturnType<typeof createOptimizer>, from: number, to: number): void {
  for (let t = from; t < to; t += 1) {
    const step = c.steps[t];
    if (!step) throw new Error('fixture step missing');
    const grads = stepGrads(fixture, step.grads);
    optimizer.step(grads, c.lrs[t] as number);
    tf.dispose(grads);
  }
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe('core/engine/optim vs torch 1.13', () => {
  it('records the torch version that produced the fixture', () => {
    expect(fixture.torch.startsWith('1.13')).toBe(true);
  });

  it.each(fixture.cases.map((c) => [c.name, c] as const))('%s follows the torch trajectory step by step', (_name, c) => {
    const params = initialParams(fixture);
    const optimizer = createOptimizer(OptimizerSection.parse(c.optimizer), params);
    c.steps.forEach((step, t) => {
      replay(c, optimizer, t, t + 1);
      expectParamsMatch(params, step.params, `${c.name} step ${t + 1}`);
    });
    optimizer.dispose();
    disposeAll(params);
  });

  it('weight decay changes the trajectory (the cases are not decay-blind)', () => {
    // Same gradients, decay switched off: the result must move away from torch's decayed trajectory.
    for (const name of ['adam-l2', 'adamw', 'sgd-momentum-l2', 'radam-l2', 'radam-decoupled-transmil']) {
      const c = caseNamed(name);
      const params = initialParams(fixture);
      const optimizer = createOptimizer(OptimizerSection.parse({ ...c.optimizer, weightDecay: 0 }), params);
      replay(c, optimizer, 0, c.steps.length);
      const last = c.steps[c.steps.length - 1]?.params as Record<string, number[]>;
      const weight = params[0]?.[1].dataSync() as Float32Array;
      const gap = Math.max(...(last['fc.weight'] as number[]).map((v, i) => Math.abs(v - (weight[i] as number))));
      expect(gap, name).toBeGreaterThan(1e-4);
      optimizer.dispose();
      disposeAll(params);
    }
  });

  it('RAdam switches from the momentum step to the rectified step after step 5 (rho_t > 5)', () => {
    const rhos = [1, 2, 3, 4, 5, 6, 7].map((t) => radamRectification(0.999, t));
    expect(rhos.map((r) => r.rect !== null)).toEqual([false, false, false, false, false, true, true]);
    expect(rhos[4]?.rho).toBeCloseTo(4.995998000395048, 12);
    expect(rhos[5]?.rho).toBeCloseTo(5.994163751655833, 12);
  });

  it('Adam matches torch end to end when tfjs computes the gradients itself', () => {
    // The fixture loss: u = x * norm.weight + cls_token; h = u W^T + b; L = mean((tanh(h) - y)^2).
    const c = caseNamed('adam-l2');
    const params = initialParams(fixture);
    const lookup = new Map(params);
    const x = tf.tensor(fixture.x.values, fixture.x.shape);
    const y = tf.tensor(fixture.y.values, fixture.y.shape);
    const loss = (): tf.Scalar => {
      const u = x.mul(lookup.get('norm.weight') as tf.Variable).add((lookup.get('cls_token') as tf.Variable).reshape([3])); // [4, 3]
      const h = tf.matMul(u, lookup.get('fc.weight') as tf.Variable, false, true).add(lookup.get('fc.bias') as tf.Variable); // [4, 2]
      return tf.tanh(h).sub(y).square().mean() as tf.Scalar;
    };
    const optimizer = createOptimizer(OptimizerSection.parse(c.optimizer), params);
    c.steps.forEach((step, t) => {
      const { grads } = tf.variableGrads(loss, params.map(([, v]) => v));
      const ordered = params.map(([, v]) => grads[v.name] as tf.Tensor);
      optimizer.step(ordered, c.lrs[t] as number);
      tf.dispose(grads);
      expectParamsMatch(params, step.params, `adam end-to-end step ${t + 1}`, 1e-5, 1e-5);
    });
    optimizer.dispose();
    tf.dispose([x, y]);
    disposeAll(params);
  });
});

describe('core/engine/optim state', () => {
  it.each(fixture.cases.map((c) => [c.name, c] as const))('%s resumes from state() exactly where it stopped', (_name, c) => {
    const section = OptimizerSection.parse(c.optimizer);
    const split = 4; // mid-way through the first Lookahead period of 3 after one sync
    const straight = initialParams(fixture);
    const straightOpt = createOptimizer(section, straight);
    replay(c, straightOpt, 0, split);

    // Snapshot weights and optimizer state, then continue in a brand-new optimizer over brand-new variables.
    const saved = straightOpt.state();
    const resumed: Array<[string, tf.Variable]> = straight.map(([name, v]) => [name, tf.variable(v.clone(), true)]);
    const resumedOpt = createOptimizer(section, resumed);
    resumedOpt.loadState(saved);
    tf.dispose(Object.values(saved));

    replay(c, straightOpt, split, c.steps.length);
    replay(c, resumedOpt, split, c.steps.length);
    straight.forEach(([name, v], i) => {
      expect(Array.from(resumed[i]?.[1].dataSync() ?? []), name).toEqual(Array.from(v.dataSync()));
    });
    expectParamsMatch(resumed, c.steps[c.steps.length - 1]?.params as Record<string, number[]>, `${c.name} resumed`);
    straightOpt.dispose();
    resumedOpt.dispose();
    disposeAll(straight);
    disposeAll(resumed);
  });

  it('names its state after the torch state_dict entries', () => {
    const params = initialParams(fixture);
    const keysOf = (config: Record<string, unknown>): string[] => {
      const optimizer = createOptimizer(OptimizerSection.parse(config), params);
      const state = optimizer.state();
      const keys = Object.keys(state).sort();
      tf.dispose(Object.values(state));
      optimizer.dispose();
      return keys;
    };
    expect(keysOf({ name: 'adam' })).toEqual(
      ['step', ...['fc.weight', 'fc.bias', 'norm.weight', 'cls_token'].flatMap((n) => [`exp_avg/${n}`, `exp_avg_sq/${n}`])].sort(),
    );
    expect(keysOf({ name: 'sgd', momentum: 0 })).toEqual(['step']);
    expect(keysOf({ name: 'sgd', lookahead: {} })).toEqual(
      ['step', 'lookahead_step', ...['fc.weight', 'fc.bias', 'norm.weight', 'cls_token'].flatMap((n) => [`momentum_buffer/${n}`, `slow/${n}`])].sort(),
    );
    disposeAll(params);
  });

  it('rejects state written by a different optimizer, naming the mismatch', () => {
    const params = initialParams(fixture);
    const adam = createOptimizer(OptimizerSection.parse({ name: 'adam' }), params);
    const sgd = createOptimizer(OptimizerSection.parse({ name: 'sgd' }), params);
    const state = adam.state();
    expect(() => sgd.loadState(state)).toThrow(DataError);
    expect(() => sgd.loadState(state)).toThrow(/missing momentum_buffer\/fc\.weight.*unexpected exp_avg\/fc\.weight/);
    const wrongShape = { ...state, 'exp_avg/fc.bias': tf.zeros([3]) };
    expect(() => adam.loadState(wrongShape)).toThrow(/"exp_avg\/fc\.bias" has shape \[3\], expected \[2\]/);
    tf.dispose([...Object.values(state), wrongShape['exp_avg/fc.bias']]);
    adam.dispose();
    sgd.dispose();
    disposeAll(params);
  });
});

describe('core/engine/optim hygiene', () => {
  it.each(fixture.cases.map((c) => [c.name, c] as const))('%s keeps tf.memory().numTensors flat and never reads back', (_name, c) => {
    const params = initialParams(fixture);
    const optimizer = createOptimizer(OptimizerSection.parse(c.optimizer), params);
    const grads = stepGrads(fixture, (c.steps[0] as OptimizerCase['steps'][number]).grads);
    optimizer.step(grads, 1e-3);
    const before = tf.memory().numTensors;
    const reads = [vi.spyOn(tf.Tensor.prototype, 'dataSync'), vi.spyOn(tf.Tensor.prototype, 'data'), vi.spyOn(tf.Tensor.prototype, 'arraySync')];
    for (let t = 0; t < 7; t += 1) {
      optimizer.step(grads, 1e-3);
      expect(tf.memory().numTensors).toBe(before);
    }
    for (const spy of reads) expect(spy).not.toHaveBeenCalled();
    tf.dispose(grads);
    optimizer.dispose();
    disposeAll(params);
  });

  it('releases every tensor it created on dispose()', () => {
    const params = initialParams(fixture);
    const before = tf.memory().numTensors;
    const optimizer = createOptimizer(OptimizerSection.parse({ name: 'radam', lookahead: { k: 2 } }), params);
    const grads = stepGrads(fixture, (fixture.cases[0]?.steps[0] as OptimizerCase['steps'][number]).grads);
    for (let t = 0; t < 3; t += 1) optimizer.step(grads, 1e-3);
    tf.dispose(grads);
    optimizer.dispose();
    expect(tf.memory().numTensors).toBe(before);
    disposeAll(params);
  });

  it('rejects gradients that do not line up with the variables', () => {
    const params = initialParams(fixture);
    const optimizer = createOptimizer(OptimizerSection.parse({}), params);
    const grads = params.map(([, v]) => tf.zerosLike(v));
    expect(() => optimizer.step(grads.slice(1), 1e-3)).toThrow(NumericsError);
    expect(() => optimizer.step(grads.slice(1), 1e-3)).toThrow('got 3 gradients for 4 optimised variables.');
    expect(() => optimizer.step([grads[1], grads[0], grads[2], grads[3]] as tf.Tensor[], 1e-3)).toThrow(
      'gradient 0 has shape [2] but parameter "fc.weight" has shape [2, 3].',
    );
    expect(() => optimizer.step(grads, Number.NaN)).toThrow('learning rate must be a finite number >= 0 (got NaN).');
    tf.dispose(grads);
    optimizer.dispose();
    disposeAll(params);
  });
});

describe('core/engine/optim weight-decay selection', () => {
  const transmil = OptimizerSection.parse({ name: 'radam', weightDecay: 1e-5, excludeFromDecay: ['*.bias'], decayVectors: false });

  it.each([
    ['layers.0.attn.to_qkv.weight', 2, 1e-5],
    ['_fc1.0.bias', 1, 0],
    ['norm.weight', 1, 0], // LayerNorm gain: 1-D
    ['cls_token', 3, 1e-5], // [1, 1, 512] is decayed in TransMIL
    ['pos_layer.proj.bias', 1, 0],
  ] as const)('TransMIL rule: %s (rank %i) gets %s', (name, rank, expected) => {
    expect(parameterWeightDecay(transmil, name, rank)).toBe(expected);
  });

  it('matches globs over whole dotted names', () => {
    const section = OptimizerSection.parse({ weightDecay: 0.1, excludeFromDecay: ['classifier.*', 'pos_embed'] });
    expect(parameterWeightDecay(section, 'classifier.weight', 2)).toBe(0);
    expect(parameterWeightDecay(section, 'head.classifier.weight', 2)).toBe(0.1); // anchored at the start
    expect(parameterWeightDecay(section, 'pos_embed', 3)).toBe(0);
    expect(parameterWeightDecay(section, 'pos_embedding', 3)).toBe(0.1); // anchored at the end
    expect(parameterWeightDecay(section, 'fc.bias', 1)).toBe(0.1); // vectors decayed by default (torch Adam)
  });
});
