// `milkit data slides`: what the files are (Aperio/generic pyramids OpenSlide opens, masks, slide table) and
// that the picture matches its ground truth: tissue where the mask says, tumour darker and more crowded with
// nuclei than normal tissue at 20× and still darker at 1.25×, white-ish background elsewhere.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import type { CliIo } from '../../../src/core/cli/app.js';
import { main } from '../../../src/core/cli/main.js';
import { loadOpenSlide, OpenSlideReader } from '../../../src/core/slides/openslide.js';
import { bestLevelForDownsample } from '../../../src/core/slides/reader.js';
import { TiffSlideReader } from '../../../src/core/slides/tiff-reader.js';
import { CELL, CLASS, classAt, classMap, drawScene, groundTruthMasks, mosaicScene } from '../../../src/core/slides/scene.js';
import { syntheticSlideHeight, writeSyntheticSlides } from '../../../src/core/slides/synthetic-slides.js';
import { ConfigError } from '../../../src/core/errors.js';
import { silentLogger } from '../../../src/core/logger.js';

async function milkit(args: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io: CliIo = { out: (t) => stdout.push(t), err: (t) => stderr.push(t), stdoutIsTTY: false };
  const code = await main(args, { manifest: builtinManifest(), io, cwd, env: {} });
  return { code, out: stdout.join('\n'), err: stderr.join('\n') };
}

async function mask(file: string): Promise<{ width: number; height: number; data: Uint8Array }> {
  const { data, info } = await sharp(file).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(1);
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

const SIZE = 4096;
const openslideMissing = await loadOpenSlide().then(
  () => false,
  () => true,
);
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'milkit-synthetic-slides-'));
  const result = await milkit(['data', 'slides', '--out', 'out', '--slides', '2', '--size', String(SIZE), '--seed', '3', '--format', 'both', '--mask-downsample', '64'], dir);
  expect(result.err).not.toContain('error');
  expect(result.code).toBe(0);
}, 120_000);

describe('milkit data slides', () => {
  it('writes one tumour and one normal slide in both formats, masks and slides.csv', () => {
    const table = readFileSync(path.join(dir, 'out', 'slides.csv'), 'utf8').trim().split('\n');
    expect(table[0]).toBe('slide_id,case_id,label,slide_file,mask_downsample,tumour_cells');
    const rows = table.slice(1).map((l) => l.split(','));
    expect(rows.map((r) => r[0])).toEqual(['synthetic-000', 'synthetic-001']);
    expect(rows.map((r) => r[2]).sort()).toEqual(['normal_tissue', 'tumor_tissue']);
    for (const r of rows) expect(Number(r[5]) > 0).toBe(r[2] === 'tumor_tissue');
  });

  it.skipIf(openslideMissing)('gives .svs files that OpenSlide reads as Aperio with MPP, AppMag and associated images', async () => {
    const reader = await OpenSlideReader.open(path.join(dir, 'out', 'synthetic-000.svs'));
    expect(reader.properties.vendor).toBe('aperio');
    expect(reader.properties.mppX).toBe(0.5);
    expect(reader.properties.objectivePower).toBe(20);
    expect([...reader.associatedImages].sort()).toEqual(['label', 'macro', 'thumbnail']);
    expect(reader.levels[0]).toEqual({ width: SIZE, height: SIZE * 0.75, downsample: 1 });
    expect(reader.levels.map((l) => Math.round(l.downsample))).toEqual([1, 2, 4, 8, 16]);
    const thumbnail = await reader.readAssociatedImage('thumbnail');
    expect(thumbnail.width).toBe(SIZE / 32);
    await reader.close();
    const generic = await OpenSlideReader.open(path.join(dir, 'out', 'synthetic-000.tiff'));
    expect(generic.properties.vendor).toBe('generic-tiff');
    expect(generic.levels).toEqual(reader.levels);
    await generic.close();
  });

  it('paints tissue where the mask says, and tumour darker and denser than normal tissue at 20× and 1.25×', async () => {
    const table = readFileSync(path.join(dir, 'out', 'slides.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
    const tumourSlide = (table.find((r) => r[2] === 'tumor_tissue') as string[])[0] as string;
    const tissue = await mask(path.join(dir, 'out', 'masks', `${tumourSlide}_tissue.png`));
    const tumour = await mask(path.join(dir, 'out', 'masks', `${tumourSlide}_tumour.png`));
    expect([tissue.width, tissue.height]).toEqual([SIZE / 64, (SIZE * 0.75) / 64]);
    const reader = await TiffSlideReader.open(path.join(dir, 'out', `${tumourSlide}.svs`));

    // 1.25× = downsample 16: mean colour per mask class, sampling each mask pixel's block (4 × 4 level pixels).
    const level = bestLevelForDownsample(reader.levels, 16);
    const low = await reader.readRegion({ x: 0, y: 0, level, width: reader.levels[level]?.width ?? 0, height: reader.levels[level]?.height ?? 0 });
    const sums: Record<'background' | 'normal' | 'tumour', { total: number; count: number }> = { background: { total: 0, count: 0 }, normal: { total: 0, count: 0 }, tumour: { total: 0, count: 0 } };
    for (let my = 1; my < tissue.height - 1; my += 1) {
      for (let mx = 1; mx < tissue.width - 1; mx += 1) {
        // Only mask pixels whose 8 neighbours agree, away from edges where the blocks mix classes.
        const m = my * tissue.width + mx;
        const kind = tumour.data[m] ? 'tumour' : tissue.data[m] ? 'normal' : 'background';
        const same = [-1, 0, 1].every((dy) => [-1, 0, 1].every((dx) => tissue.data[m + dy * tissue.width + dx] === tissue.data[m] && tumour.data[m + dy * tissue.width + dx] === tumour.data[m]));
        if (!same) continue;
        const at = ((my * 4 + 2) * low.width + mx * 4 + 2) * 3;
        sums[kind].total += ((low.data[at] as number) + (low.data[at + 1] as number) + (low.data[at + 2] as number)) / 3;
        sums[kind].count += 1;
      }
    }
    const mean = (k: keyof typeof sums): number => sums[k].total / sums[k].count;
    expect(sums.tumour.count).toBeGreaterThan(10);
    expect(mean('background')).toBeGreaterThan(225);
    expect(mean('normal')).toBeLessThan(mean('background') - 20);
    expect(mean('tumour')).toBeLessThan(mean('normal') - 15);

    // 20×: the fraction of nucleus-dark pixels in a 256² patch at the centre of a tumour block vs a normal block.
    const darkFraction = async (mx: number, my: number): Promise<number> => {
      const patch = await reader.readRegion({ x: mx * 64 - 96, y: my * 64 - 96, level: 0, width: 256, height: 256 });
      let dark = 0;
      for (let p = 0; p < patch.data.length; p += 3) if ((patch.data[p] as number) < 150) dark += 1;
      return dark / (256 * 256);
    };
    const centreOf = (want: (m: number) => boolean): [number, number] => {
      for (let my = 3; my < tissue.height - 3; my += 1) {
        for (let mx = 3; mx < tissue.width - 3; mx += 1) {
          if ([-2, -1, 0, 1, 2].every((dy) => [-2, -1, 0, 1, 2].every((dx) => want((my + dy) * tissue.width + mx + dx)))) return [mx, my];
        }
      }
      throw new Error('no block found');
    };
    const [tx, ty] = centreOf((m) => tumour.data[m] === 255);
    const [nx, ny] = centreOf((m) => tissue.data[m] === 255 && tumour.data[m] === 0);
    const tumourDark = await darkFraction(tx, ty);
    const normalDark = await darkFraction(nx, ny);
    expect(tumourDark).toBeGreaterThan(2 * normalDark);
    expect(normalDark).toBeGreaterThan(0.02);
    await reader.close();
  });

  it('rejects bad flags with the flag named', async () => {
    expect((await milkit(['data', 'slides', '--out', 'x', '--format', 'png'], dir)).err).toContain('--format: expected svs, tiff or both, got "png".');
    const small = await milkit(['data', 'slides', '--out', 'x', '--size', '100'], dir);
    expect(small.code).toBe(2);
    expect(small.err).toContain('--size: expected an integer in [512, 200000], got "100".');
    const flat = await milkit(['data', 'slides', '--out', 'x', '--size', '1024', '--height', '300'], dir);
    expect(flat.code).toBe(2);
    expect(flat.err).toContain('--height: expected an integer in [512, 200000], got "300".');
    expect((await milkit(['data', 'slides', '--out', 'x', '--height', '600.5'], dir)).err).toContain('--height: expected an integer');
  });

  it('--height sets the level-0 height (a portrait slide here) and the masks follow it', async () => {
    const result = await milkit(['data', 'slides', '--out', 'tall', '--slides', '1', '--size', '768', '--height', '1280', '--seed', '4', '--format', 'tiff', '--tumour-fraction', '1'], dir);
    expect(result.code).toBe(0);
    const reader = await TiffSlideReader.open(path.join(dir, 'tall', 'synthetic-000.tiff'));
    expect(reader.levels[0]).toEqual({ width: 768, height: 1280, downsample: 1 });
    // The bottom rows are painted like the rest: the last 64 rows are not empty (all-zero) strips.
    const bottom = await reader.readRegion({ x: 0, y: 1280 - 64, level: 0, width: 768, height: 64 });
    const meanBottom = bottom.data.reduce((s, v) => s + v, 0) / bottom.data.length;
    expect(meanBottom).toBeGreaterThan(150);
    await reader.close();
    const tissue = await mask(path.join(dir, 'tall', 'masks', 'synthetic-000_tissue.png'));
    expect([tissue.width, tissue.height]).toEqual([768 / 64, 1280 / 64]);
    expect(tissue.data.includes(255)).toBe(true);
  });
});

describe('syntheticSlideHeight', () => {
  it('keeps the 4:3 default when no height is given and takes an explicit one as is', () => {
    expect(syntheticSlideHeight(4096, undefined)).toBe(3072);
    expect(syntheticSlideHeight(50000, undefined)).toBe(37500);
    expect(syntheticSlideHeight(1001, undefined)).toBe(751);
    expect(syntheticSlideHeight(50000, 50000)).toBe(50000);
    expect(syntheticSlideHeight(1024, 2048)).toBe(2048);
  });

  it('refuses a height too small for a pyramid, naming --height', () => {
    expect(() => syntheticSlideHeight(1024, 100)).toThrow(ConfigError);
    expect(() => syntheticSlideHeight(1024, 100)).toThrow('--height 100');
  });

  it('writeSyntheticSlides makes a square slide with height = size', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'milkit-square-slide-'));
    const result = await writeSyntheticSlides({ outDir: out, slides: 1, size: 1024, height: 1024, seed: 2, tumourFraction: 0, format: 'tiff', quality: 80, tileSize: 256, mpp: 0.5, magnification: 20, maskDownsample: 64, logger: silentLogger });
    const reader = await TiffSlideReader.open(result.files[0] as string);
    expect(reader.levels[0]).toEqual({ width: 1024, height: 1024, downsample: 1 });
    await reader.close();
    const tissue = await mask(path.join(out, 'masks', 'synthetic-000_tissue.png'));
    expect([tissue.width, tissue.height]).toEqual([16, 16]);
  });
});

describe('writeSyntheticSlides then reading in the same process', () => {
  it('reads every level of a fresh .svs (libvips must not serve the pages it cached before the Aperio patch)', async () => {
    // The Aperio patch inserts the thumbnail as directory 1, so page k + 1 becomes what page k was; a stale
    // libvips cache entry for the pre-patch page made a full read of a level fail ("bad extract area").
    const out = mkdtempSync(path.join(tmpdir(), 'milkit-fresh-svs-'));
    const result = await writeSyntheticSlides({ outDir: out, slides: 1, size: 2048, seed: 1, tumourFraction: 1, format: 'svs', quality: 80, tileSize: 256, mpp: 0.5, magnification: 20, maskDownsample: 64, logger: silentLogger });
    const reader = await TiffSlideReader.open(result.files[0] as string);
    try {
      expect(reader.levels.map((l) => l.width)).toEqual([2048, 1024, 512, 256]);
      for (let level = 0; level < reader.levels.length; level += 1) {
        const { width, height } = reader.levels[level] as { width: number; height: number };
        const region = await reader.readRegion({ x: 0, y: 0, level, width: Math.min(width, 1024), height: Math.min(height, 1024) });
        expect(region.width).toBe(Math.min(width, 1024));
      }
    } finally {
      await reader.close();
    }
  });
});

describe('slides/scene', () => {
  it('is reproducible from its seed and has tumour only when asked', () => {
    const a = classMap(drawScene(2048, 1536, 'x', true));
    const b = classMap(drawScene(2048, 1536, 'x', true));
    expect(Buffer.from(a.classes).equals(Buffer.from(b.classes))).toBe(true);
    expect(a.classes.includes(CLASS.tumour)).toBe(true);
    expect(a.classes.includes(CLASS.faint)).toBe(true);
    expect(classMap(drawScene(2048, 1536, 'x', false)).classes.includes(CLASS.tumour)).toBe(false);
  });

  it('mosaicScene tiles independent scenes of the given size: each tile is that scene moved, pens keep the small scene\'s width', () => {
    const mosaic = mosaicScene(5000, 3000, 'm', true, 2048, 1536);
    // 3 × 2 tiles (the last column and row clipped); tile (column 2, row 1) is the scene "m/scene-2-1" moved by (4096, 1536).
    const tile = drawScene(2048, 1536, 'm/scene-2-1', true);
    for (const [x, y] of [[300, 200], [1024, 768], [900, 1100], [1500, 400]] as const) {
      expect(classAt(mosaic, 4096 + x, 1536 + y)).toBe(classAt(tile, x, y));
    }
    const first = drawScene(2048, 1536, 'm/scene-0-0', true);
    expect(classAt(mosaic, 1024, 768)).toBe(classAt(first, 1024, 768));
    expect(mosaic.tissue.length).toBe([0, 1, 2].flatMap((c) => [0, 1].map((r) => drawScene(2048, 1536, `m/scene-${c}-${r}`, true).tissue.length)).reduce((a, b) => a + b, 0));
    // A pen per tile that drew one, each as wide as on a 2,048-px slide; the single-scene field is unused.
    expect(mosaic.pen).toBeUndefined();
    expect((mosaic.pens ?? []).length).toBeGreaterThan(0);
    for (const pen of mosaic.pens ?? []) expect(pen.halfWidth).toBeCloseTo(Math.max(3, 1536 * 0.004), 9);
    // One scene of the whole slide scales the pen with the slide instead.
    expect(drawScene(5000, 3000, 'm', true).pen?.halfWidth ?? 12).toBeCloseTo(12, 9);
    expect(classMap(mosaicScene(5000, 3000, 'm', false, 2048, 1536)).classes.includes(CLASS.tumour)).toBe(false);
  });

  it('writeSyntheticSlides refuses a sceneSize too small for a scene', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'milkit-scene-size-'));
    await expect(writeSyntheticSlides({ outDir: out, slides: 1, size: 1024, seed: 2, tumourFraction: 0, format: 'tiff', quality: 80, tileSize: 256, mpp: 0.5, magnification: 20, maskDownsample: 64, sceneSize: 100, logger: silentLogger }))
      .rejects.toThrow('sceneSize 100');
  });

  it('builds masks by majority of the cells under each mask pixel', () => {
    // 2 × 2 cells per mask pixel (downsample 32): tissue, tissue, tumour, background → tissue 3/4, tumour 1/4.
    const map = { columns: 2, rows: 2, classes: Uint8Array.from([CLASS.tissue, CLASS.tissue, CLASS.tumour, CLASS.background]) };
    const masks = groundTruthMasks(map, 2 * CELL, 2 * CELL, 32);
    expect([masks.width, masks.height, masks.tissue[0], masks.tumour[0]]).toEqual([1, 1, 255, 0]);
  });
});
