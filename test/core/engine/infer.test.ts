// `milkit infer` on synthetic slides with a small trained DMIN + LIPN run (test/fixtures/infer-dmin-run: one fold,
// 49-d color-texture features of 64-px patches at 20×, trained through the stages dmin → lipn; its README says how):
// - a counting slide reader shows that mode screened reads at 20× (level 0 here) exactly the patches LIPN keeps,
//   computed here from the slide's thumbnails and the run's own pre-screener, and mode all reads every tissue patch;
// - both modes give the probabilities predict's evaluation gives on the same slides' extracted feature files;
// - a run without a trained pre-screener is refused in mode screened before any slide is opened (exit code 2).
import { copyFile, cp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors.js';
import { silentLogger } from '../../../src/core/logger.js';
import { runInfer, type InferOptions } from '../../../src/core/engine/infer.js';
import { loadTrainedRun, predictSlides } from '../../../src/core/engine/predict.js';
import { fullPass, prescreen } from '../../../src/core/engine/screening.js';
import { buildViews } from '../../../src/core/data/bags.js';
import { patchGeometry } from '../../../src/core/extract/pipeline.js';
import { tissuePatchGrid } from '../../../src/core/slides/patch-grid.js';
import { readPatchThumbnails } from '../../../src/core/slides/patch-thumbnails.js';
import { TiffSlideReader } from '../../../src/core/slides/tiff-reader.js';
import { CLAM_TISSUE_DEFAULTS, detectTissue } from '../../../src/core/slides/tissue.js';
import { writeSyntheticSlides } from '../../../src/core/slides/synthetic-slides.js';
import { REPO, runCli, tempDir } from '../../e2e/helpers.js';
import { builtinRegistry } from '../../contracts/builtins.js';
import { countingReader, type CountingReader } from '../../helpers/counting-reader.js';

const FIXTURE = path.join(REPO, 'test/fixtures/infer-dmin-run');
const DETECTOR = { name: 'clam', downsample: 16, minTissueArea: 0.5 };
const TISSUE = { ...CLAM_TISSUE_DEFAULTS, downsample: 16, minTissueArea: 0.5 };
const PATCHING = { patchSize: 64, magnification: 20, baseMagnification: 20 };
const SLIDES = 2;

let cwd: string;
let runDir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  cwd = await tempDir('milkit-infer-');
  runDir = path.join(cwd, 'run');
  await cp(FIXTURE, runDir, { recursive: true });
  await writeSyntheticSlides({
    outDir: path.join(cwd, 'slides'), slides: SLIDES, size: 1536, seed: 5, tumourFraction: 0.5, format: 'tiff', quality: 90, tileSize: 256, mpp: 0.5,
    magnification: 20, maskDownsample: 16, logger: silentLogger,
  });
}, 300_000);
afterAll(async () => {
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

function options(mode: 'all' | 'screened', readers: Map<string, CountingReader>, out: string): InferOptions {
  return {
    runDir, slides: [path.join(cwd, 'slides', 'slides.csv')], mode, reader: { name: 'tiff' }, detector: DETECTOR, extractor: { name: 'color-texture' }, patching: PATCHING,
    threshold: { rule: 'fixed', value: 0.5 }, bootstrap: 0, outDir: path.join(cwd, out), track: false, registry: builtinRegistry(), logger: silentLogger, cwd, env: {},
    wrapReader: (reader) => {
      const counting = countingReader(reader);
      readers.set(path.basename(reader.file).replace(/\.[^.]+$/, ''), counting);
      return counting;
    },
  };
}

/** Level-0 corners (as "x,y") of the 64-px patch reads at level 0. */
function level0Patches(reader: CountingReader): string[] {
  return reader.requests.filter((r) => r.level === 0 && r.width === 64 && r.height === 64).map((r) => `${r.x},${r.y}`).sort();
}

/** The slide's tissue grid and the patches the run's LIPN keeps, computed from the slide directly. */
async function expectedPatches(slideId: string): Promise<{ all: string[]; kept: string[] }> {
  const reader = await TiffSlideReader.open(path.join(cwd, 'slides', `${slideId}.tiff`));
  const run = await loadTrainedRun(runDir, { registry: builtinRegistry(), cwd, env: {} });
  try {
    const geometry = patchGeometry(reader, { ...PATCHING, thumbs: true });
    const tissue = await detectTissue(reader, TISSUE);
    const base = reader.levels[0] as { width: number; height: number };
    const coords = tissuePatchGrid(tissue, { patchSize: geometry.patchSizeLevel0, step: geometry.patchSizeLevel0, width: base.width, height: base.height });
    const n = coords.length / 2;
    const thumbs = await readPatchThumbnails(reader, coords, { patchSize: geometry.patchSizeLevel0, side: 16 });
    const fold = run.folds[0];
    if (!fold) throw new Error('fixture run has no fold');
    const decision = prescreen(fold.model, slideId, thumbs, n, { training: false, rng: fold.testRng() });
    const at = (i: number): string => `${coords[2 * i]},${coords[2 * i + 1]}`;
    return { all: Array.from({ length: n }, (_, i) => at(i)).sort(), kept: decision.kept.map(at).sort() };
  } finally {
    run.dispose();
    await reader.close();
  }
}

describe('milkit infer on slides', () => {
  it('screened reads at 20× exactly the patches LIPN keeps; all reads every tissue patch', async () => {
    const screenedReaders = new Map<string, CountingReader>();
    const screened = await runInfer(options('screened', screenedReaders, 'screened'));
    const allReaders = new Map<string, CountingReader>();
    const all = await runInfer(options('all', allReaders, 'all'));
    expect(screened.rows).toHaveLength(SLIDES);
    expect(all.rows).toHaveLength(SLIDES);
    let keptTotal = 0;
    let patchTotal = 0;
    for (const timing of screened.timing) {
      const expected = await expectedPatches(timing.slideId);
      expect(expected.all.length).toBeGreaterThan(50);
      // Nothing kept would make the check vacuous; everything kept would too.
      expect(expected.kept.length).toBeGreaterThan(0);
      expect(expected.kept.length).toBeLessThan(expected.all.length);
      expect(level0Patches(screenedReaders.get(timing.slideId) as CountingReader)).toEqual(expected.kept);
      expect(level0Patches(allReaders.get(timing.slideId) as CountingReader)).toEqual(expected.all);
      expect(timing.read).toBe(expected.kept.length);
      expect(timing.patches).toBe(expected.all.length);
      keptTotal += expected.kept.length;
      patchTotal += expected.all.length;
    }
    expect(screened.keptFraction).toBeLessThan(1);
    expect(all.keptFraction).toBe(1);
    expect(keptTotal).toBeLessThan(patchTotal);
    // Mode all never runs the pre-screener; every stage of the table is written.
    expect(all.meanTiming.lipn).toBeLessThan(screened.meanTiming.lipn);
    const csv = await readFile(path.join(cwd, 'screened', 'timing.csv'), 'utf8');
    expect(csv.split('\n')[0]).toBe('slide_id,tissue_s,lipn_s,crop_s,fea_s,dmin_s,total_s,patches,patches_read,kept_fraction');
    expect(csv.trim().split('\n')).toHaveLength(SLIDES + 2);
    expect(screened.table).toMatch(/\| slide \| Tissue \| LIPN \| Crop \| Fea \| DMIN \| Total \(s\) \| patches read \|/);
    const predictions = await readFile(path.join(cwd, 'screened', 'predictions.csv'), 'utf8');
    expect(predictions.split('\n')[0]).toBe('slide_id,case_id,label,label_name,p_normal_tissue,p_tumor_tissue,prediction,prediction_name,fold');
    // The same slides through `milkit extract` and predict's evaluation (the screened pipeline on the feature files'
    // thumbnails, DMIN alone on every row): infer gives the same probabilities in both modes.
    const extract = await runCli(['extract', path.join(cwd, 'slides', 'slides.csv'), '--out', path.join(cwd, 'feats'), '--reader', 'tiff', '--detector-set', 'downsample=16',
      '--detector-set', 'minTissueArea=0.5', '--patch-size', '64', '--base-magnification', '20', '--extractor', 'color-texture'], cwd);
    expect(extract.code, extract.err).toBe(0);
    await copyFile(path.join(cwd, 'slides', 'slides.csv'), path.join(cwd, 'feats', 'h5_files', 'slides.csv'));
    const registry = builtinRegistry();
    const trained = await loadTrainedRun(runDir, { registry, cwd, env: {} });
    try {
      const dataset = await registry.resolve('dataset', { name: 'features-dir', slideTable: 'slides.csv', featuresDir: '.' }, { key: 'test' });
      const source = await registry.create(dataset, { seed: 0, baseDir: path.join(cwd, 'feats', 'h5_files'), cacheBytes: 0, labelMap: { normal_tissue: 0, tumor_tissue: 1 }, logger: silentLogger });
      const [screenedFold] = await predictSlides(trained, { source, slidesOf: () => source.slides, metrics: [] });
      const fold = trained.folds[0];
      if (!fold || !screenedFold) throw new Error('fixture run has no fold');
      for (const row of screened.rows) {
        const expected = screenedFold.predictions.find((p) => p.slideId === row.slideId);
        expect(row.probs[1]).toBeCloseTo(expected?.probs[1] as number, 5);
      }
      for (const row of all.rows) {
        const data = await source.load(row.slideId);
        const pass = fullPass(fold.model, data, { io: { training: false, rng: fold.testRng() }, views: [], makeViews: buildViews });
        const probs = tf.tidy(() => tf.softmax(pass.output.logits).dataSync());
        tf.dispose(pass.output as unknown as tf.TensorContainer);
        expect(row.probs[1]).toBeCloseTo(probs[1] as number, 5);
      }
      await source.close?.();
    } finally {
      trained.dispose();
    }
  }, 600_000);

  it('refuses --mode screened for a run without a trained pre-screener, before opening any slide (exit 2)', async () => {
    // The same run with its LIPN stage removed: the pre-screener exists but no stage trained it.
    const plain = path.join(cwd, 'run-no-lipn');
    await cp(runDir, plain, { recursive: true });
    const config = await readFile(path.join(plain, 'config.resolved.yaml'), 'utf8');
    const cut = config.indexOf('  - name: lipn');
    expect(cut).toBeGreaterThan(0);
    const rest = config.slice(cut).split('\n');
    const end = rest.findIndex((line, i) => i > 0 && /^\S/.test(line));
    await writeFile(path.join(plain, 'config.resolved.yaml'), config.slice(0, cut) + rest.slice(end).join('\n'));
    await rm(path.join(plain, 'fold-0', 'stage-lipn'), { recursive: true });

    const readers = new Map<string, CountingReader>();
    await expect(runInfer({ ...options('screened', readers, 'refused'), runDir: plain })).rejects.toThrow(ConfigError);
    expect(readers.size).toBe(0);

    const cli = await runCli(['infer', plain, '--slides', path.join(cwd, 'slides'), '--mode', 'screened', '--reader', 'tiff', '--extractor', 'color-texture', '--no-track'], cwd);
    expect(cli.code).toBe(2);
    expect(cli.err).toContain('no trained pre-screener');
    expect(cli.err).toContain('--mode all');
    expect(cli.err).not.toMatch(/\n\s+at /); // no stack trace without --debug
  }, 300_000);
});
