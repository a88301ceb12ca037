// `milkit predict`: tiny runs train through the CLI, then predict reproduces the run's own test predictions and
// metrics exactly (--split test), scores a second generated cohort without retraining, refuses a 768-d cohort
// against a 1024-d model before any compute (naming both widths), writes GeoJSON with one feature per patch, and
// the instance scores it returns find the planted tumour instances (ABMIL, DMIN).
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTrainedRun, predictSlides, resolveRunDir } from '../../../src/core/engine/predict.js';
import { openCohort } from '../../../src/core/engine/predict-cohort.js';
import { caseBootstrap, DEFAULT_HEATMAP_OPTIONS, predictClass, runPredict, youdenThreshold } from '../../../src/core/engine/predict-run.js';
import type { Tracker } from '../../../src/registry/contracts/tracker.js';
import { binaryAuc } from '../../../src/core/eval/classification.js';
import { silentLogger } from '../../../src/core/logger.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { REPO, runCli } from '../../e2e/helpers.js';
import { builtinRegistry } from '../../helpers/registry.js';

const QUICKSTART = path.join(REPO, 'experiments/quickstart.yaml');
/** A small cohort the attention learns within a few epochs (strong planted signal, lesions of 10–30 %). */
const SMALL = [
  'runtime.backend=cpu', 'data.dataset.slides=24', 'data.dataset.instances=[20,30]', 'data.dataset.featureDim=12', 'data.dataset.signalDim=2',
  'data.dataset.signalStrength=8', 'data.dataset.tumorFraction=[0.1,0.3]', 'split.folds=2', 'tracking.enabled=false', 'eval.bootstrap=0', '--folds', '0',
];
const TINY_DMIN = [
  'name: tiny-dmin', 'seed: 0', 'data:', '  dataset: { name: synthetic-camelyon }', 'model:',
  '  aggregator: { name: dmin, hiddenDim: 16, attnDim: 6, kSample: 2 }', '  classifier: { name: cka, degree: 3 }', '  losses:',
  '    ce: { name: cross-entropy, weight: 0.7 }', '    instance: { name: clam-instance, weight: 0.3 }', '    mse: { name: embedding-mse, weight: 0.5 }',
  '    kl: { name: logit-kl, weight: 0.5 }', '    rate: { name: keep-rate, target: 0.6, weight: 2 }',
  'train:', '  optimizer: { name: adam, lr: 0.005, weightDecay: 0.00001 }', 'split: { mode: kfold, folds: 2, valFraction: 0.2 }', 'eval: { metrics: [auc, accuracy] }',
].join('\n');

let cwd: string;
const runs: Record<string, string> = {};

function onlyRunDir(name: string): string {
  const base = path.join(cwd, 'outputs', name);
  const hashes = readdirSync(base);
  return path.join(base, hashes[0] as string);
}

function csvRows(file: string): Array<Record<string, string>> {
  const [header, ...lines] = readFileSync(file, 'utf8').trim().split('\n');
  const names = (header as string).split(',');
  return lines.map((line) => Object.fromEntries(line.split(',').map((v, i) => [names[i] as string, v])));
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  cwd = await mkdtemp(path.join(tmpdir(), 'milkit-predict-'));
  writeFileSync(path.join(cwd, 'tiny-dmin.yaml'), `${TINY_DMIN}\n`);
  const abmil = await runCli(['run', QUICKSTART, 'data=synthetic-camelyon', 'name=abmil', 'model/aggregator=abmil', 'model.aggregator.projectDim=16', 'model.aggregator.attnDim=8', 'train.epochs=6', ...SMALL], cwd);
  expect(abmil.code, abmil.err).toBe(0);
  runs.abmil = onlyRunDir('abmil');
  // DMIN's gated class-wise attention needs more slides than ABMIL to learn in a few epochs.
  const dmin = await runCli(['run', path.join(cwd, 'tiny-dmin.yaml'), 'train.epochs=10', ...SMALL.map((o) => (o.startsWith('data.dataset.slides=') ? 'data.dataset.slides=80' : o))], cwd);
  expect(dmin.code, dmin.err).toBe(0);
  runs.dmin = onlyRunDir('tiny-dmin');
}, 600_000);
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

describe('milkit predict', () => {
  it('reproduces the run\'s own test predictions and metrics exactly (--split test)', async () => {
    const runDir = runs.abmil as string;
    const out = path.join(cwd, 'predict-own');
    const result = await runCli(['predict', runDir, '--split', 'test', '--fold', '0', '--bootstrap', '50', '--heatmaps', '-o', out], cwd);
    expect(result.code, result.err).toBe(0);
    const trained = csvRows(path.join(runDir, 'fold-0', 'predictions.csv'));
    const predicted = csvRows(path.join(out, 'predictions.csv'));
    expect(predicted.map((r) => r.slide_id)).toEqual(trained.map((r) => r.slide_id));
    // Probabilities are written at full precision, so equal text is equal numbers.
    expect(predicted.map((r) => [r.p_normal_tissue, r.p_tumor_tissue, r.prediction])).toEqual(trained.map((r) => [r.p_normal_tissue, r.p_tumor_tissue, r.prediction]));
    const runMetrics = JSON.parse(readFileSync(path.join(runDir, 'fold-0', 'metrics.json'), 'utf8')) as { metrics: Record<string, { value: number | null }> };
    const mine = JSON.parse(readFileSync(path.join(out, 'metrics.json'), 'utf8')) as { foldMetrics: Record<string, Record<string, { value: number | null }>>; bootstrap: { intervals: Record<string, { low: number; high: number }> } };
    for (const name of ['auc', 'accuracy', 'balanced-accuracy']) expect(mine.foldMetrics['0']?.[name]?.value, name).toBe(runMetrics.metrics[name]?.value);
    const auc = mine.foldMetrics['0']?.auc?.value as number;
    expect(mine.bootstrap.intervals.auc?.low).toBeLessThanOrEqual(auc);
    expect(mine.bootstrap.intervals.auc?.high).toBeGreaterThanOrEqual(auc);
    expect(existsSync(path.join(out, 'roc.png'))).toBe(true);

    // GeoJSON: a FeatureCollection, one Polygon feature per patch (rows of the scores table) with the score as property.
    const slide = predicted[0]?.slide_id as string;
    const geo = JSON.parse(readFileSync(path.join(out, 'heatmaps', `${slide}.geojson`), 'utf8')) as { type: string; features: Array<{ type: string; geometry: { type: string; coordinates: number[][][] }; properties: { score: number } }> };
    const table = csvRows(path.join(out, 'heatmaps', `${slide}.scores.csv`));
    expect(geo.type).toBe('FeatureCollection');
    expect(geo.features).toHaveLength(table.length);
    expect(table.length).toBeGreaterThanOrEqual(20);
    expect(geo.features.every((f) => f.type === 'Feature' && f.geometry.type === 'Polygon' && f.geometry.coordinates[0]?.length === 5)).toBe(true);
    expect(geo.features.map((f) => f.properties.score)).toEqual(table.map((r) => Number(r.score)));
    const attention = table.map((r) => Number(r.score));
    expect(attention.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4); // ABMIL's softmax attention over the bag
    expect(existsSync(path.join(out, 'heatmaps', `${slide}.heatmap.png`))).toBe(true);
    expect(existsSync(path.join(out, 'heatmaps', `${slide}.topk.png`))).toBe(true);
  }, 300_000);

  it('scores a second generated cohort (a dataset config) without retraining, as a fold ensemble', async () => {
    const config = path.join(cwd, 'cohort-b.yaml');
    writeFileSync(config, 'dataset: { name: synthetic-camelyon, seed: 7, slides: 10, instances: [20, 30], featureDim: 12, signalDim: 2, signalStrength: 8, tumorFraction: [0.1, 0.3] }\n');
    const out = path.join(cwd, 'predict-b');
    const result = await runCli(['predict', runs.abmil as string, '--data', config, '--bootstrap', '0', '-o', out], cwd);
    expect(result.code, result.err).toBe(0);
    const rows = csvRows(path.join(out, 'predictions.csv'));
    expect(rows).toHaveLength(10);
    for (const r of rows) expect(Number(r.p_normal_tissue) + Number(r.p_tumor_tissue)).toBeCloseTo(1, 5);
    expect(new Set(rows.map((r) => r.fold))).toEqual(new Set(['0'])); // only fold 0 was trained
    expect(result.out).toMatch(/auc\s+\d\.\d{4}/);
  }, 300_000);

  it('refuses a 768-d cohort against a 1024-d model before any compute, naming both widths', async () => {
    const run = await runCli(['run', QUICKSTART, 'data=synthetic-camelyon', 'name=wide', 'train.epochs=1', 'runtime.backend=cpu', 'data.dataset.slides=8', 'data.dataset.instances=[4,6]', 'data.dataset.featureDim=1024', 'data.dataset.signalDim=2', 'split.folds=2', 'tracking.enabled=false', '--folds', '0'], cwd);
    expect(run.code, run.err).toBe(0);
    const config = path.join(cwd, 'narrow.yaml');
    writeFileSync(config, 'data:\n  dataset: { name: synthetic-camelyon, slides: 8, instances: [4, 6], featureDim: 768, signalDim: 2 }\n');
    const out = path.join(cwd, 'predict-narrow');
    const result = await runCli(['predict', onlyRunDir('wide'), '--data', config, '-o', out], cwd);
    expect(result.code).toBe(4);
    expect(result.err).toContain('768-d');
    expect(result.err).toContain('1024-d');
    expect(result.err).not.toMatch(/\n\s+at /); // one clear message, no stack
    expect(existsSync(out)).toBe(false); // nothing was computed or written
  }, 300_000);

  it('refuses a cohort whose labels are not the training classes', async () => {
    const dir = path.join(cwd, 'cohort-c');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'slides.csv'), 'slide_id,case_id,label\ns1,c1,lymphoma\n');
    const result = await runCli(['predict', runs.abmil as string, '--data', dir, '-o', path.join(cwd, 'predict-c')], cwd);
    expect(result.code).toBe(4);
    expect(result.err).toMatch(/lymphoma/);
    expect(result.err).toMatch(/normal_tissue, tumor_tissue/);
  }, 120_000);

  it("--threshold youden takes Youden's J of the fold's validation predictions", async () => {
    const runDir = runs.abmil as string;
    const val = await runCli(['predict', runDir, '--split', 'val', '--fold', '0', '--bootstrap', '0', '-o', path.join(cwd, 'predict-val')], cwd);
    expect(val.code, val.err).toBe(0);
    const rows = csvRows(path.join(cwd, 'predict-val', 'predictions.csv'));
    const expected = youdenThreshold(rows.map((r) => Number(r.label)), rows.map((r) => Number(r.p_tumor_tissue)));
    const out = path.join(cwd, 'predict-youden');
    const result = await runCli(['predict', runDir, '--split', 'test', '--fold', '0', '--threshold', 'youden', '--bootstrap', '0', '-o', out], cwd);
    expect(expected).toBeDefined(); // fold 0's stratified validation split has both classes
    expect(result.code, result.err).toBe(0);
    const summary = JSON.parse(readFileSync(path.join(out, 'metrics.json'), 'utf8')) as { threshold: { rule: string; value: number } };
    expect(summary.threshold).toEqual({ rule: 'youden', value: expected });
    expect(expected).not.toBe(0.5);
    for (const r of csvRows(path.join(out, 'predictions.csv'))) expect(Number(r.prediction)).toBe(Number(r.p_tumor_tissue) >= (expected as number) ? 1 : 0);
  }, 300_000);

  it('logs the prediction as its own tracker run, tagged with the training run', async () => {
    const calls: Array<{ call: string; args: unknown[] }> = [];
    const tracker: Tracker = {
      startRun: async (spec) => { calls.push({ call: 'startRun', args: [spec] }); return 'predict-run-1'; },
      logParams: async (...args) => { calls.push({ call: 'logParams', args }); },
      logMetrics: async (...args) => { calls.push({ call: 'logMetrics', args }); },
      setTags: async (...args) => { calls.push({ call: 'setTags', args }); },
      logArtifact: async (...args) => { calls.push({ call: 'logArtifact', args }); },
      endRun: async (...args) => { calls.push({ call: 'endRun', args }); },
      flush: async () => {},
    };
    const registry = builtinRegistry();
    const result = await runPredict({
      runDir: runs.abmil as string, split: 'test', threshold: { rule: 'fixed', value: 0.5 }, bootstrap: 20, outDir: path.join(cwd, 'predict-tracked'),
      heatmaps: { options: DEFAULT_HEATMAP_OPTIONS, topK: 4 }, track: true, registry, logger: silentLogger, cwd, env: {}, createTracker: async () => tracker,
    });
    expect(result.runId).toBe('predict-run-1');
    const start = calls.find((c) => c.call === 'startRun')?.args[0] as { experimentName: string; runName: string; tags: Record<string, string> };
    expect(start.experimentName).toBe('abmil');
    expect(start.tags['milkit.level']).toBe('predict');
    expect(start.tags['milkit.predict.trainingRunDir']).toBe(runs.abmil);
    expect(start.tags['milkit.predict.trainingConfigHash']?.slice(0, 8)).toBe(path.basename(runs.abmil as string));
    const points = calls.filter((c) => c.call === 'logMetrics').flatMap((c) => c.args[1] as Array<{ key: string; value: number }>);
    expect(points.find((p) => p.key === 'predict/auc')?.value).toBe(result.metrics.auc?.value);
    expect(points.some((p) => p.key === 'predict/auc_ci_low')).toBe(true);
    const artifacts = calls.filter((c) => c.call === 'logArtifact').map((c) => path.basename(c.args[1] as string));
    expect(artifacts).toEqual(expect.arrayContaining(['predictions.csv', 'metrics.json', 'roc.png', 'heatmaps']));
    expect(calls[calls.length - 1]).toEqual({ call: 'endRun', args: ['predict-run-1', 'FINISHED'] });
  }, 300_000);

  for (const name of ['abmil', 'dmin'] as const) {
    it(`${name}: instance scores find the planted tumour instances (instance AUC ≥ 0.9 on positive slides)`, async () => {
      const registry = builtinRegistry();
      const run = await loadTrainedRun(runs[name] as string, { registry, cwd, env: {}, logger: silentLogger });
      try {
        const cohort = await openCohort(undefined, run, { registry, cwd, logger: silentLogger });
        const positives = cohort.source.slides.filter((s) => s.label === 1);
        const [fold] = await predictSlides(run, { source: cohort.source, slidesOf: () => positives, metrics: [], instanceScores: true });
        const truth: boolean[] = [];
        const scores: number[] = [];
        for (const slide of fold?.instanceScores.values() ?? []) {
          // Class-wise attention (DMIN): the tumour class's branch; single-branch attention: its one row.
          const row = slide.scores[slide.scores.length - 1] as Float32Array;
          row.forEach((s, i) => {
            scores.push(s);
            truth.push((slide.instanceLabels as Uint8Array)[i] === 1);
          });
        }
        expect(fold?.instanceScores.size).toBe(positives.length);
        expect(binaryAuc(truth, scores)).toBeGreaterThanOrEqual(0.9);
      } finally {
        run.dispose();
      }
    }, 300_000);
  }
});

describe('run folders', () => {
  it('a sweep folder resolves to the job named, or its only trained job; several jobs need --job', async () => {
    const { mkdirSync } = await import('node:fs');
    const sweep = await mkdtemp(path.join(tmpdir(), 'milkit-predict-sweep-'));
    try {
      const job = (id: string): string => {
        mkdirSync(path.join(sweep, 'jobs', id), { recursive: true });
        writeFileSync(path.join(sweep, 'jobs', id, 'config.resolved.yaml'), 'name: x\n');
        return path.join(sweep, 'jobs', id);
      };
      const first = job('a1');
      mkdirSync(path.join(sweep, 'jobs', 'b2'), { recursive: true }); // not trained yet: no run config
      expect(resolveRunDir(sweep, '/', undefined)).toBe(first);
      expect(resolveRunDir(first, '/', undefined)).toBe(first);
      const second = job('c3');
      expect(() => resolveRunDir(sweep, '/', undefined)).toThrow(/2 trained jobs/);
      expect(resolveRunDir(sweep, '/', 'c3')).toBe(second);
      expect(() => resolveRunDir(sweep, '/', 'b2')).toThrow(/trained: a1, c3/);
    } finally {
      rmSync(sweep, { recursive: true, force: true });
    }
  });
});

describe('thresholds and intervals', () => {
  it("Youden's J picks the score that maximises TPR − FPR", () => {
    // Positives 0.9, 0.6, 0.4; negatives 0.5, 0.45, 0.1: t = 0.6 gives TPR 2/3, FPR 0 (J 0.667); t = 0.4 gives TPR 1, FPR 2/3 (J 0.333).
    expect(youdenThreshold([1, 1, 1, 0, 0, 0], [0.9, 0.6, 0.4, 0.5, 0.45, 0.1])).toBe(0.6);
    // A tie in J (t = 0.6 and t = 0.4 both 2/3 here) takes the higher threshold.
    expect(youdenThreshold([1, 1, 1, 0, 0, 0], [0.9, 0.6, 0.4, 0.5, 0.3, 0.1])).toBe(0.6);
    expect(youdenThreshold([1, 1], [0.2, 0.3])).toBeUndefined();
    expect(predictClass([0.45, 0.55], 0.6)).toBe(0);
    expect(predictClass([0.35, 0.65], 0.6)).toBe(1);
    expect(predictClass([0.2, 0.5, 0.3], 0.9)).toBe(1);
  });

  it('the patient bootstrap keeps all slides of a patient together', () => {
    // Two patients with two slides each, perfectly separated: every resample that has both classes has AUC 1.
    const metric = { compute: ({ labels, probs }: { labels: readonly number[]; probs: ReadonlyArray<readonly number[]> }) => {
      const auc = binaryAuc(labels.map((l) => l === 1), probs.map((p) => p[1] as number));
      return auc === null ? { value: null, reason: 'one class' } : { value: auc };
    } };
    const input = { labels: [1, 1, 0, 0], probs: [[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.9, 0.1]], numClasses: 2 };
    const ci = caseBootstrap([{ name: 'auc', metric }], input, ['a', 'a', 'b', 'b'], 200, new Rng(1));
    expect(ci.auc).toEqual({ low: 1, high: 1 });
  });
});
