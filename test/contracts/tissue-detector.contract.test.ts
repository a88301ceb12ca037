// Runs the tissue-detector contract over every built-in detector, golden cases required (mask and pieces from
// OpenCV, test/reference/goldens_tissue.py).
import { expect, it } from 'vitest';
import { tissueDetectorContract } from '../../src/testing/contracts/index.js';
import { builtinDefinitions, goldenDirOf } from './builtins.js';

const definitions = await builtinDefinitions('tissue-detector');

it('finds the built-in tissue detectors', () => {
  expect(definitions.map((d) => d.name)).toEqual(['clam']);
});

tissueDetectorContract(definitions, { goldenDir: goldenDirOf('tissue-detector'), requireGolden: true });
