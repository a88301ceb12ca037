// The openslide (koffi → libopenslide) and tiff (sharp) slide readers on small pyramids written in the test:
// exact level-0 pixels (lossless deflate tiles), white outside the scan, identical regions between the readers,
// Aperio properties and associated images, and the error texts.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it, test } from 'vitest';
import { BackendError } from '../../../src/core/errors.js';
import { loadOpenSlide, OpenSlideReader } from '../../../src/core/slides/openslide.js';
import { bestLevelForDownsample, premultipliedArgbToRgb, type SlideReader } from '../../../src/core/slides/reader.js';
import { insertStripImage, readTiffLayout, setImageDescription } from '../../../src/core/slides/tiff-file.js';
import { TiffSlideReader } from '../../../src/core/slides/tiff-reader.js';
import { asyncErrorText } from '../data/error-text.js';

const WIDTH = 700;
const HEIGHT = 500;
/** Level-0 pixel formula of the test pyramid. */
const pixel = (x: number, y: number): [number, number, number] => [x % 256, y % 256, (3 * x + 5 * y) % 256];

function patternImage(width: number, height: number, at: (x: number, y: number) => [number, number, number]): Buffer {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y += 1) for (let x = 0; x < width; x += 1) data.set(at(x, y), (y * width + x) * 3);
  return data;
}

function stripRgb(width: number, height: number, seed: number): Uint8Array {
  return Uint8Array.from(patternImage(width, height, (x, y) => [(x * seed) % 256, (y * 7) % 256, seed]));
}

let dir: string;
let generic: string;
let aperio: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'milkit-slides-'));
  generic = path.join(dir, 'pattern.tiff');
  await sharp(patternImage(WIDTH, HEIGHT, pixel), { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
    .tiff({ tile: true, tileWidth: 128, tileHeight: 128, pyramid: true, compression: 'deflate' })
    .toFile(generic);
  aperio = path.join(dir, 'pattern.svs');
  await sharp(generic, { page: 0 }).tiff({ tile: true, tileWidth: 128, tileHeight: 128, pyramid: true, compression: 'deflate' }).toFile(aperio);
  await setImageDescription(aperio, 0, `Aperio Image Library v12.0.0\n${WIDTH}x${HEIGHT} [0,0 ${WIDTH}x${HEIGHT}] (128x128) RAW|AppMag = 20|MPP = 0.4990`);
  await insertStripImage(aperio, 1, { width: 35, height: 25, rgb: stripRgb(35, 25, 1), description: `Aperio Image Library v12.0.0\n${WIDTH}x${HEIGHT} -> 35x25` });
  const count = (await readTiffLayout(aperio)).directories.length;
  await insertStripImage(aperio, count, { width: 30, height: 20, rgb: stripRgb(30, 20, 2), description: 'Aperio Image Library v12.0.0\nlabel 30x20' });
  await insertStripImage(aperio, count + 1, { width: 60, height: 24, rgb: stripRgb(60, 24, 3), description: 'Aperio Image Library v12.0.0\nmacro 60x24' });
});

/** Environments without libopenslide0 (e.g. a bare CI image) still run the tiff reader's tests. */
const openslideMissing = await loadOpenSlide().then(
  () => false,
  () => true,
);

const readers: Array<[string, (file: string) => Promise<SlideReader>]> = [
  ['openslide', (file) => OpenSlideReader.open(file)],
  ['tiff', (file) => TiffSlideReader.open(file)],
];

describe.each(readers)('slide reader %s', (name, open) => {
  const it = name === 'openslide' && openslideMissing ? test.skip : test;
  it('reports the pyramid as OpenSlide defines it', async () => {
    const reader = await open(generic);
    expect(reader.levels).toEqual([
      { width: 700, height: 500, downsample: 1 },
      { width: 350, height: 250, downsample: 2 },
      { width: 175, height: 125, downsample: 4 },
      { width: 87, height: 62, downsample: (700 / 87 + 500 / 62) / 2 }, // the first level that fits one 128-px tile
    ]);
    expect(reader.properties.vendor).toBe('generic-tiff');
    expect(reader.properties.mppX).toBeUndefined();
    await reader.close();
  });

  it('reads exact level-0 pixels across tile edges, white where the region leaves the slide', async () => {
    const reader = await open(generic);
    const region = await reader.readRegion({ x: 600, y: 120, level: 0, width: 130, height: 20 });
    for (const [rx, ry] of [[0, 0], [27, 7], [28, 8], [99, 19], [100, 0], [129, 19]] as const) {
      const at = (ry * 130 + rx) * 3;
      const inside = 600 + rx < WIDTH;
      expect(Array.from(region.data.subarray(at, at + 3)), `(${rx}, ${ry})`).toEqual(inside ? pixel(600 + rx, 120 + ry) : [255, 255, 255]);
    }
    const before = await reader.readRegion({ x: -5, y: -3, level: 0, width: 8, height: 4 });
    expect(Array.from(before.data.subarray(0, 3))).toEqual([255, 255, 255]);
    expect(Array.from(before.data.subarray((3 * 8 + 5) * 3, (3 * 8 + 5) * 3 + 3))).toEqual(pixel(0, 0));
    const outside = await reader.readRegion({ x: 5000, y: 0, level: 1, width: 4, height: 4 });
    expect(outside.data.every((v) => v === 255)).toBe(true);
    await reader.close();
  });

  it('reads Aperio MPP, AppMag and the thumbnail, label and macro images', async () => {
    const reader = await open(aperio);
    expect(reader.properties.vendor).toBe('aperio');
    expect(reader.properties.mppX).toBeCloseTo(0.499, 6);
    expect(reader.properties.mppY).toBeCloseTo(0.499, 6);
    expect(reader.properties.objectivePower).toBe(20);
    expect(reader.properties.all['aperio.AppMag']).toBe('20');
    expect([...reader.associatedImages].sort()).toEqual(['label', 'macro', 'thumbnail']);
    expect(reader.levels.map((l) => l.width)).toEqual([700, 350, 175, 87]);
    for (const [name, width, height, seed] of [['thumbnail', 35, 25, 1], ['label', 30, 20, 2], ['macro', 60, 24, 3]] as const) {
      const image = await reader.readAssociatedImage(name);
      expect([image.width, image.height]).toEqual([width, height]);
      expect(Array.from(image.data)).toEqual(Array.from(stripRgb(width, height, seed)));
    }
    expect(await asyncErrorText(() => reader.readAssociatedImage('overview'))).toBe(`DataError[missing-associated-image] ${aperio}: no associated image "overview" (the slide has: ${reader.associatedImages.join(', ')}).`);
    await reader.close();
  });

  it('rejects a level that does not exist and oversized regions', async () => {
    const reader = await open(generic);
    expect(await asyncErrorText(() => reader.readRegion({ x: 0, y: 0, level: 4, width: 4, height: 4 }))).toBe(
      `DataError[bad-region] ${generic}: level 4 does not exist (the slide has levels 0..3). Pick a level from the reader's levels list.`,
    );
    expect(await asyncErrorText(() => reader.readRegion({ x: 0, y: 0, level: 0, width: 10000, height: 10000 }))).toContain('DataError[region-too-large]');
    await reader.close();
  });

  it('names a file that is not a slide', async () => {
    const notSlide = path.join(dir, 'notes.txt');
    writeFileSync(notSlide, 'not a slide');
    expect(await asyncErrorText(() => open(notSlide))).toContain(`DataError[unsupported-slide] ${notSlide}:`);
    expect(await asyncErrorText(() => open(path.join(dir, 'absent.svs')))).toContain('DataError[missing-file]');
  });
});

describe.skipIf(openslideMissing)('openslide and tiff readers agree', () => {
  it.each([
    [0, 0, 0],
    [0, 250, 120], // crosses tile edges at 256 and 128
    [1, 2 * 100, 2 * 60],
    [1, 2 * 300, 2 * 200], // partly outside level 1
    [2, 4 * 120, 4 * 90],
    [3, 0, 0], // downsample 8.055: only the origin falls on both grids
  ])('level %i at (%i, %i)', async (level, x, y) => {
    const a = await OpenSlideReader.open(generic);
    const b = await TiffSlideReader.open(generic);
    const request = { x, y, level, width: 90, height: 70 };
    expect(Buffer.from((await b.readRegion(request)).data).equals(Buffer.from((await a.readRegion(request)).data))).toBe(true);
    await a.close();
  });
});

describe('slides/reader helpers', () => {
  it('composites pre-multiplied ARGB on white, including partial alpha', () => {
    const argb = Uint32Array.from([0xff102030, 0x00000000, 0x80402010, 0x40101010].map((v) => v >>> 0));
    expect(Array.from(premultipliedArgbToRgb(argb, 4, 1).data)).toEqual([0x10, 0x20, 0x30, 255, 255, 255, 0x40 + 127, 0x20 + 127, 0x10 + 127, 0x10 + 191, 0x10 + 191, 0x10 + 191]);
  });

  it('picks the largest level not above the wanted downsample', () => {
    const levels = [{ width: 8, height: 8, downsample: 1 }, { width: 4, height: 4, downsample: 2 }, { width: 2, height: 2, downsample: 4.01 }];
    expect([0.5, 1, 1.9, 2, 4, 4.01, 64].map((d) => bestLevelForDownsample(levels, d))).toEqual([0, 0, 0, 1, 1, 2, 2]);
  });

  it('names the Debian package when libopenslide cannot be loaded', async () => {
    const error = await OpenSlideReader.open(generic, ['libopenslide-missing.so.9']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendError);
    expect((error as BackendError).code).toBe('openslide-unavailable');
    expect((error as BackendError).render()).toContain('Install it with the Debian/Ubuntu package libopenslide0 (apt-get install libopenslide0)');
  });
});
