// Loads test/reference/fixtures/optim.json (written by test/reference/optim.py with torch 1.13) for the optimizer tests.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';

export interface FixtureTensor {
  readonly name?: string;
  readonly shape: number[];
  readonly values: number[];
}

export interface OptimizerCase {
  readonly name: string;
  readonly optimizer: Record<string, unknown>;
  readonly lrs: number[];
  readonly steps: Array<{ grads: Record<string, number[]>; params: Record<string, number[]> }>;
}

export interface OptimFixture {
  readonly torch: string;
  readonly params: Array<FixtureTensor & { name: string }>;
  readonly x: FixtureTensor;
  readonly y: FixtureTensor;
  readonly cases: OptimizerCase[];
  readonly schedules: Array<{ name: string; train: Record<string, unknown>; lrs: number[] }>;
  readonly clip: Array<{ maxNorm: number; grads: FixtureTensor[]; clipped: number[][]; norm: number }>;
}

export function loadOptimFixture(): OptimFixture {
  const path = fileURLToPath(new URL('../../../reference/fixtures/optim.json', import.meta.url));
  return JSON.parse(readFileSync(path, 'utf8')) as OptimFixture;
}

/** Fresh variables holding the fixture's initial parameters, as [name, variable] pairs in fixture order. */
export function initialParams(fixture: OptimFixture): Array<[string, tf.Variable]> {
  return fixture.params.map((p) => [p.name, tf.variable(tf.tensor(p.values, p.shape, 'float32'), true)]);
}

/** The fixture gradients of one step, in parameter order. */
export function stepGrads(fixture: OptimFixture, grads: Record<string, number[]>): tf.Tensor[] {
  return fixture.params.map((p) => tf.tensor(grads[p.name] as number[], p.shape, 'float32'));
}

/** |actual - expected| <= atol + rtol |expected| element-wise, with the worst offender in the failure message. */
export function expectClose(actual: ArrayLike<number>, expected: readonly number[], atol: number, rtol: number, label: string): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < expected.length; i += 1) {
    const e = expected[i] as number;
    const excess = Math.abs((actual[i] as number) - e) - (atol + rtol * Math.abs(e));
    if (excess > worst) {
      worst = excess;
      worstAt = i;
    }
  }
  expect(worstAt, `${label}: element ${worstAt} is ${actual[worstAt]}, torch ${expected[worstAt]}`).toBe(-1);
}
