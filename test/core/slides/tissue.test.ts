// CLAM-style tissue segmentation: the pixel steps equal OpenCV's (fixture from test/reference/tissue_opencv.py),
// exact rings and area filtering on a hand-made image, and agreement with the ground-truth mask of a synthetic
// slide.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import type { CliIo } from '../../../src/core/cli/app.js';
import { main } from '../../../src/core/cli/main.js';
import { silentLogger } from '../../../src/core/logger.js';
import type { RgbImage } from '../../../src/core/slides/reader.js';
import { writeSyntheticSlides } from '../../../src/core/slides/synthetic-slides.js';
import { CLAM_TISSUE_DEFAULTS, detectTissue, saturation, segmentTissue, tissueBinary } from '../../../src/core/slides/tissue.js';
import { TiffSlideReader } from '../../../src/core/slides/tiff-reader.js';

const FIXTURES = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../reference/fixtures/slides');
const expected = JSON.parse(readFileSync(path.join(FIXTURES, 'tissue-opencv.json'), 'utf8')) as {
  level: number;
  width: number;
  height: number;
  saturation: { sha256: string; sum: number };
  blurred: { sha256: string; sum: number };
  closed: { sha256: string; sum: number };
  otsuThreshold: number;
  closedOtsu: { sha256: string; sum: number };
};
const digest = (a: Uint8Array): { sha256: string; sum: number } => ({ sha256: createHash('sha256').update(a).digest('hex'), sum: a.reduce((s, v) => s + v, 0) });

describe('slides/tissue', () => {
  it('computes saturation, median blur, threshold (fixed and Otsu) and closing exactly as OpenCV', async () => {
    const reader = await TiffSlideReader.open(path.join(FIXTURES, 'synthetic.svs'));
    const image = await reader.readRegion({ x: 0, y: 0, level: expected.level, width: expected.width, height: expected.height });
    expect(digest(saturation(image))).toEqual(expected.saturation);
    const fixed = tissueBinary(image, CLAM_TISSUE_DEFAULTS);
    expect(digest(fixed.blurred)).toEqual(expected.blurred);
    expect(digest(fixed.closed)).toEqual(expected.closed);
    const otsu = tissueBinary(image, { ...CLAM_TISSUE_DEFAULTS, otsu: true });
    expect(otsu.threshold).toBe(expected.otsuThreshold);
    expect(digest(otsu.closed)).toEqual(expected.closedOtsu);
  });

  it('traces exact rings, keeps holes above the area limit and drops small pieces', () => {
    // 12 × 9 white image: a 6 × 5 magenta block at (2, 1) with a 2 × 2 hole at (4, 2) and a 1-pixel hole at
    // (6, 4); a lone magenta pixel at (10, 7).
    const width = 12;
    const height = 9;
    const data = new Uint8Array(width * height * 3).fill(255);
    const paint = (x: number, y: number, rgb: [number, number, number]): void => data.set(rgb, (y * width + x) * 3);
    for (let y = 1; y < 6; y += 1) for (let x = 2; x < 8; x += 1) paint(x, y, [200, 40, 160]);
    for (const [x, y] of [[4, 2], [5, 2], [4, 3], [5, 3], [6, 4]] as const) paint(x, y, [255, 255, 255]);
    paint(10, 7, [200, 40, 160]);
    const image: RgbImage = { width, height, data };
    // Area unit = (referencePatchSize / downsample)² = 1 pixel: pieces need > 2 pixels, holes > 1.
    const result = segmentTissue(image, 0, 1, { ...CLAM_TISSUE_DEFAULTS, medianKernel: 1, closeKernel: 0, referencePatchSize: 1, minTissueArea: 2, minHoleArea: 1 });
    expect(result.geojson.features).toHaveLength(1);
    const feature = result.geojson.features[0];
    expect(feature?.properties).toEqual({ objectType: 'annotation', classification: { name: 'Tissue' }, areaPixels: 30 - 5, holes: 1 });
    expect(feature?.geometry.coordinates).toEqual([
      [[2, 1], [8, 1], [8, 6], [2, 6], [2, 1]],
      [[4, 2], [4, 4], [6, 4], [6, 2], [4, 2]],
    ]);
    // The mask: the block minus its kept hole; the 1-pixel hole is filled and the lone pixel dropped.
    const at = (x: number, y: number): number => result.mask[y * width + x] as number;
    expect([at(2, 1), at(4, 2), at(5, 3), at(6, 4), at(10, 7), at(0, 0)]).toEqual([255, 0, 0, 255, 0, 0]);
    expect(result.mask.reduce((s, v) => s + (v ? 1 : 0), 0)).toBe(30 - 4);
  });

  it('scales rings to level-0 coordinates and joins diagonal neighbours into one piece', () => {
    const data = new Uint8Array(4 * 4 * 3).fill(255);
    for (const [x, y] of [[1, 1], [2, 2]] as const) data.set([200, 40, 160], (y * 4 + x) * 3);
    const result = segmentTissue({ width: 4, height: 4, data }, 2, 8, { ...CLAM_TISSUE_DEFAULTS, medianKernel: 1, closeKernel: 0, referencePatchSize: 8, minTissueArea: 1, minHoleArea: 1 });
    expect(result.geojson.features.map((f) => f.geometry.coordinates)).toEqual([[[[8, 8], [16, 8], [16, 16], [24, 16], [24, 24], [16, 24], [16, 16], [8, 16], [8, 8]]]]);
  });

  it('finds the tissue of a synthetic slide, including the faint fragment, without pen or dust', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'milkit-tissue-'));
    await writeSyntheticSlides({ outDir: dir, slides: 1, size: 4096, seed: 5, tumourFraction: 1, format: 'tiff', quality: 80, tileSize: 256, mpp: 0.5, magnification: 20, maskDownsample: 16, logger: silentLogger });
    const reader = await TiffSlideReader.open(path.join(dir, 'synthetic-000.tiff'));
    // Small slide: areas in 128-px patches (CLAM's a_t = 100 at 512 px would drop all of it).
    const result = await detectTissue(reader, { ...CLAM_TISSUE_DEFAULTS, downsample: 16, referencePatchSize: 128, minTissueArea: 1, minHoleArea: 0.5 });
    expect(result.downsample).toBe(16);
    const truth = await sharp(path.join(dir, 'masks', 'synthetic-000_tissue.png')).toColourspace('b-w').raw().toBuffer();
    expect(truth.length).toBe(result.mask.length);
    let both = 0;
    let either = 0;
    let truthPixels = 0;
    for (let i = 0; i < truth.length; i += 1) {
      if (truth[i]) truthPixels += 1;
      if (truth[i] && result.mask[i]) both += 1;
      if (truth[i] || result.mask[i]) either += 1;
    }
    // Nothing of the tissue is missed; the detection is a little wider than the truth because the low threshold
    // (saturation > 8) catches edge pixels where the pyramid averaged tissue with background.
    expect(both / truthPixels).toBeGreaterThan(0.97);
    expect(both / either).toBeGreaterThan(0.85);
    // The main piece(s) and the faint fragment; the pen stroke and dust are gone (median blur, area filter).
    const areas = result.geojson.features.map((f) => f.properties.areaPixels).sort((a, b) => b - a);
    expect(areas.length === 2 || areas.length === 3).toBe(true);
    expect((areas[areas.length - 1] as number) / (areas[0] as number)).toBeLessThan(0.15);
  }, 60_000);

  it('milkit data tissue writes GeoJSON and a preview through the slide-reader and tissue-detector plugins', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'milkit-tissue-cli-'));
    const stdout: string[] = [];
    const stderr: string[] = [];
    const io: CliIo = { out: (t) => stdout.push(t), err: (t) => stderr.push(t), stdoutIsTTY: false };
    const args = ['data', 'tissue', path.join(FIXTURES, 'synthetic.svs'), '--out', 'out', '--reader', 'tiff', '--set', 'downsample=4', '--set', 'referencePatchSize=128', '--set', 'minTissueArea=0.5'];
    const code = await main(args, { manifest: builtinManifest(), io, cwd: dir, env: {} });
    expect(stderr.join('\n')).toBe('');
    expect(code).toBe(0);
    expect(stdout).toEqual(['synthetic: 1 tissue piece(s) at level 2 (downsample 4.00, saturation threshold 8)']);
    const geojson = JSON.parse(readFileSync(path.join(dir, 'out', 'synthetic.geojson'), 'utf8')) as { features: Array<{ geometry: { coordinates: number[][][] } }> };
    const ring = geojson.features[0]?.geometry.coordinates[0] ?? [];
    expect(ring[0]).toEqual(ring[ring.length - 1]);
    expect(ring.every(([x, y]) => x !== undefined && y !== undefined && x % 4 === 0 && y % 4 === 0 && x <= 1280 && y <= 960)).toBe(true);
    const preview = await sharp(path.join(dir, 'out', 'synthetic_tissue.png')).metadata();
    expect([preview.width, preview.height]).toEqual([320, 240]);
    const bad = await main(['data', 'tissue', path.join(FIXTURES, 'synthetic.svs'), '--out', 'out', '--reader', 'tiff', '--set', 'medianKernel=4'], { manifest: builtinManifest(), io, cwd: dir, env: {} });
    expect(bad).toBe(2);
    expect(stderr.join('\n')).toContain('medianKernel');
  });
});
