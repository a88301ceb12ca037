// Runs the slide-reader contract over every built-in reader on the committed synthetic .svs, golden cases
// required (region digests from python3-openslide, test/reference/goldens_slides.py).
import { expect, it } from 'vitest';
import { slideReaderContract } from '../../src/testing/contracts/index.js';
import { builtinDefinitions, goldenDirOf, REPO_ROOT } from './builtins.js';

const definitions = await builtinDefinitions('slide-reader');

it('finds the built-in slide readers', () => {
  expect(definitions.map((d) => d.name).sort()).toEqual(['openslide', 'tiff']);
});

slideReaderContract(definitions, {
  baseDir: REPO_ROOT,
  fixture: 'test/reference/fixtures/slides/synthetic.svs',
  goldenDir: goldenDirOf('slide-reader'),
  requireGolden: true,
});
