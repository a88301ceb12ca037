// Heatmap outputs: percentile ranks as scipy's percentileofscore(kind='rank') defines them (CLAM's conversion),
// the per-pixel mean of overlapping patches, opacity over the thumbnail, the top-k order, the scores table and a
// GeoJSON FeatureCollection with one closed level-0 square per patch.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import {
  coolwarm, DEFAULT_HEATMAP_OPTIONS, instanceScoresCsv, instanceScoresGeoJson, renderHeatmap, topK, toPercentiles, writeHeatmapPng, writeMontagePng,
} from '../../../src/core/eval/heatmap.js';

const dir = mkdtempSync(path.join(tmpdir(), 'milkit-heatmap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('toPercentiles', () => {
  it("matches scipy's percentileofscore(kind='rank') / 100, ties sharing their mean rank", () => {
    // scipy: [0.1, 0.5, 0.5, 0.9] → 25, 62.5, 62.5, 100 (computed by hand from its definition (L + R + [L<R]) · 50/N).
    expect(Array.from(toPercentiles([0.5, 0.1, 0.9, 0.5]))).toEqual([0.625, 0.25, 1, 0.625]);
    expect(Array.from(toPercentiles([3, 1, 2]))).toEqual([1, 1 / 3, 2 / 3].map((v) => Math.fround(v)));
    expect(Array.from(toPercentiles([7, 7]))).toEqual([0.75, 0.75]); // ranks 1 and 2 of 2, mean 1.5 / 2
  });
});

describe('renderHeatmap', () => {
  const options = { ...DEFAULT_HEATMAP_OPTIONS, percentiles: false, alpha: 1, blur: 0 };

  it('colours each patch by its score and leaves uncovered pixels as the canvas', async () => {
    // Two 10-px patches side by side on a 30 × 10 extent; scores min-max scaled to 0 and 1.
    const coords = Float32Array.from([0, 0, 10, 0]);
    const { data, width, height } = await renderHeatmap({ coords, scores: Float32Array.from([0.2, 0.8]), patchSize: 10 }, { width0: 30, height0: 10 }, options);
    expect([width, height]).toEqual([30, 10]);
    const pixel = (x: number, y: number): number[] => Array.from(data.subarray(3 * (y * width + x), 3 * (y * width + x) + 3));
    expect(pixel(5, 5)).toEqual([...coolwarm(0)]);
    expect(pixel(15, 5)).toEqual([...coolwarm(1)]);
    expect(pixel(25, 5)).toEqual([255, 255, 255]); // no patch: the white canvas
  });

  it('averages overlapping patches per pixel (CLAM overlap) and blends with the opacity', async () => {
    // Patches at x = 0 and x = 5, side 10: pixels 5..9 are covered by both, so show the mean score 0.5.
    const coords = Float32Array.from([0, 0, 5, 0]);
    const { data, width } = await renderHeatmap({ coords, scores: Float32Array.from([0, 1]), patchSize: 10 }, {}, options);
    const pixel = (x: number): number[] => Array.from(data.subarray(3 * x, 3 * x + 3));
    expect(width).toBe(15);
    expect(pixel(2)).toEqual([...coolwarm(0)]);
    expect(pixel(7)).toEqual([...coolwarm(0.5)]);
    expect(pixel(12)).toEqual([...coolwarm(1)]);
    // Half opacity over white: (255 + colour) / 2.
    const half = await renderHeatmap({ coords, scores: Float32Array.from([0, 1]), patchSize: 10 }, {}, { ...options, alpha: 0.5 });
    expect(Array.from(half.data.subarray(0, 3))).toEqual(coolwarm(0).map((c) => Math.round((255 + c) / 2)));
  });

  it('draws over a thumbnail scaled to the slide extent, and blur softens the layer edge', async () => {
    const thumbnail = await sharp({ create: { width: 8, height: 4, channels: 3, background: { r: 10, g: 20, b: 30 } } }).png().toBuffer();
    const coords = Float32Array.from([0, 0]);
    const sharpEdge = await renderHeatmap({ coords, scores: Float32Array.from([1]), patchSize: 20 }, { width0: 80, height0: 40, thumbnail }, options);
    expect(Array.from(sharpEdge.data.subarray(3 * 60, 3 * 60 + 3))).toEqual([10, 20, 30]); // outside the patch: the thumbnail
    const blurred = await renderHeatmap({ coords, scores: Float32Array.from([1]), patchSize: 20 }, { width0: 80, height0: 40, thumbnail }, { ...options, blur: 3 });
    // Just outside the patch the blurred layer leaks some colour onto the thumbnail.
    expect(Array.from(blurred.data.subarray(3 * 21, 3 * 21 + 3))).not.toEqual([10, 20, 30]);
    const file = path.join(dir, 'h.png');
    await writeHeatmapPng(file, { coords, scores: Float32Array.from([1]), patchSize: 20 }, { width0: 80, height0: 40, thumbnail });
    expect((await sharp(file).metadata()).width).toBe(80);
  });
});

describe('tables, GeoJSON and montage', () => {
  const coords = Float32Array.from([0, 0, 256, 0, 0, 256]);
  const rows = [Float32Array.from([0.1, 0.7, 0.2]), Float32Array.from([0.9, 0.3, 0.8])];

  it('topK orders by score, ties by index', () => {
    expect(topK([0.2, 0.9, 0.2, 0.5], 3)).toEqual([1, 3, 0]);
  });

  it('the CSV has level-0 coordinates, the drawn branch as score, and a column per class for class-wise attention', () => {
    const text = instanceScoresCsv(coords, rows, ['normal', 'tumour'], 256, 1).trim().split('\n');
    expect(text[0]).toBe('patch,x,y,patch_size,score,score_normal,score_tumour');
    expect(text[2]).toBe(`1,256,0,256,${Math.fround(0.3)},${Math.fround(0.7)},${Math.fround(0.3)}`);
    expect(text).toHaveLength(4);
  });

  it('GeoJSON: a FeatureCollection with one closed level-0 square per patch and the score as a property', () => {
    const geo = instanceScoresGeoJson('s1', coords, rows, ['normal', 'tumour'], 256, 1);
    expect(geo.type).toBe('FeatureCollection');
    expect(geo.features).toHaveLength(3);
    const second = geo.features[1];
    expect(second?.geometry).toEqual({ type: 'Polygon', coordinates: [[[256, 0], [512, 0], [512, 256], [256, 256], [256, 0]]] });
    expect(second?.properties.score).toBe(Math.fround(0.3));
    expect(second?.properties.score_normal).toBe(Math.fround(0.7));
    expect((second?.properties.measurements as Record<string, number>).score).toBe(Math.fround(0.3));
    expect(JSON.parse(JSON.stringify(geo))).toEqual(geo);
  });

  it('the montage places k tiles in rank order on a grid', async () => {
    const red = { rgb: new Uint8Array(4 * 4 * 3).fill(0).map((_, i) => (i % 3 === 0 ? 255 : 0)), size: 4 };
    const blue = { rgb: new Uint8Array(4 * 4 * 3).fill(0).map((_, i) => (i % 3 === 2 ? 255 : 0)), size: 4 };
    const file = path.join(dir, 'm.png');
    await writeMontagePng(file, [red, blue, red], { tile: 10, columns: 2 });
    const { data, info } = await sharp(readFileSync(file)).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([2 * 12 + 2, 2 * 12 + 2]);
    const at = (x: number, y: number): number[] => Array.from(data.subarray(info.channels * (y * info.width + x), info.channels * (y * info.width + x) + 3));
    expect(at(5, 5)).toEqual([255, 0, 0]);
    expect(at(17, 5)).toEqual([0, 0, 255]);
    expect(at(5, 17)).toEqual([255, 0, 0]);
    expect(at(17, 17)).toEqual([255, 255, 255]); // no fourth tile
  });
});
