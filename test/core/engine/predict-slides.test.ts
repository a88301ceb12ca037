// `milkit predict --heatmaps --slides`: with the slide at hand the heatmap covers the whole scan over its own
// thumbnail (pixels without patches show the slide), and the top-k montage is cut from the slide's level-0 patches.
// A synthetic pyramidal TIFF (src/core/slides/synthetic-slides.ts) stands in for a scan.
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { TiffSlideReader } from '../../../src/core/slides/tiff-reader.js';
import { readSlideThumbnail } from '../../../src/core/slides/slide-images.js';
import { writeSyntheticSlides } from '../../../src/core/slides/synthetic-slides.js';
import { runCli } from '../../e2e/helpers.js';
import { writeH5Cohort } from '../../helpers/h5-cohort.js';

let cwd: string;
let runDir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  cwd = await mkdtemp(path.join(tmpdir(), 'milkit-predict-slides-'));
  await writeH5Cohort(path.join(cwd, 'train'), 1, undefined, 10);
  writeFileSync(path.join(cwd, 'abmil.yaml'), [
    'name: abmil-h5', 'seed: 0', 'data:', '  dataset: { name: features-h5, slideTable: train/slides.csv, featuresDir: train }',
    'model:', '  aggregator: { name: abmil, projectDim: 8, attnDim: 4 }', '  classifier: { name: linear }', '  losses: { ce: { name: cross-entropy } }',
    'train: { epochs: 1, optimizer: { name: adam, lr: 0.01 } }', 'split: { mode: kfold, folds: 2, valFraction: 0.2 }',
    'runtime: { backend: cpu }', 'tracking: { enabled: false }', 'eval: { metrics: [auc], bootstrap: 0 }',
  ].join('\n'));
  const run = await runCli(['run', path.join(cwd, 'abmil.yaml'), '--folds', '0'], cwd);
  expect(run.code, run.err).toBe(0);
  const base = path.join(cwd, 'outputs', 'abmil-h5');
  runDir = path.join(base, readdirSync(base)[0] as string);
  await writeSyntheticSlides({
    outDir: path.join(cwd, 'slides'), slides: 1, size: 1024, seed: 3, tumourFraction: 1, format: 'tiff', quality: 90, tileSize: 256, mpp: 0.5,
    magnification: 20, maskDownsample: 16, logger: silentLogger,
  });
  // Features for the slide's left half only: patches of 256 px at x ∈ {0, 256}, y ∈ {0, 256, 512}.
  const coords = Float32Array.from([0, 0, 256, 0, 0, 256, 256, 256, 0, 512, 256, 512]);
  await writeH5Cohort(path.join(cwd, 'cohort'), 2, undefined, 1, { ids: ['synthetic-000'], coords });
}, 300_000);
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

describe('predict heatmaps with the slide', () => {
  it('draws over the whole scan and cuts the montage from the slide', async () => {
    const out = path.join(cwd, 'predict');
    const result = await runCli(['predict', runDir, '--data', path.join(cwd, 'cohort'), '--bootstrap', '0', '--heatmaps', '--slides', path.join(cwd, 'slides'),
      '--slide-reader', 'tiff', '--top-k', '3', '-o', out], cwd);
    expect(result.code, result.err).toBe(0);
    const heatmap = await sharp(path.join(out, 'heatmaps', 'synthetic-000.heatmap.png')).raw().toBuffer({ resolveWithObject: true });
    expect([heatmap.info.width, heatmap.info.height]).toEqual([1024, 768]); // the scan's extent, not the patches' (512 × 768)

    const reader = await TiffSlideReader.open(path.join(cwd, 'slides', 'synthetic-000.tiff'));
    let thumbnail;
    try {
      thumbnail = await readSlideThumbnail(reader, 1024);
    } finally {
      await reader.close();
    }
    expect(thumbnail?.width).toBe(1024);
    const at = (data: Uint8Array, width: number, channels: number, x: number, y: number): number[] => Array.from(data.subarray(channels * (y * width + x), channels * (y * width + x) + 3));
    // Right half (no patches): exactly the slide. Left half: heat colours blended over it.
    for (const [x, y] of [[700, 300], [900, 600]] as const) {
      expect(at(heatmap.data, 1024, heatmap.info.channels, x, y)).toEqual(at(thumbnail?.data as Uint8Array, 1024, 3, x, y));
    }
    expect(at(heatmap.data, 1024, heatmap.info.channels, 100, 100)).not.toEqual(at(thumbnail?.data as Uint8Array, 1024, 3, 100, 100));

    const montage = await sharp(path.join(out, 'heatmaps', 'synthetic-000.topk.png')).metadata();
    expect([montage.width, montage.height]).toEqual([3 * 130 + 2, 130 + 2]); // three 128-px tiles from the slide
  }, 300_000);
});
