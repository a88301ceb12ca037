// Tissue detection against two references: the ground-truth tissue masks of generated slides (pen marks, dust,
// bubbles, a faint fragment and holes included), and CLAM's own segmentation re-implemented with OpenCV in
// test/reference/tissue_clam_segment.py (contours, area filters, holes; fixture masks committed).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { writeSyntheticSlides } from '../../../src/core/slides/synthetic-slides.js';
import { CLAM_TISSUE_DEFAULTS, detectTissue, isPenInk, segmentTissue, type TissueOptions } from '../../../src/core/slides/tissue.js';
import { TiffSlideReader } from '../../../src/core/slides/tiff-reader.js';

const FIXTURES = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../reference/fixtures/slides');

/** Intersection over union of two 0/255 masks of the same grid. */
function iou(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let both = 0;
  let either = 0;
  for (let i = 0; i < a.length; i += 1) {
    if (a[i] && b[i]) both += 1;
    if (a[i] || b[i]) either += 1;
  }
  return both / either;
}

/** A mask on a finer grid brought to a grid `factor` times coarser, each pixel by majority (as the truth masks are). */
function majorityDown(mask: Uint8Array, width: number, height: number, factor: number, outWidth: number, outHeight: number): Uint8Array {
  const out = new Uint8Array(outWidth * outHeight);
  for (let y = 0; y < outHeight; y += 1) {
    for (let x = 0; x < outWidth; x += 1) {
      let on = 0;
      let n = 0;
      for (let yy = y * factor; yy < Math.min(height, (y + 1) * factor); yy += 1) {
        for (let xx = x * factor; xx < Math.min(width, (x + 1) * factor); xx += 1) {
          n += 1;
          if (mask[yy * width + xx]) on += 1;
        }
      }
      out[y * outWidth + x] = 2 * on > n ? 255 : 0;
    }
  }
  return out;
}

describe('tissue detection against the synthetic ground truth', () => {
  // Small slides: areas counted in 128-px patches (CLAM's 512-px a_t = 100 would drop all tissue), holes kept from a
  // 0.02-patch area; analysed at 4× so the mask has enough pixels; marker ink ignored (penFilter).
  const SMALL_SLIDE: TissueOptions = { ...CLAM_TISSUE_DEFAULTS, downsample: 4, referencePatchSize: 128, minTissueArea: 1, minHoleArea: 0.02, penFilter: true };

  it('reaches IoU ≥ 0.9 on every generated slide, pen marks, dust, bubbles, faint tissue and holes included', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'milkit-tissue-iou-'));
    const slides = 5;
    await writeSyntheticSlides({ outDir: dir, slides, size: 4096, seed: 7, tumourFraction: 0.5, format: 'tiff', quality: 80, tileSize: 256, mpp: 0.5, magnification: 20, maskDownsample: 16, logger: silentLogger });
    const scores: number[] = [];
    const withoutPenFilter: number[] = [];
    for (let i = 0; i < slides; i += 1) {
      const id = `synthetic-${String(i).padStart(3, '0')}`;
      const truthFile = path.join(dir, 'masks', `${id}_tissue.png`);
      const meta = await sharp(truthFile).metadata();
      const truth = await sharp(truthFile).toColourspace('b-w').raw().toBuffer();
      const reader = await TiffSlideReader.open(path.join(dir, `${id}.tiff`));
      try {
        for (const [options, into] of [[SMALL_SLIDE, scores], [{ ...SMALL_SLIDE, penFilter: false }, withoutPenFilter]] as const) {
          const result = await detectTissue(reader, options);
          expect(result.downsample).toBe(4);
          const onTruthGrid = majorityDown(result.mask, result.width, result.height, 16 / result.downsample, meta.width as number, meta.height as number);
          into.push(iou(onTruthGrid, new Uint8Array(truth)));
        }
      } finally {
        await reader.close();
      }
    }
    for (const score of scores) expect(score).toBeGreaterThanOrEqual(0.9);
    // The pen filter is what handles the marker strokes: without it at least one slide loses overlap.
    expect(Math.min(...withoutPenFilter.map((s, i) => s - (scores[i] as number)))).toBeLessThan(-0.005);
  }, 240_000);

  it('tells marker ink from H&E colours', () => {
    // Blue, green and black ink blended over glass or stroma; stroma, tumour, faint tissue and glass.
    const inks: Array<[number, number, number]> = [[90, 113, 187], [83, 150, 112], [91, 91, 98], [88, 95, 177]];
    const stains: Array<[number, number, number]> = [[234, 170, 198], [206, 136, 192], [180, 110, 175], [240, 226, 234], [242, 242, 240]];
    for (const [r, g, b] of inks) expect(isPenInk(r, g, b)).toBe(true);
    for (const [r, g, b] of stains) expect(isPenInk(r, g, b)).toBe(false);
  });
});

describe("tissue detection against CLAM's segmentation (OpenCV reference)", () => {
  const reference = JSON.parse(readFileSync(path.join(FIXTURES, 'tissue-clam.json'), 'utf8')) as {
    level: number;
    width: number;
    height: number;
    cases: Record<string, { params: { sthresh: number; mthresh: number; close: number; a_t: number; a_h: number; max_n_holes: number; ref_patch_size: number }; pieces: number; holes: number }>;
  };

  it('reaches IoU ≥ 0.95 with the reference mask, with holes filled by CLAM’s area and with holes kept', async () => {
    const reader = await TiffSlideReader.open(path.join(FIXTURES, 'synthetic.svs'));
    const level = reader.levels[reference.level];
    expect([level?.width, level?.height]).toEqual([reference.width, reference.height]);
    const image = await reader.readRegion({ x: 0, y: 0, level: reference.level, width: reference.width, height: reference.height });
    expect(Object.keys(reference.cases)).toEqual(['filled-holes', 'kept-holes']);
    for (const [name, { params, pieces, holes }] of Object.entries(reference.cases)) {
      const options: TissueOptions = {
        ...CLAM_TISSUE_DEFAULTS, saturationThreshold: params.sthresh, medianKernel: params.mthresh, closeKernel: params.close,
        minTissueArea: params.a_t, minHoleArea: params.a_h, maxHoles: params.max_n_holes, referencePatchSize: params.ref_patch_size,
      };
      const result = segmentTissue(image, reference.level, level?.downsample ?? 1, options);
      const expected = await sharp(path.join(FIXTURES, `tissue-clam-${name}.png`)).toColourspace('b-w').raw().toBuffer();
      expect(iou(result.mask, new Uint8Array(expected)), name).toBeGreaterThanOrEqual(0.95);
      expect(result.geojson.features.length, name).toBe(pieces);
      expect(result.geojson.features.reduce((s, f) => s + f.properties.holes, 0), name).toBe(holes);
    }
    await reader.close();
  });
});
