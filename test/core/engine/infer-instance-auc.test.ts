// Instance-level AUC of ABMIL's attention against the planted tumour mask on synthetic slides, through `milkit infer
// --heatmaps`: the fixture run (test/fixtures/infer-abmil-run, ABMIL trained by milkit on color-texture features of
// 64-px patches of other synthetic slides) scores new slides; a patch is tumour when more than half of its
// ground-truth mask pixels are (masks/<id>_tumour.png). The scores of every patch of the positive slides, pooled,
// must rank tumour patches above the others with AUC ≥ 0.9.
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { writeSyntheticSlides } from '../../../src/core/slides/synthetic-slides.js';
import { REPO, runCli, tempDir } from '../../e2e/helpers.js';

const FIXTURE = path.join(REPO, 'test/fixtures/infer-abmil-run');
const MASK_DOWNSAMPLE = 16;

/** Mann–Whitney AUC (ties count one half). */
function auc(labels: readonly number[], scores: readonly number[]): number {
  let pairs = 0;
  let wins = 0;
  for (let i = 0; i < labels.length; i += 1) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < labels.length; j += 1) {
      if (labels[j] !== 0) continue;
      pairs += 1;
      const a = scores[i] as number;
      const b = scores[j] as number;
      wins += a > b ? 1 : a === b ? 0.5 : 0;
    }
  }
  return wins / pairs;
}

let cwd: string;
beforeAll(async () => {
  cwd = await tempDir('milkit-infer-iauc-');
  await writeSyntheticSlides({
    outDir: path.join(cwd, 'slides'), slides: 3, size: 2048, seed: 9, tumourFraction: 1, format: 'tiff', quality: 90, tileSize: 256, mpp: 0.5,
    magnification: 20, maskDownsample: MASK_DOWNSAMPLE, logger: silentLogger,
  });
}, 300_000);
afterAll(async () => {
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

describe('instance AUC on synthetic slides', () => {
  it('abmil: attention finds the planted tumour patches (pooled instance AUC ≥ 0.9)', async () => {
    const out = path.join(cwd, 'infer');
    const cli = await runCli(['infer', FIXTURE, '--slides', path.join(cwd, 'slides', 'slides.csv'), '--mode', 'all', '--reader', 'tiff', '--detector-set', 'downsample=16',
      '--detector-set', 'minTissueArea=0.5', '--base-magnification', '20', '--patch-size', '64', '--extractor', 'color-texture', '--bootstrap', '0', '--heatmaps', '--no-track', '-o', out], cwd);
    expect(cli.code, cli.err).toBe(0);
    const labels: number[] = [];
    const scores: number[] = [];
    for (const slideId of ['synthetic-000', 'synthetic-001', 'synthetic-002']) {
      const mask = await sharp(path.join(cwd, 'slides', 'masks', `${slideId}_tumour.png`)).greyscale().raw().toBuffer({ resolveWithObject: true });
      const rows = parseCsv(await readFile(path.join(out, 'heatmaps', `${slideId}.scores.csv`), 'utf8'), { columns: true }) as Array<Record<string, string>>;
      expect(rows.length).toBeGreaterThan(50);
      for (const row of rows) {
        const x = Number(row.x) / MASK_DOWNSAMPLE;
        const y = Number(row.y) / MASK_DOWNSAMPLE;
        const side = Number(row.patch_size) / MASK_DOWNSAMPLE;
        let tumour = 0;
        for (let dy = 0; dy < side; dy += 1) for (let dx = 0; dx < side; dx += 1) tumour += (mask.data[(y + dy) * mask.info.width + x + dx] as number) > 127 ? 1 : 0;
        labels.push(tumour * 2 > side * side ? 1 : 0);
        scores.push(Number(row.score));
      }
    }
    const positives = labels.filter((l) => l === 1).length;
    expect(positives).toBeGreaterThan(5);
    expect(positives).toBeLessThan(labels.length);
    expect(auc(labels, scores)).toBeGreaterThanOrEqual(0.9);
  }, 600_000);
});
