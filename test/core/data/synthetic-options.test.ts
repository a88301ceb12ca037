// The shared options schema of the synthetic datasets (syntheticOptions): the shared fields first, a dataset's
// field of the same name replacing the shared one where it stands, and the shared cross-field checks ([min, max]
// order, the per-bag byte budget, signalDim ≤ featureDim) before a dataset's own.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { officialTestCases, SYNTHETIC_LIMITS, syntheticOptionFields, syntheticOptions } from '../../../src/core/data/synthetic.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { SyntheticCamelyonOptions } from '../../../plugins/datasets/synthetic-camelyon.js';
import { SyntheticDecoysOptions } from '../../../plugins/datasets/synthetic-decoys.js';
import { SyntheticHierarchicalOptions } from '../../../plugins/datasets/synthetic-hierarchical.js';
import { SyntheticSubtypingOptions } from '../../../plugins/datasets/synthetic-subtyping.js';

const DEFAULTS = { slides: 10, minSlides: 2, instances: [5, 9] as const, minFeatureDim: 2, slideShift: 0.1, thumbs: false, officialTestFraction: 0.25 };

/** `path: message` of every issue, in order. */
function issues(schema: z.ZodType, input: unknown): string[] {
  const result = schema.safeParse(input);
  return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

describe('syntheticOptions', () => {
  it('keeps the shared keys in order, replaces a same-named field in place and appends the rest', () => {
    const schema = syntheticOptions(DEFAULTS, {
      extra: z.number().default(1).describe('an option of its own'),
      featureDim: z.int().min(7).default(9).describe('replaced'),
    });
    const shared = Object.keys(syntheticOptionFields(DEFAULTS));
    expect(Object.keys(schema.shape)).toEqual([...shared, 'extra']);
    expect(schema.shape.featureDim.description).toBe('replaced');
    expect(schema.parse({})).toMatchObject({ slides: 10, instances: [5, 9], featureDim: 9, extra: 1, officialTestFraction: 0.25 });
    expect(issues(schema, { unknownKey: 1 })).toEqual([': Unrecognized key: "unknownKey"']);
  });

  it('checks [min, max] pairs, the bag budget and signalDim ≤ featureDim as asked', () => {
    const schema = syntheticOptions(DEFAULTS, {
      signalDim: z.int().min(1).default(2),
      span: z.tuple([z.number(), z.number()]).default([0, 1]),
    }, { ranges: ['span'], signalWithinFeatures: true });
    expect(issues(schema, { instances: [9, 5], span: [1, 0], featureDim: 3, signalDim: 4 })).toEqual([
      'instances: min 9 > max 5', 'span: min 1 > max 0', 'signalDim: signalDim 4 exceeds featureDim 3',
    ]);
    const tooBig = issues(schema, { instances: [1, SYNTHETIC_LIMITS.instances], featureDim: 8192 });
    expect(tooBig).toHaveLength(1);
    expect(tooBig[0]).toMatch(/^instances: /);
    // Without signalWithinFeatures the width rule is not applied.
    const loose = syntheticOptions(DEFAULTS, { signalDim: z.int().min(1).default(2) });
    expect(issues(loose, { featureDim: 3, signalDim: 4 })).toEqual([]);
  });

  it('gives each synthetic dataset the shared checks and keeps its own', () => {
    for (const schema of [SyntheticCamelyonOptions, SyntheticDecoysOptions, SyntheticSubtypingOptions]) {
      expect(issues(schema, { instances: [200, 100], featureDim: 4, signalDim: 5 })).toEqual(expect.arrayContaining([
        'instances: min 200 > max 100', 'signalDim: signalDim 5 exceeds featureDim 4',
      ]));
    }
    expect(issues(SyntheticHierarchicalOptions, { instances: [200, 100], lesionFraction: [0.5, 0.1] })).toEqual(['instances: min 200 > max 100', 'lesionFraction: min 0.5 > max 0.1']);
    expect(issues(SyntheticDecoysOptions, { decoys: [0, 3], minLesion: 3 })).toEqual([
      'decoys: at most 3 decoys per slide would reach the smallest lesion (minLesion 3); keep decoys[1] < minLesion',
    ]);
    expect(issues(SyntheticCamelyonOptions, { signalDim: 1, plantedDifficulty: {} })).toEqual([
      'signalDim: plantedDifficulty needs signalDim ≥ 2 (one axis for the salient shortcut, the rest for the subtle signal)',
    ]);
    // A dataset's own description of a shared key stands (Camelyon's official split).
    expect(SyntheticCamelyonOptions.shape.officialTestFraction.description).toContain('Camelyon16: 130 of 399');
  });

  it('officialTestCases draws round(cases × fraction) of every class from its own stream', () => {
    // 10 cases of class 0, 5 of class 1, 1 of class 2: 0.3 → 3, 2 (1.5 rounds half up), 0.
    const labels = [...Array<number>(10).fill(0), ...Array<number>(5).fill(1), 2];
    const test = officialTestCases(labels, 3, 0.3, new Rng(4).fork('table'));
    const perClass = [0, 1, 2].map((c) => [...test].filter((i) => labels[i] === c).length);
    expect(perClass).toEqual([3, 2, 0]);
    expect(officialTestCases(labels, 3, 0.3, new Rng(4).fork('table'))).toEqual(test);
    // Class 1's draw is its own stream: relabelling class 0's cases does not move it.
    const class1 = (set: Set<number>): number[] => [...set].filter((i) => labels[i] === 1).sort((a, b) => a - b);
    expect(class1(officialTestCases(labels.map((l) => (l === 0 ? 2 : l)), 3, 0.3, new Rng(4).fork('table')))).toEqual(class1(test));
  });
});
