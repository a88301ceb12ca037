import { describe, expect, expectTypeOf, it } from 'vitest';
import { defineExperiment, type ComposableExperimentInput } from '../../../src/core/config/define-experiment.js';
import type { ExperimentInput } from '../../../src/core/config/schema.js';

describe('defineExperiment', () => {
  it('returns its argument unchanged', () => {
    const config = { data: { dataset: { name: 'synthetic-camelyon' } }, model: { aggregator: { name: 'abmil', attnDim: 128 } } };
    expect(defineExperiment(config)).toBe(config);
  });

  it('types a complete experiment strictly and a composed one partially (checked by tsc)', () => {
    expectTypeOf(defineExperiment({ data: { dataset: { name: 'x' } }, model: { aggregator: { name: 'mean-pool' } } })).toEqualTypeOf<ExperimentInput>();
    expectTypeOf(defineExperiment({ defaults: [{ 'model/aggregator': 'abmil' }, '_self_'], train: { epochs: 3 } })).toEqualTypeOf<ComposableExperimentInput>();
    // @ts-expect-error without a defaults list, data and model are required
    defineExperiment({ train: { epochs: 3 } });
    // @ts-expect-error epochs is a number
    defineExperiment({ defaults: [], train: { epochs: 'three' } });
    // @ts-expect-error unknown section
    defineExperiment({ defaults: [], trian: { epochs: 3 } });
  });
});
