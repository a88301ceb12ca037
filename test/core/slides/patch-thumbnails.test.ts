// HDMIL-style patch thumbnails from a slide: exact pixels when a level matches the thumbnail scale, box
// averages otherwise (close to averaging level 0 itself), white beyond the slide; and on a generated 20× slide,
// every tissue patch's thumbnail against its level-0 patch box-averaged, within stated JPEG tolerances.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { tissuePatchGrid } from '../../../src/core/slides/patch-grid.js';
import { writeSyntheticSlides } from '../../../src/core/slides/synthetic-slides.js';
import { CLAM_TISSUE_DEFAULTS, detectTissue } from '../../../src/core/slides/tissue.js';
import { readPatchThumbnails } from '../../../src/core/slides/patch-thumbnails.js';
import { TiffSlideReader } from '../../../src/core/slides/tiff-reader.js';
import { asyncErrorText } from '../data/error-text.js';

const SLIDE = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../reference/fixtures/slides/synthetic.svs');
const coords = [0, 0, 256, 512, 768, 256, 1024, 768]; // a 256-px patch grid; the last patch reaches the border

describe('slides/patch-thumbnails', () => {
  it('copies the level whose downsample equals the thumbnail scale', async () => {
    const reader = await TiffSlideReader.open(SLIDE); // levels 1, 2, 4, 8
    const thumbs = await readPatchThumbnails(reader, coords, { patchSize: 128, side: 16 }); // 8 level-0 px per thumb px
    for (let i = 0; i < 4; i += 1) {
      const level = await reader.readRegion({ x: coords[2 * i] as number, y: coords[2 * i + 1] as number, level: 3, width: 16, height: 16 });
      expect(Array.from(thumbs.subarray(i * 768, (i + 1) * 768))).toEqual(Array.from(level.data));
    }
  });

  it('box-averages a finer level to 16 × 16 per 256-px patch, close to averaging level 0', async () => {
    const reader = await TiffSlideReader.open(SLIDE);
    const thumbs = await readPatchThumbnails(reader, coords, { patchSize: 256, side: 16 });
    expect(thumbs.length).toBe(4 * 16 * 16 * 3);
    let total = 0;
    for (let i = 0; i < 4; i += 1) {
      const full = await reader.readRegion({ x: coords[2 * i] as number, y: coords[2 * i + 1] as number, level: 0, width: 256, height: 256 });
      for (let ty = 0; ty < 16; ty += 1) {
        for (let tx = 0; tx < 16; tx += 1) {
          for (let c = 0; c < 3; c += 1) {
            let sum = 0;
            for (let y = 0; y < 16; y += 1) for (let x = 0; x < 16; x += 1) sum += full.data[((ty * 16 + y) * 256 + tx * 16 + x) * 3 + c] as number;
            total += Math.abs(sum / 256 - (thumbs[((i * 16 + ty) * 16 + tx) * 3 + c] as number));
          }
        }
      }
    }
    // The pyramid levels are JPEG re-encodings of box-filtered level 0: a few grey levels apart on average.
    expect(total / (4 * 16 * 16 * 3)).toBeLessThan(4);
  });

  it('gives white beyond the slide and rejects a patch size that is not a multiple of the side', async () => {
    const reader = await TiffSlideReader.open(SLIDE);
    const outside = await readPatchThumbnails(reader, [4096, 4096], { patchSize: 256, side: 16 });
    expect(outside.every((v) => v === 255)).toBe(true);
    expect(await asyncErrorText(() => readPatchThumbnails(reader, coords, { patchSize: 250, side: 16 }))).toContain('patch size 250 is not a whole multiple of the thumbnail side 16.');
  });
});

describe('slides/patch-thumbnails on a generated 20× slide', () => {
  /**
   * Per thumbnail: the mean and the largest absolute difference (grey levels, over 16 × 16 × 3 values) between the
   * thumbnail and its 256-px level-0 patch box-averaged to 16 × 16; `offset` pairs thumbnail i with patch i + offset.
   */
  async function thumbnailErrors(quality: number, offset = 0): Promise<Array<{ mean: number; max: number }>> {
    const dir = mkdtempSync(path.join(tmpdir(), 'milkit-thumbs-'));
    await writeSyntheticSlides({ outDir: dir, slides: 1, size: 3072, seed: 3, tumourFraction: 1, format: 'tiff', quality, tileSize: 256, mpp: 0.5, magnification: 20, maskDownsample: 16, logger: silentLogger });
    const reader = await TiffSlideReader.open(path.join(dir, 'synthetic-000.tiff'));
    try {
      expect(reader.levels.map((l) => l.downsample)).toEqual([1, 2, 4, 8, 16]); // 16 = 1.25× of a 20× scan
      const tissue = await detectTissue(reader, { ...CLAM_TISSUE_DEFAULTS, downsample: 8, referencePatchSize: 128, minTissueArea: 1 });
      const level0 = reader.levels[0] as { width: number; height: number };
      const coords = tissuePatchGrid(tissue, { patchSize: 256, step: 256, width: level0.width, height: level0.height });
      const n = coords.length / 2;
      expect(n).toBeGreaterThan(20);
      const thumbs = await readPatchThumbnails(reader, coords, { patchSize: 256, side: 16 });
      const errors: Array<{ mean: number; max: number }> = [];
      for (let i = 0; i + offset < n; i += 1) {
        const j = i + offset;
        const patch = await reader.readRegion({ x: coords[2 * j] as number, y: coords[2 * j + 1] as number, level: 0, width: 256, height: 256 });
        let sum = 0;
        let max = 0;
        for (let ty = 0; ty < 16; ty += 1) {
          for (let tx = 0; tx < 16; tx += 1) {
            for (let c = 0; c < 3; c += 1) {
              let block = 0;
              for (let y = 0; y < 16; y += 1) for (let x = 0; x < 16; x += 1) block += patch.data[((ty * 16 + y) * 256 + tx * 16 + x) * 3 + c] as number;
              const d = Math.abs(block / 256 - (thumbs[((i * 16 + ty) * 16 + tx) * 3 + c] as number));
              sum += d;
              max = Math.max(max, d);
            }
          }
        }
        errors.push({ mean: sum / 768, max });
      }
      return errors;
    } finally {
      await reader.close();
    }
  }

  // Tolerances are JPEG's, nothing else: the 1.25× thumbnail is one pixel of the 16× pyramid level, which libvips
  // box-filtered from level 0 and then JPEG-encoded on its own. At that scale the nuclei texture is sub-pixel, so the
  // level's tiles are nearly all high frequency and quantisation moves single pixels by tens of grey levels at
  // quality 80 (the `milkit data slides` default), while at quality 98 it moves them by a few. The geometry (level,
  // alignment, row order) is exact: with near-lossless tiles every thumbnail matches within 8 levels per value, and
  // pairing each thumbnail with the next patch instead fails by far.
  it('each thumbnail equals its 20× patch box-averaged to 16 × 16: within 1.5 grey levels on average (max 8) at JPEG quality 98', async () => {
    const errors = await thumbnailErrors(98);
    for (const e of errors) {
      expect(e.mean).toBeLessThanOrEqual(1.5);
      expect(e.max).toBeLessThanOrEqual(8);
    }
    const shifted = await thumbnailErrors(98, 1);
    expect(shifted.filter((e) => e.mean <= 1.5).length).toBeLessThan(shifted.length / 10);
  }, 120_000);

  it('and within 12 grey levels on average per thumbnail at the default JPEG quality 80', async () => {
    const errors = await thumbnailErrors(80);
    for (const e of errors) expect(e.mean).toBeLessThanOrEqual(12);
    expect(errors.reduce((s, e) => s + e.mean, 0) / errors.length).toBeLessThanOrEqual(6);
  }, 120_000);
});
