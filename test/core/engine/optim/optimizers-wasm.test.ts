// The same torch trajectories on the wasm backend (the one sweep workers use), with the leak check.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createOptimizer } from '../../../../src/core/engine/optim/index.js';
import { OptimizerSection } from '../../../../src/core/engine/schema.js';
import { silentLogger } from '../../../../src/core/logger.js';
import { initRuntime } from '../../../../src/core/runtime/index.js';
import { RuntimeSection } from '../../../../src/core/runtime/schema.js';
import { expectClose, initialParams, loadOptimFixture, stepGrads } from './fixture.js';

const fixture = loadOptimFixture();

beforeAll(async () => {
  await initRuntime(RuntimeSection.parse({ backend: 'wasm', blas: 'off' }), { logger: silentLogger });
});

describe('core/engine/optim on wasm', () => {
  it('runs on the wasm backend', () => {
    expect(tf.getBackend()).toBe('wasm');
  });

  it.each(fixture.cases.map((c) => [c.name, c] as const))('%s follows the torch trajectory with flat memory', (_name, c) => {
    const params = initialParams(fixture);
    const optimizer = createOptimizer(OptimizerSection.parse(c.optimizer), params);
    let tensorsAfterFirstStep = -1;
    c.steps.forEach((step, t) => {
      const grads = stepGrads(fixture, step.grads);
      optimizer.step(grads, c.lrs[t] as number);
      tf.dispose(grads);
      if (t === 0) tensorsAfterFirstStep = tf.memory().numTensors;
      expect(tf.memory().numTensors).toBe(tensorsAfterFirstStep);
      for (const [name, variable] of params) expectClose(variable.dataSync(), step.params[name] as number[], 1e-6, 1e-5, `${c.name} step ${t + 1} ${name}`);
    });
    optimizer.dispose();
    for (const [, v] of params) v.dispose();
  });
});
