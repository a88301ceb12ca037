// Pieces every contract suite shares: where a plugin's golden case lives, the options-schema check, finiteness,
// and the tensor-leak probe.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';

/** Options every suite accepts. */
export interface SuiteOptions {
  /**
   * Folder holding `<name>.golden.json` for the plugins under test (built-ins: next to their source). A
   * namespaced plugin `acme:my-pool` looks for `my-pool.golden.json`.
   */
  readonly goldenDir?: string;
  /** Fail (instead of skipping the golden check) when a plugin has no golden case. Built-ins run with true. */
  readonly requireGolden?: boolean;
}

/** The golden file of a plugin, or undefined when there is none. */
export function goldenPath(options: SuiteOptions, name: string): string | undefined {
  if (!options.goldenDir) return undefined;
  const path = join(options.goldenDir, `${name.slice(name.indexOf(':') + 1)}.golden.json`);
  return existsSync(path) ? path : undefined;
}

/** The message a missing required golden fails with. */
export function missingGolden(options: SuiteOptions, kind: string, name: string): string {
  const where = options.goldenDir ? join(options.goldenDir, `${name.slice(name.indexOf(':') + 1)}.golden.json`) : `<goldenDir>/${name}.golden.json`;
  return `${kind}/${name} has no golden case: add ${where} (a fixed input and the output an independent implementation computes for it).`;
}

/** Defaults parse from `{}` and survive a JSON round trip (configs and MLflow params are JSON). */
export function expectDefaultsParse(definition: AnyPluginDefinition): Record<string, unknown> {
  const parsed = definition.options.safeParse({});
  expect(parsed.success, `${definition.kind}/${definition.name}: options.parse({}) succeeds (every option has a default)`).toBe(true);
  const value = parsed.data as Record<string, unknown>;
  expect(definition.options.parse(JSON.parse(JSON.stringify(value))), 'parsed options survive a JSON round trip').toEqual(value);
  return value;
}

/** The definition's options parsed from `raw`, erased to a record. */
export function parseOptions(definition: AnyPluginDefinition, raw: Readonly<Record<string, unknown>> = {}): Record<string, unknown> {
  return definition.options.parse(raw) as Record<string, unknown>;
}

export function allFinite(t: tf.Tensor): boolean {
  return tf.tidy(() => tf.all(tf.isFinite(t)).dataSync()[0] === 1);
}

/**
 * Runs `step` once to warm caches (kernels, lazily created constants), then twice more and asserts that
 * tf.memory().numTensors did not grow.
 */
export async function expectNoTensorLeak(what: string, step: () => void | Promise<void>): Promise<void> {
  await step();
  const before = tf.memory().numTensors;
  await step();
  await step();
  expect(tf.memory().numTensors, `${what}: tensors alive after two more calls`).toBe(before);
}

/** The longest absolute difference between two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i += 1) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  return worst;
}

/** The tensors of a list that are present (optional bag fields, optional hook results). */
export function presentTensors(items: ReadonlyArray<tf.Tensor | undefined>): tf.Tensor[] {
  const out: tf.Tensor[] = [];
  for (const item of items) if (item !== undefined) out.push(item);
  return out;
}

/** A module's variables as the contracts see them: named, with their trainable ones. */
export interface GradientModule {
  namedTensors(): Array<readonly [string, { readonly variable: tf.Variable }]>;
  trainableVariables(): tf.Variable[];
}

/**
 * Every trainable variable of `module` has a finite gradient in `grads` (from `tf.variableGrads`), named by its key in
 * failure messages, and at least one gradient is non-zero, i.e. `what` moves the weights.
 */
export function expectGradientsFlow(module: GradientModule, grads: tf.NamedTensorMap, what: string): void {
  const names = new Map(module.namedTensors().map(([key, entry]) => [entry.variable.name, key]));
  for (const v of module.trainableVariables()) {
    const g = grads[v.name];
    const key = names.get(v.name) as string;
    expect(g, `${key} has a gradient`).toBeDefined();
    expect(allFinite(g as tf.Tensor), `${key} gradient is finite`).toBe(true);
  }
  const anyNonZero = Object.values(grads).some((g) => tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0] as number) > 0);
  expect(anyNonZero, `${what} moves the weights`).toBe(true);
}
