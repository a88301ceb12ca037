// Runs the slide-reader contract over every built-in reader on the committed synthetic .svs, golden cases
// required (region digests from python3-openslide, test/reference/goldens_slides.py).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RegionRequest, SlideOpener, SlideReader } from '../../src/core/slides/reader.js';
import type { AnyPluginDefinition } from '../../src/registry/index.js';
import {
  checkSlideReaderGolden, readGolden, slideReaderContract,
  type SlideReaderGolden, type SlideReaderGoldenCase, type SlideReaderGoldenExpected,
} from '../../src/testing/contracts/index.js';
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

describe('the slide-reader golden check is not vacuous', () => {
  const goldenOf = (name: string): SlideReaderGolden => readGolden<SlideReaderGoldenCase, SlideReaderGoldenExpected>(path.join(goldenDirOf('slide-reader'), `${name}.golden.json`), 'slide-reader');
  const tiff = definitions.find((d) => d.name === 'tiff') as AnyPluginDefinition;

  it('reports a reader whose regions are shifted by one level pixel, region by region', async () => {
    // The tiff reader with x read one level pixel to the right: every non-uniform region changes.
    const shifted = {
      ...tiff,
      create: (options: unknown, ctx: unknown) => {
        const opener = (tiff.create as (o: unknown, c: unknown) => SlideOpener)(options, ctx);
        return {
          open: async (file: string): Promise<SlideReader> => {
            const reader = await opener.open(file);
            return Object.assign(Object.create(reader) as SlideReader, {
              readRegion: (r: RegionRequest) => reader.readRegion({ ...r, x: r.x + Math.round(reader.levels[r.level]?.downsample ?? 1) }),
              close: () => reader.close(),
            });
          },
        };
      },
    } as AnyPluginDefinition;
    const golden = goldenOf('tiff');
    const report = await checkSlideReaderGolden(shifted, golden, { baseDir: REPO_ROOT });
    expect(report.mismatches.length).toBeGreaterThanOrEqual(golden.case.regions.length - 3);
    expect(report.mismatches[0]).toMatch(/^region L0-tile-corner \(level 0 at 236, 246, 48×32\): /);
  });

  it('reports a wrong level geometry, property and digest', async () => {
    const golden = goldenOf('openslide');
    const expected = golden.expected;
    const perturbed: SlideReaderGolden = {
      ...golden,
      expected: {
        ...expected,
        levels: expected.levels.map((l, i) => (i === 2 ? { ...l, downsample: l.downsample * 1.01 } : l)),
        properties: { ...expected.properties, 'openslide.vendor': 'hamamatsu' },
        regions: expected.regions.map((r, i) => (i === 0 ? { ...r, sha256: '0'.repeat(64) } : r)),
      },
    };
    const report = await checkSlideReaderGolden(tiff, { ...perturbed, case: { ...perturbed.case, regions: perturbed.case.regions.filter((r) => !r.name.endsWith('off-grid')) } }, { baseDir: REPO_ROOT });
    expect(report.mismatches).toEqual([
      expect.stringMatching(/^levels: element 8 is 4, expected 4\.04/),
      'property openslide.vendor: "aperio", expected "hamamatsu"',
      expect.stringMatching(/^region L0-tile-corner .*: pixels differ \(sha256 [0-9a-f]{12}…, expected 000000000000…\) with equal channel means$/),
    ]);
  });
});
