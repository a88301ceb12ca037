// Runs the tissue-detector contract over every built-in detector, golden cases required (mask and pieces from
// OpenCV, test/reference/goldens_tissue.py).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AnyPluginDefinition } from '../../src/registry/index.js';
import {
  checkTissueDetectorGolden, readGolden, tissueDetectorContract,
  type TissueDetectorGoldenCase, type TissueDetectorGoldenExpected, type TissueRunExpected,
} from '../../src/testing/contracts/index.js';
import { builtinDefinitions, goldenDirOf } from './builtins.js';

const definitions = await builtinDefinitions('tissue-detector');

it('finds the built-in tissue detectors', () => {
  expect(definitions.map((d) => d.name)).toEqual(['clam']);
});

tissueDetectorContract(definitions, { goldenDir: goldenDirOf('tissue-detector'), requireGolden: true });

describe('the tissue-detector golden check is not vacuous', () => {
  const golden = readGolden<TissueDetectorGoldenCase, TissueDetectorGoldenExpected>(path.join(goldenDirOf('tissue-detector'), 'clam.golden.json'), 'tissue-detector');
  const clam = definitions[0] as AnyPluginDefinition;

  it('reports a detector that skips the morphological closing', async () => {
    // CLAM's detector with its options forced to closeKernel 0, whatever the golden asks.
    const unclosed = { ...clam, create: (options: Record<string, unknown>, ctx: unknown) => (clam.create as (o: unknown, c: unknown) => unknown)({ ...options, closeKernel: 0 }, ctx) } as AnyPluginDefinition;
    const report = await checkTissueDetectorGolden(unclosed, golden);
    expect(report.mismatches.length).toBeGreaterThanOrEqual(golden.case.runs.length);
    expect(report.mismatches[0]).toMatch(/^run 0 .*tissue pixels per row: element \d+ is \d+, expected \d+/);
  });

  it('reports a wrong threshold and a missing piece', async () => {
    const [first, ...rest] = golden.expected.runs as [TissueRunExpected, ...TissueRunExpected[]];
    const perturbed = { ...golden, expected: { runs: [{ ...first, threshold: first.threshold + 1, pieces: first.pieces.slice(0, -1) }, ...rest] } };
    const report = await checkTissueDetectorGolden(clam, perturbed);
    expect(report.mismatches).toEqual([expect.stringMatching(/^run 0 .*: threshold 8, expected 9$/), expect.stringMatching(/^run 0 .*: pieces \[.*\], expected \[.*\]$/)]);
  });
});
