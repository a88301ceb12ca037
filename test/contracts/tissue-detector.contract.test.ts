// Runs the tissue-detector contract over every built-in detector, golden cases required (mask and pieces from
// OpenCV, test/reference/goldens_tissue.py).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AnyPluginDefinition } from '../../src/registry/index.js';
import {
  checkTissueDetectorGolden, geojsonProblems, readGolden, tissueDetectorContract,
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

describe('geojsonProblems', () => {
  const square = [[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]];
  const feature = (coordinates: unknown, type = 'Polygon'): unknown => ({ type: 'Feature', properties: {}, geometry: { type, coordinates } });

  it('accepts closed polygons inside the slide and names each broken feature and ring', () => {
    expect(geojsonProblems({ type: 'FeatureCollection', features: [feature([square])] }, { width: 4, height: 4 })).toEqual([]);
    expect(geojsonProblems({ type: 'Feature' }, { width: 4, height: 4 })).toEqual(['not a FeatureCollection with a features array']);
    expect(
      geojsonProblems(
        { type: 'FeatureCollection', features: [feature([square.slice(0, 4)]), feature([square], 'MultiPolygon'), feature([square, [[0, 0], [9, 0], [9, 1], [0, 0]]]), feature([[[1, 1], [2, 2], [3, 3], [1, 1]]])] },
        { width: 4, height: 4 },
      ),
    ).toEqual([
      'feature 0 ring 0: not closed (first [0,0], last [0,4])',
      'feature 1: geometry type "MultiPolygon", expected "Polygon"',
      'feature 2 ring 1: position [9, 0] outside the 4×4 slide',
      'feature 3 ring 0: encloses no area',
    ]);
  });
});
