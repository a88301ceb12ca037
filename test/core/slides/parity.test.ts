// Reader parity on the committed synthetic .svs: the openslide reader against python3-openslide (fixture from
// test/reference/openslide_regions.py: every property, the levels, associated images and regions at every
// level, on and off the pixel grid, across tile edges, at and past the border), and the tiff reader against
// the same expected pixels wherever the region lies on the level's pixel grid.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadOpenSlide, OpenSlideReader } from '../../../src/core/slides/openslide.js';
import type { RgbImage, SlideReader } from '../../../src/core/slides/reader.js';
import { TiffSlideReader } from '../../../src/core/slides/tiff-reader.js';

const FIXTURES = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../reference/fixtures/slides');
const SLIDE = path.join(FIXTURES, 'synthetic.svs');

interface ExpectedRegion {
  readonly name: string;
  readonly level: number;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly onGrid: boolean;
  readonly sha256: string;
  readonly partialAlphaPixels: number;
  readonly samples: ReadonlyArray<[number, [number, number, number]]>;
}
interface Expected {
  readonly properties: Record<string, string>;
  readonly levels: ReadonlyArray<{ width: number; height: number; downsample: number }>;
  readonly associated: Record<string, { width: number; height: number; sha256: string }>;
  readonly regions: readonly ExpectedRegion[];
}
const expected = JSON.parse(readFileSync(path.join(FIXTURES, 'openslide-regions.json'), 'utf8')) as Expected;

const sha = (image: RgbImage): string => createHash('sha256').update(image.data).digest('hex');
const samples = (image: RgbImage, region: ExpectedRegion): Array<[number, number[]]> => region.samples.map(([i]) => [i, Array.from(image.data.subarray(3 * i, 3 * i + 3))]);
const label = (r: ExpectedRegion): string => `level ${r.level} ${r.name} (${r.x}, ${r.y}) ${r.width}×${r.height}`;

const openslideMissing = await loadOpenSlide().then(
  () => false,
  () => true,
);

describe.skipIf(openslideMissing)('openslide reader matches python3-openslide', () => {
  it('reports every property and the level geometry', async () => {
    const reader = await OpenSlideReader.open(SLIDE);
    expect(reader.properties.all).toEqual(expected.properties);
    expect(reader.levels).toEqual(expected.levels);
    expect([reader.properties.vendor, reader.properties.mppX, reader.properties.mppY, reader.properties.objectivePower]).toEqual(['aperio', 0.5, 0.5, 20]);
    await reader.close();
  });

  it('reads the associated images', async () => {
    const reader = await OpenSlideReader.open(SLIDE);
    expect([...reader.associatedImages].sort()).toEqual(Object.keys(expected.associated).sort());
    for (const [name, want] of Object.entries(expected.associated)) {
      const image = await reader.readAssociatedImage(name);
      expect([name, image.width, image.height, sha(image)]).toEqual([name, want.width, want.height, want.sha256]);
    }
    await reader.close();
  });

  it('includes partially transparent pixels among the regions (off-grid at the border)', () => {
    expect(expected.regions.some((r) => r.partialAlphaPixels > 0)).toBe(true);
  });

  it.each(expected.regions.map((r) => [label(r), r] as const))('reads %s', async (_label, region) => {
    const reader = await OpenSlideReader.open(SLIDE);
    const image = await reader.readRegion(region);
    expect(samples(image, region)).toEqual(region.samples);
    expect(sha(image)).toBe(region.sha256);
    await reader.close();
  });
});

describe('tiff reader matches OpenSlide on the same slide', () => {
  let reader: SlideReader | undefined;
  const open = async (): Promise<SlideReader> => (reader ??= await TiffSlideReader.open(SLIDE));

  it('reports the levels, vendor, mpp and objective power', async () => {
    const r = await open();
    expect(r.levels).toEqual(expected.levels);
    expect([r.properties.vendor, r.properties.mppX, r.properties.mppY, r.properties.objectivePower]).toEqual(['aperio', 0.5, 0.5, 20]);
    for (const key of ['aperio.AppMag', 'aperio.MPP', 'openslide.mpp-x', 'openslide.objective-power', 'openslide.vendor', 'openslide.level-count']) {
      expect(r.properties.all[key], key).toBe(expected.properties[key]);
    }
  });

  it('reads the associated images identically', async () => {
    const r = await open();
    for (const [name, want] of Object.entries(expected.associated)) expect(sha(await r.readAssociatedImage(name)), name).toBe(want.sha256);
  });

  it.each(expected.regions.filter((r) => r.onGrid).map((r) => [label(r), r] as const))('reads %s identically', async (_label, region) => {
    const image = await (await open()).readRegion(region);
    expect(samples(image, region)).toEqual(region.samples);
    expect(sha(image)).toBe(region.sha256);
  });
});
