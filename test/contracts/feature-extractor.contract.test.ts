// Runs the feature-extractor contract over every built-in extractor, golden cases required (color-texture: numpy;
// onnx: PyTorch on the committed small CNN, test/reference/goldens_feature_extractors.py).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFeatureExtractorGolden, featureExtractorContract, readGolden, type FeatureExtractorGolden } from '../../src/testing/contracts/index.js';
import { builtinDefinitions, goldenDirOf, REPO_ROOT } from './builtins.js';

const definitions = await builtinDefinitions('feature-extractor');

it('finds the built-in feature extractors', () => {
  expect(definitions.map((d) => d.name)).toEqual(['color-texture', 'onnx']);
});

featureExtractorContract(definitions, { goldenDir: goldenDirOf('feature-extractor'), requireGolden: true, baseDir: REPO_ROOT });

describe('the feature-extractor golden check is not vacuous', () => {
  const golden = (name: string): FeatureExtractorGolden => readGolden(path.join(goldenDirOf('feature-extractor'), `${name}.golden.json`), 'feature-extractor');
  const definition = (name: string) => definitions.find((d) => d.name === name) as (typeof definitions)[number];

  it('reports color-texture features computed with another normalisation', async () => {
    const g = golden('color-texture');
    const report = await checkFeatureExtractorGolden(definition('color-texture'), { ...g, case: { ...g.case, options: { ...g.case.options, normalisation: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } } } }, REPO_ROOT);
    expect(report.mismatches).toEqual([expect.stringMatching(/^features: element \d+ is/)]);
  });

  it('reports one onnx feature off by 2e-4 (the parity tolerance is 1e-4)', async () => {
    const g = golden('onnx');
    const features = g.expected.features.map((row, r) => row.map((v, i) => (r === 2 && i === 5 ? v + 2e-4 : v)));
    const report = await checkFeatureExtractorGolden(definition('onnx'), { ...g, expected: { ...g.expected, features } }, REPO_ROOT);
    expect(report.mismatches).toEqual([expect.stringMatching(/^features: element 37 is/)]);
  });
});
