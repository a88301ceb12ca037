// Instance-level AUC of ABMIL's attention against the planted tumour mask on synthetic slides, through `milkit infer
// --heatmaps`: the fixture run (test/fixtures/infer-abmil-run, ABMIL trained by milkit on color-texture features of
// 64-px patches of other synthetic slides) scores new slides; a patch is tumour when more than half of its
// ground-truth mask pixels are (masks/<id>_tumour.png). The scores of every patch of the positive slides, pooled,
// must rank tumour patches above the others with AUC ≥ 0.9.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { writeSyntheticSlides } from '../../../src/core/slides/synthetic-slides.js';
import { REPO, runCli, tempDir } from '../../e2e/helpers.js';
import { plantedTumourAuc } from '../../helpers/instance-auc.js';

const FIXTURE = path.join(REPO, 'test/fixtures/infer-abmil-run');
const MASK_DOWNSAMPLE = 16;

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
    const auc = await plantedTumourAuc({ slidesDir: path.join(cwd, 'slides'), heatmapsDir: path.join(out, 'heatmaps'), slideIds: ['synthetic-000', 'synthetic-001', 'synthetic-002'], maskDownsample: MASK_DOWNSAMPLE, scoreColumn: 'score' });
    expect(auc).toBeGreaterThanOrEqual(0.9);
  }, 600_000);
});
