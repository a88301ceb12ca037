// Slide-reader contract: the pyramid a reader reports is consistent (level 0 largest, downsamples from 1
// increasing), properties are present, regions come back as RGB of the requested size with white wherever they
// leave the slide, a region of a huge level is read without decoding the level, a missing file is an error naming
// it, close() lets go of the file, and the golden case (region digests computed by python3-openslide).
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MilkitError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import type { RegionRequest, RgbImage, SlideOpener, SlideReader, SlideReaderContext } from '../../core/slides/reader.js';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';
import { compareValues, readGolden, type GoldenFile, type GoldenReport } from './golden.js';
import { expectDefaultsParse, goldenPath, missingGolden, parseOptions, type SuiteOptions } from './shared.js';

/** One region of a golden case, as `readRegion` takes it, with a name for the mismatch report. */
export interface SlideRegionCase extends RegionRequest {
  readonly name: string;
}

export interface SlideReaderGoldenCase {
  readonly options: Readonly<Record<string, unknown>>;
  /** The slide file, relative to the suite's `baseDir` (the repository root for the built-ins). */
  readonly slide: string;
  readonly regions: readonly SlideRegionCase[];
}

export interface SlideRegionExpected {
  readonly name: string;
  /** SHA-256 of the interleaved RGB bytes, row-major. */
  readonly sha256: string;
  /** Mean of each channel over the region: locates a difference the digest only detects. */
  readonly mean: readonly [number, number, number];
}

export interface SlideReaderGoldenExpected {
  readonly levels: ReadonlyArray<{ readonly width: number; readonly height: number; readonly downsample: number }>;
  readonly vendor: string | null;
  readonly mppX: number | null;
  readonly mppY: number | null;
  readonly objectivePower: number | null;
  /** Properties the reader must report with exactly these values (OpenSlide key names). */
  readonly properties: Readonly<Record<string, string>>;
  readonly regions: readonly SlideRegionExpected[];
}

export type SlideReaderGolden = GoldenFile<SlideReaderGoldenCase, SlideReaderGoldenExpected>;

/** Where the suite finds its slides: `baseDir` resolves the golden case's slide and a relative `fixture`. */
export interface SlidePlaces {
  readonly baseDir: string;
}

export function createSlideOpener(definition: AnyPluginDefinition, rawOptions: Readonly<Record<string, unknown>> = {}): SlideOpener {
  const context: SlideReaderContext = { logger: silentLogger };
  return (definition.create as (options: unknown, ctx: SlideReaderContext) => SlideOpener)(parseOptions(definition, rawOptions), context);
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Per-channel means of an RGB image. */
export function channelMeans(image: RgbImage): [number, number, number] {
  const sums = [0, 0, 0];
  for (let i = 0; i < image.data.length; i += 1) sums[i % 3] = (sums[i % 3] as number) + (image.data[i] as number);
  const n = Math.max(1, image.width * image.height);
  return [(sums[0] as number) / n, (sums[1] as number) / n, (sums[2] as number) / n];
}

function nullable(value: number | string | undefined): number | string | null {
  return value === undefined ? null : value;
}

export async function checkSlideReaderGolden(definition: AnyPluginDefinition, golden: SlideReaderGolden, places: SlidePlaces): Promise<GoldenReport> {
  const mismatches: string[] = [];
  const want = golden.expected;
  const reader = await createSlideOpener(definition, golden.case.options).open(resolve(places.baseDir, golden.case.slide));
  try {
    const levels = reader.levels.map((l) => [l.width, l.height, l.downsample]);
    mismatches.push(...compareValues('levels', levels.flat(), [levels.length, 3], want.levels.map((l) => [l.width, l.height, l.downsample]), golden.tolerance));
    const scalars: Array<[string, number | string | null, number | string | null]> = [
      ['vendor', nullable(reader.properties.vendor), want.vendor],
      ['mppX', nullable(reader.properties.mppX), want.mppX],
      ['mppY', nullable(reader.properties.mppY), want.mppY],
      ['objectivePower', nullable(reader.properties.objectivePower), want.objectivePower],
    ];
    for (const [key, got, expected] of scalars) {
      if (typeof got === 'number' && typeof expected === 'number') mismatches.push(...compareValues(key, [got], [], expected, golden.tolerance));
      else if (got !== expected) mismatches.push(`${key}: ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
    }
    for (const [key, expected] of Object.entries(want.properties)) {
      const got = reader.properties.all[key];
      if (got !== expected) mismatches.push(`property ${key}: ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
    }
    for (const region of golden.case.regions) {
      const expected = want.regions.find((r) => r.name === region.name);
      const what = `region ${region.name} (level ${region.level} at ${region.x}, ${region.y}, ${region.width}×${region.height})`;
      if (!expected) {
        mismatches.push(`${what}: no expected digest in the golden case`);
        continue;
      }
      const image = await reader.readRegion({ x: region.x, y: region.y, level: region.level, width: region.width, height: region.height });
      if (image.width !== region.width || image.height !== region.height || image.data.length !== region.width * region.height * 3) {
        mismatches.push(`${what}: returned ${image.width}×${image.height} with ${image.data.length} bytes`);
        continue;
      }
      const meanReport = compareValues(`${what} channel means`, channelMeans(image), [3], expected.mean, golden.tolerance);
      const digest = sha256Hex(image.data);
      if (digest !== expected.sha256) mismatches.push(meanReport[0] ?? `${what}: pixels differ (sha256 ${digest.slice(0, 12)}…, expected ${expected.sha256.slice(0, 12)}…) with equal channel means`);
    }
  } finally {
    await reader.close();
  }
  return { plugin: `slide-reader/${definition.name}`, mismatches };
}

/** The level-0 pixel of `sparseTiledTiff`: every tile holds the same gradient. */
export function sparseTilePixel(x: number, y: number): [number, number, number] {
  return [x % 256, y % 256, 128];
}

/**
 * A valid uncompressed tiled RGB TIFF of side × side pixels whose tiles all point at one stored 256 × 256 tile, so
 * a 65536² level (12.9 GB of RGB) fits in under a megabyte: a reader that decodes the whole level to serve a
 * region runs out of memory or time; one that decodes only the tiles under the region answers at once.
 */
export function sparseTiledTiff(side: number): Buffer {
  const tile = 256;
  const perRow = Math.ceil(side / tile);
  const tiles = perRow * perRow;
  const tileBytes = tile * tile * 3;
  const entries = 11;
  const tileAt = 8;
  const bitsAt = tileAt + tileBytes;
  const ifdAt = bitsAt + 6;
  const offsetsAt = ifdAt + 2 + entries * 12 + 4;
  const countsAt = offsetsAt + 4 * tiles;
  const buffer = Buffer.alloc(countsAt + 4 * tiles);
  buffer.write('II', 0, 'latin1');
  buffer.writeUInt16LE(42, 2);
  buffer.writeUInt32LE(ifdAt, 4);
  for (let y = 0; y < tile; y += 1) for (let x = 0; x < tile; x += 1) buffer.set(sparseTilePixel(x, y), tileAt + (y * tile + x) * 3);
  for (let i = 0; i < 3; i += 1) buffer.writeUInt16LE(8, bitsAt + 2 * i);
  let at = ifdAt;
  buffer.writeUInt16LE(entries, at);
  at += 2;
  const SHORT = 3;
  const LONG = 4;
  const entry = (tag: number, type: number, count: number, value: number): void => {
    buffer.writeUInt16LE(tag, at);
    buffer.writeUInt16LE(type, at + 2);
    buffer.writeUInt32LE(count, at + 4);
    if (type === SHORT && count === 1) buffer.writeUInt16LE(value, at + 8);
    else buffer.writeUInt32LE(value, at + 8);
    at += 12;
  };
  // Tags in ascending order, as TIFF requires: width, length, bits per sample, no compression, RGB, 3 samples,
  // chunky, tile width, tile length, tile offsets, tile byte counts.
  entry(256, LONG, 1, side);
  entry(257, LONG, 1, side);
  entry(258, SHORT, 3, bitsAt);
  entry(259, SHORT, 1, 1);
  entry(262, SHORT, 1, 2);
  entry(277, SHORT, 1, 3);
  entry(284, SHORT, 1, 1);
  entry(322, SHORT, 1, tile);
  entry(323, SHORT, 1, tile);
  entry(324, LONG, tiles, offsetsAt);
  entry(325, LONG, tiles, countsAt);
  buffer.writeUInt32LE(0, at);
  for (let i = 0; i < tiles; i += 1) {
    buffer.writeUInt32LE(tileAt, offsetsAt + 4 * i);
    buffer.writeUInt32LE(tileBytes, countsAt + 4 * i);
  }
  return buffer;
}

/** The process's open file descriptors that point at `file` (Linux /proc; undefined elsewhere). */
export function openDescriptorsOf(file: string): number | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc/self/fd');
  } catch {
    return undefined;
  }
  let count = 0;
  for (const fd of entries) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === file) count += 1;
    } catch {
      // The descriptor closed between listing and reading it.
    }
  }
  return count;
}

/**
 * The error a promise-returning call rejects with, or undefined when it resolves. A synchronous throw is not caught:
 * callers chain `.catch()` on readers' promises, so a reader must report failures through the promise.
 */
export async function rejection(call: () => Promise<unknown>): Promise<unknown> {
  return call().then(
    () => undefined,
    (error: unknown) => error ?? new Error('rejected without a reason'),
  );
}

/** The text a user sees for an error: the CLI's one-line form for milkit errors, else the message. */
export function errorText(error: unknown): string {
  if (error instanceof MilkitError) return error.render();
  return error instanceof Error ? error.message : String(error);
}

export interface SlideReaderSuiteOptions extends SuiteOptions, SlidePlaces {
  /** A small pyramidal slide every reader under test opens (absolute, or relative to `baseDir`). */
  readonly fixture: string;
  readonly optionsFor?: (name: string) => Readonly<Record<string, unknown>>;
  /**
   * Run the whole-level check on a generated 65536² tiled TIFF (default true). Turn it off only for a reader of a
   * format that cannot hold a tiled TIFF.
   */
  readonly sparseTiff?: boolean;
}

const LEVEL_READ_BUDGET_MS = 10_000;
const LEVEL_READ_BUDGET_BYTES = 256 * 1024 * 1024;

export function slideReaderContract(definitions: readonly AnyPluginDefinition[], suite: SlideReaderSuiteOptions): void {
  const fixture = isAbsolute(suite.fixture) ? suite.fixture : resolve(suite.baseDir, suite.fixture);

  describe.each(definitions.map((d) => [d.name, d] as const))('slide-reader/%s contract', (name, definition) => {
    const options = suite.optionsFor?.(name) ?? {};
    let reader: SlideReader;
    beforeAll(async () => {
      reader = await createSlideOpener(definition, options).open(fixture);
    });
    afterAll(async () => {
      await reader.close();
    });

    it('parses its defaults, and the parsed options survive a JSON round trip', () => {
      expectDefaultsParse(definition);
    });

    it('declares the file extensions it reads', () => {
      const extensions = definition.capabilities['extensions'] as unknown;
      expect(Array.isArray(extensions) && extensions.length > 0, 'capabilities.extensions is a non-empty list').toBe(true);
      for (const ext of extensions as unknown[]) expect(ext === '*' || (typeof ext === 'string' && /^\.[a-z0-9]+$/.test(ext)), `extension ${String(ext)}: "*" or lower case with the dot`).toBe(true);
    });

    it('reports a consistent pyramid: level 0 largest, downsamples from 1 increasing with the level sizes', () => {
      const levels = reader.levels;
      expect(levels.length).toBeGreaterThan(0);
      expect(levels[0]?.downsample).toBeCloseTo(1, 9);
      const base = levels[0] as { width: number; height: number };
      levels.forEach((level, i) => {
        expect(Number.isSafeInteger(level.width) && level.width > 0 && Number.isSafeInteger(level.height) && level.height > 0, `level ${i} has a positive integer size`).toBe(true);
        expect(level.downsample, `level ${i} downsample`).toBeGreaterThanOrEqual(1);
        // A level's size times its downsample covers level 0 to within one level pixel.
        expect(Math.abs(level.width * level.downsample - base.width), `level ${i} width × downsample ≈ level-0 width`).toBeLessThanOrEqual(level.downsample + 1e-6);
        expect(Math.abs(level.height * level.downsample - base.height), `level ${i} height × downsample ≈ level-0 height`).toBeLessThanOrEqual(level.downsample + 1e-6);
        const previous = levels[i - 1];
        if (previous) {
          expect(level.downsample, `level ${i} downsample exceeds level ${i - 1}'s`).toBeGreaterThan(previous.downsample);
          expect(level.width <= previous.width && level.height <= previous.height, `level ${i} is no larger than level ${i - 1}`).toBe(true);
        }
      });
    });

    it('reports its properties: named string values, positive mpp and objective power when known', () => {
      const { all, vendor, mppX, mppY, objectivePower } = reader.properties;
      expect(Object.keys(all).length, 'properties.all is not empty').toBeGreaterThan(0);
      for (const [key, value] of Object.entries(all)) expect(typeof value === 'string' && key.length > 0, `property ${key} is a string`).toBe(true);
      if (vendor !== undefined) expect(vendor.length).toBeGreaterThan(0);
      for (const [key, value] of Object.entries({ mppX, mppY, objectivePower })) {
        if (value !== undefined) expect(Number.isFinite(value) && value > 0, `${key} = ${value} is finite and positive`).toBe(true);
      }
      if (all['openslide.level-count'] !== undefined) expect(Number(all['openslide.level-count'])).toBe(reader.levels.length);
    });

    it('returns RGB of the requested size at every level', async () => {
      for (const [level, { width, height, downsample }] of reader.levels.entries()) {
        const request = { x: Math.floor(width / 3) * downsample, y: Math.floor(height / 3) * downsample, level, width: 37, height: 23 };
        const image = await reader.readRegion(request);
        expect([image.width, image.height, image.data.length, image.data instanceof Uint8Array], `level ${level}`).toEqual([37, 23, 37 * 23 * 3, true]);
      }
    });

    it('fills the part of a region outside the slide with white and keeps the inside pixels in place', async () => {
      for (const [level, { width, height, downsample }] of reader.levels.entries()) {
        const d = Math.round(downsample);
        if (Math.abs(d - downsample) > 1e-9 || width < 40 || height < 40) continue; // on-grid coordinates only
        // Inside: the last 40 × 40 level pixels. Partly outside: from 10 pixels before the end, 30 × 25 wide.
        const inside = await reader.readRegion({ x: (width - 40) * d, y: (height - 40) * d, level, width: 40, height: 40 });
        const edge = await reader.readRegion({ x: (width - 10) * d, y: (height - 10) * d, level, width: 30, height: 25 });
        const before = await reader.readRegion({ x: -16 * d, y: -8 * d, level, width: 24, height: 12 });
        const origin = await reader.readRegion({ x: 0, y: 0, level, width: 8, height: 4 });
        const outside = await reader.readRegion({ x: (width + 5) * d, y: 0, level, width: 16, height: 16 });
        const px = (image: RgbImage, x: number, y: number): number[] => Array.from(image.data.subarray((y * image.width + x) * 3, (y * image.width + x) * 3 + 3));
        let wrongWhite = 0;
        let moved = 0;
        for (let y = 0; y < 25; y += 1) {
          for (let x = 0; x < 30; x += 1) {
            if (x >= 10 || y >= 10) wrongWhite += px(edge, x, y).some((v) => v !== 255) ? 1 : 0;
            else moved += px(edge, x, y).join() === px(inside, x + 30, y + 30).join() ? 0 : 1;
          }
        }
        for (let y = 0; y < 12; y += 1) {
          for (let x = 0; x < 24; x += 1) {
            if (x < 16 || y < 8) wrongWhite += px(before, x, y).some((v) => v !== 255) ? 1 : 0;
            else if (x < 24 && y < 12) moved += px(before, x, y).join() === px(origin, x - 16, y - 8).join() ? 0 : 1;
          }
        }
        expect(wrongWhite, `level ${level}: non-white pixels outside the slide`).toBe(0);
        expect(moved, `level ${level}: inside pixels that differ from the same pixels read fully inside`).toBe(0);
        expect(outside.data.every((v) => v === 255), `level ${level}: a region wholly outside is white`).toBe(true);
      }
    });

    it.skipIf(suite.sparseTiff === false)('reads a region of a 65536² level without decoding the level', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'milkit-slide-contract-'));
      const file = join(dir, 'sparse-65536.tiff');
      writeFileSync(file, sparseTiledTiff(65536));
      const big = await createSlideOpener(definition, options).open(file);
      try {
        expect([big.levels[0]?.width, big.levels[0]?.height]).toEqual([65536, 65536]);
        const rss = process.memoryUsage().rss;
        const started = performance.now();
        const [x, y] = [40_100, 30_007];
        const image = await big.readRegion({ x, y, level: 0, width: 300, height: 200 });
        const elapsed = performance.now() - started;
        const grown = process.memoryUsage().rss - rss;
        expect(elapsed, 'ms for one 300×200 region (a whole-level decode is 12.9 GB)').toBeLessThan(LEVEL_READ_BUDGET_MS);
        expect(grown, 'bytes of resident memory added by the read').toBeLessThan(LEVEL_READ_BUDGET_BYTES);
        let wrong = 0;
        for (let j = 0; j < 200; j += 1) {
          for (let i = 0; i < 300; i += 1) {
            const want = sparseTilePixel(x + i, y + j);
            const at = (j * 300 + i) * 3;
            if (image.data[at] !== want[0] || image.data[at + 1] !== want[1] || image.data[at + 2] !== want[2]) wrong += 1;
          }
        }
        expect(wrong, 'pixels differing from the tile pattern').toBe(0);
      } finally {
        await big.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('rejects a region of a level that does not exist with an error naming the file', async () => {
      const failure = await rejection(() => reader.readRegion({ x: 0, y: 0, level: reader.levels.length, width: 4, height: 4 }));
      expect(failure, 'readRegion of a missing level rejects its promise').toBeDefined();
      expect(errorText(failure)).toContain(fixture);
    });

    it('rejects a missing file with an error naming it', async () => {
      const missing = join(tmpdir(), `milkit-no-such-slide-${process.pid}.svs`);
      const failure = await rejection(() => createSlideOpener(definition, options).open(missing));
      expect(failure, 'open() of a missing file rejects its promise').toBeDefined();
      expect(errorText(failure)).toContain(missing);
      expect(errorText(failure), 'no raw errno text alone').not.toMatch(/^ENOENT/);
    });

    it('releases the file on close: no descriptor left, a second close is harmless, a later read is an error naming the file', async () => {
      // A private copy, so the descriptors counted are this reader's alone.
      const dir = mkdtempSync(join(tmpdir(), 'milkit-slide-contract-'));
      const copy = join(dir, basename(fixture));
      copyFileSync(fixture, copy);
      try {
        const own = await createSlideOpener(definition, options).open(copy);
        await own.readRegion({ x: 0, y: 0, level: own.levels.length - 1, width: 16, height: 16 });
        await own.readRegion({ x: 0, y: 0, level: 0, width: 16, height: 16 });
        await own.close();
        const left = openDescriptorsOf(copy);
        if (left !== undefined) expect(left, `descriptors still open on the slide after close()`).toBe(0);
        await expect(own.close(), 'a second close()').resolves.toBeUndefined();
        const failure = await rejection(() => own.readRegion({ x: 0, y: 0, level: 0, width: 4, height: 4 }));
        expect(failure, 'readRegion after close rejects its promise').toBeDefined();
        expect(errorText(failure)).toContain(copy);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    const golden = goldenPath(suite, name);
    it.skipIf(!golden && !suite.requireGolden)('matches its golden case', async () => {
      if (!golden) throw new Error(missingGolden(suite, 'slide-reader', name));
      const report = await checkSlideReaderGolden(definition, readGolden<SlideReaderGoldenCase, SlideReaderGoldenExpected>(golden, 'slide-reader'), suite);
      expect(report.mismatches, golden).toEqual([]);
    });
  });
}
