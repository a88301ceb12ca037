// Metric contract: a declared direction, perfect predictions score the best value (1), random ones stay within
// [-1, 1], slide order does not matter, an empty input is undefined with a reason, and the golden case.
import { describe, expect, it } from 'vitest';
import { Rng } from '../../core/runtime/random.js';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';
import type { MetricContext } from '../../registry/kinds.js';
import type { Metric, MetricInput } from '../../registry/contracts/metric.js';
import { compareValues, readGolden, type GoldenFile, type GoldenReport } from './golden.js';
import { expectDefaultsParse, goldenPath, missingGolden, parseOptions, type SuiteOptions } from './shared.js';

export interface MetricGoldenCase {
  readonly options: Readonly<Record<string, unknown>>;
  readonly inputs: readonly MetricInput[];
}

export interface MetricGoldenExpected {
  /** One value per input; null = undefined for that input. */
  readonly values: ReadonlyArray<number | null>;
}

export type MetricGolden = GoldenFile<MetricGoldenCase, MetricGoldenExpected>;

export function createMetric(definition: AnyPluginDefinition, rawOptions: Readonly<Record<string, unknown>>, numClasses: number): Metric {
  return (definition.create as (options: unknown, ctx: MetricContext) => Metric)(parseOptions(definition, rawOptions), { numClasses });
}

export function checkMetricGolden(definition: AnyPluginDefinition, golden: MetricGolden): GoldenReport {
  const mismatches: string[] = [];
  golden.case.inputs.forEach((input, i) => {
    const got = createMetric(definition, golden.case.options, input.numClasses).compute(input).value;
    const want = golden.expected.values[i];
    if (want === null || want === undefined || got === null) {
      if (got !== want) mismatches.push(`input ${i}: ${String(got)}, expected ${String(want)}`);
    } else mismatches.push(...compareValues(`input ${i}`, [got], [], want, golden.tolerance));
  });
  return { plugin: `metric/${definition.name}`, mismatches };
}

/** Seeded labels (every class present) and probability rows summing to 1. */
export function randomMetricInput(n: number, numClasses: number, seed: number): MetricInput {
  const rng = new Rng(seed);
  const labels = Array.from({ length: n }, (_, i) => (i < numClasses ? i : rng.int(numClasses)));
  const probs = labels.map(() => {
    const raw = Array.from({ length: numClasses }, () => rng.next() + 1e-3);
    const total = raw.reduce((a, b) => a + b, 0);
    return raw.map((v) => v / total);
  });
  return { labels, probs, numClasses };
}

export interface MetricSuiteOptions extends SuiteOptions {
  readonly optionsFor?: (name: string) => Readonly<Record<string, unknown>>;
}

export function metricContract(definitions: readonly AnyPluginDefinition[], suite: MetricSuiteOptions = {}): void {
  describe.each(definitions.map((d) => [d.name, d] as const))('metric/%s contract', (name, definition) => {
    const options = suite.optionsFor?.(name) ?? {};

    it('parses its defaults, and the parsed options survive a JSON round trip', () => {
      expectDefaultsParse(definition);
    });

    it('declares a direction for model selection', () => {
      expect(typeof definition.capabilities['higherIsBetter'], 'capabilities.higherIsBetter is a boolean').toBe('boolean');
    });

    it.each([2, 3, 5])('scores perfect predictions as its best value and stays within [-1, 1] (C = %i)', (numClasses) => {
      const metric = createMetric(definition, options, numClasses);
      const labels = Array.from({ length: 12 }, (_, i) => i % numClasses);
      const perfect = metric.compute({ labels, probs: labels.map((y) => Array.from({ length: numClasses }, (_, c) => (c === y ? 0.9 : 0.1 / (numClasses - 1)))), numClasses });
      expect(perfect.value).toBeCloseTo(definition.capabilities['higherIsBetter'] === false ? 0 : 1, 12);
      for (let seed = 0; seed < 5; seed += 1) {
        const v = metric.compute(randomMetricInput(30, numClasses, seed)).value;
        expect(v, 'defined when every class is present').not.toBeNull();
        expect(v as number).toBeGreaterThanOrEqual(-1);
        expect(v as number).toBeLessThanOrEqual(1);
      }
    });

    it('does not depend on the order of the slides', () => {
      const metric = createMetric(definition, options, 3);
      const input = randomMetricInput(25, 3, 11);
      const order = new Rng('perm').shuffle(Array.from({ length: 25 }, (_, i) => i));
      const permuted = { labels: order.map((i) => input.labels[i] as number), probs: order.map((i) => input.probs[i] as number[]), numClasses: 3 };
      expect(metric.compute(permuted).value).toBeCloseTo(metric.compute(input).value as number, 12);
    });

    it('reports an empty input as undefined with a reason', () => {
      const value = createMetric(definition, options, 2).compute({ labels: [], probs: [], numClasses: 2 });
      expect(value.value).toBeNull();
      if (value.value === null) expect(value.reason).toBe('no slides');
    });

    const golden = goldenPath(suite, name);
    it.skipIf(!golden && !suite.requireGolden)('matches its golden case', () => {
      if (!golden) throw new Error(missingGolden(suite, 'metric', name));
      expect(checkMetricGolden(definition, readGolden<MetricGoldenCase, MetricGoldenExpected>(golden, 'metric')).mismatches, golden).toEqual([]);
    });
  });
}
