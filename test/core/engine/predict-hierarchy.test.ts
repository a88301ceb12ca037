// `milkit predict` on hierarchical runs (docs/predict.md#hierarchical-tasks), through the CLI on tiny
// synthetic-hierarchical data: an HMIL run's own test splits give back its predictions and metrics at both levels
// exactly (coarse columns, coarse_<metric>, per-class scores), with bootstrap CIs, hierarchy.json confusion matrices,
// the coarse ROC and class-wise heatmaps at both levels; the fold ensemble averages the coarse probabilities too;
// a flat model (ABMIL) trained on the same data gets its coarse level from its summed fine probabilities.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensembleInstanceScores, ensembleProbabilities, type FoldPredictions } from '../../../src/core/engine/predict.js';
import { REPO, runCli } from '../../e2e/helpers.js';

const HMIL = path.join(REPO, 'experiments/hmil/synthetic.yaml');
const TINY = [
  'runtime.backend=cpu', 'data.dataset.slides=42', 'data.dataset.instances=[10,24]', 'train.epochs=3', 'train.bagsPerStep=4', 'split.folds=2',
  'data.dataset.thumbs=true', 'tracking.enabled=false', 'eval.bootstrap=0',
];
const FLAT = ['~model.aggregator', 'model.aggregator={name: abmil, projectDim: 16, attnDim: 8, dropout: 0}', '~model.losses.hier', '~model.losses.supcon'];
const PARENTS = [0, 0, 0, 1, 1, 2, 2]; // N, PB, UDH → benign; FEA, ADH → atypical; DCIS, IC → malignant
const COARSE = ['benign', 'atypical', 'malignant'];

let cwd: string;
const runs: Record<string, string> = {};

type Row = Record<string, string>;
type Metrics = Record<string, { value: number | null }>;

function csvRows(file: string): Row[] {
  const [header, ...lines] = readFileSync(file, 'utf8').trim().split('\n');
  const names = (header as string).split(',');
  return lines.map((line) => Object.fromEntries(line.split(',').map((v, i) => [names[i] as string, v])));
}

function onlyRunDir(name: string): string {
  const base = path.join(cwd, 'outputs', name);
  return path.join(base, readdirSync(base)[0] as string);
}

function json<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  cwd = await mkdtemp(path.join(tmpdir(), 'milkit-predict-hier-'));
  const hmil = await runCli(['run', HMIL, 'name=hmil', ...TINY], cwd);
  expect(hmil.code, hmil.err).toBe(0);
  runs.hmil = onlyRunDir('hmil');
  const flat = await runCli(['run', HMIL, 'name=flat', ...FLAT, ...TINY, '--folds', '0'], cwd);
  expect(flat.code, flat.err).toBe(0);
  runs.flat = onlyRunDir('flat');
}, 600_000);
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

describe('milkit predict on a hierarchical run', () => {
  it('reproduces the HMIL run\'s test predictions and metrics at both levels exactly, with CIs, confusion matrices and both levels\' heatmaps', async () => {
    const runDir = runs.hmil as string;
    const out = path.join(cwd, 'predict-own');
    const result = await runCli(['predict', runDir, '--split', 'test', '--bootstrap', '60', '-o', out], cwd);
    expect(result.code, result.err).toBe(0);
    const predicted = csvRows(path.join(out, 'predictions.csv'));
    const coarseColumns = ['coarse_label', 'coarse_label_name', 'pc_benign', 'pc_atypical', 'pc_malignant', 'coarse_prediction', 'coarse_prediction_name'];
    const mine = json<{ metrics: Metrics; foldMetrics: Record<string, Metrics>; bootstrap: { intervals: Record<string, { low: number; high: number } | null> } }>(path.join(out, 'metrics.json'));
    for (const fold of [0, 1]) {
      // Every column, the coarse ones included, is text-equal (full precision) to the fold's own predictions.csv.
      const trained = csvRows(path.join(runDir, `fold-${fold}`, 'predictions.csv'));
      const rows = predicted.filter((r) => r.fold === String(fold));
      expect(rows.length).toBeGreaterThan(0);
      expect(rows).toEqual(trained);
      expect(Object.keys(rows[0] as Row)).toEqual(expect.arrayContaining(coarseColumns));
      // Every metric the fold reported at test (coarse_<metric>, fine_/coarse_ per-class scores) is reproduced bit for bit.
      const runMetrics = json<{ metrics: Metrics }>(path.join(runDir, `fold-${fold}`, 'metrics.json')).metrics;
      const keys = Object.keys(runMetrics).filter((k) => k !== 'instance_auc');
      expect(keys).toEqual(expect.arrayContaining(['auc', 'coarse_auc', 'coarse_accuracy', 'coarse_f1', 'fine_f1_DCIS', 'coarse_recall_malignant']));
      for (const key of keys) expect(mine.foldMetrics[String(fold)]?.[key]?.value, `fold ${fold} ${key}`).toBe(runMetrics[key]?.value);
    }
    // Pooled over both folds' test rows: both levels, each configured metric with a patient-bootstrap CI around it.
    for (const key of ['auc', 'accuracy', 'f1', 'coarse_auc', 'coarse_accuracy', 'coarse_f1']) {
      const value = mine.metrics[key]?.value as number;
      expect(value, key).toBeTypeOf('number');
      expect(mine.bootstrap.intervals[key]?.low, key).toBeLessThanOrEqual(value);
      expect(mine.bootstrap.intervals[key]?.high, key).toBeGreaterThanOrEqual(value);
    }
    expect(mine.metrics.coarse_precision_benign?.value).toBeTypeOf('number');
    const accuracy = predicted.filter((r) => r.coarse_label === r.coarse_prediction).length / predicted.length;
    expect(mine.metrics.coarse_accuracy?.value).toBeCloseTo(accuracy, 12);
    const levels = json<{ pooled: { fine: { confusion: number[][] }; coarse: { confusion: number[][] } }; folds: unknown[] }>(path.join(out, 'hierarchy.json'));
    expect(levels.pooled.fine.confusion).toHaveLength(7);
    expect(levels.pooled.coarse.confusion).toHaveLength(3);
    expect(levels.pooled.coarse.confusion.flat().reduce((a, b) => a + b, 0)).toBe(predicted.length);
    expect(levels.folds).toHaveLength(2);
    expect(existsSync(path.join(out, 'roc.png'))).toBe(true);
    expect(existsSync(path.join(out, 'roc.coarse.png'))).toBe(true);

    // Heatmaps (fold 0): one attention column per fine and per coarse class; each row of class-wise attention is a
    // softmax over the slide's instances; `score` is the predicted fine class's column; a PNG per class at both levels.
    const maps = path.join(cwd, 'predict-own-maps');
    const drawn = await runCli(['predict', runDir, '--split', 'test', '--fold', '0', '--bootstrap', '0', '--heatmaps', '-o', maps], cwd);
    expect(drawn.code, drawn.err).toBe(0);
    const slide = predicted[0] as Row;
    expect(slide.fold).toBe('0');
    const table = csvRows(path.join(maps, 'heatmaps', `${slide.slide_id}.scores.csv`));
    const columns = Object.keys(table[0] as Row);
    expect(columns).toEqual(expect.arrayContaining(['score_N', 'score_IC', 'score_coarse_benign', 'score_coarse_atypical', 'score_coarse_malignant']));
    for (const column of columns.filter((c) => c.startsWith('score_'))) expect(table.reduce((a, r) => a + Number(r[column]), 0), column).toBeCloseTo(1, 4);
    expect(table.map((r) => r.score)).toEqual(table.map((r) => r[`score_${slide.prediction_name}`]));
    const coarseScores = COARSE.map((name) => table.map((r) => Number(r[`score_coarse_${name}`])));
    expect(coarseScores[0]).not.toEqual(coarseScores[2]); // distinct branches, not one row repeated
    for (const name of [...COARSE.map((c) => `coarse.${c}`), 'N', 'DCIS']) expect(existsSync(path.join(maps, 'heatmaps', `${slide.slide_id}.heatmap.${name}.png`)), name).toBe(true);
    for (const montage of ['topk', 'topk.coarse']) expect(existsSync(path.join(maps, 'heatmaps', `${slide.slide_id}.${montage}.png`)), montage).toBe(true);
    const geo = json<{ features: Array<{ properties: Record<string, number> }> }>(path.join(maps, 'heatmaps', `${slide.slide_id}.geojson`));
    expect(geo.features.map((f) => f.properties.score_coarse_malignant)).toEqual(coarseScores[2]);
  }, 300_000);

  it('the fold ensemble on a new cohort averages the coarse probabilities of the folds, and its coarse prediction is their argmax', async () => {
    const config = path.join(cwd, 'cohort-b.yaml');
    writeFileSync(config, 'dataset: { name: synthetic-hierarchical, seed: 7, slides: 14, instances: [10, 24], featureDim: 32 }\n');
    const predict = async (extra: string[], name: string): Promise<Row[]> => {
      const out = path.join(cwd, name);
      const result = await runCli(['predict', runs.hmil as string, '--data', config, '--bootstrap', '0', ...extra, '-o', out], cwd);
      expect(result.code, result.err).toBe(0);
      return csvRows(path.join(out, 'predictions.csv'));
    };
    const ensemble = await predict([], 'predict-b');
    const folds = [await predict(['--fold', '0'], 'predict-b0'), await predict(['--fold', '1'], 'predict-b1')];
    expect(ensemble).toHaveLength(14);
    ensemble.forEach((row, i) => {
      const pc = COARSE.map((name) => Number(row[`pc_${name}`]));
      COARSE.forEach((name, c) => expect(pc[c], `${row.slide_id} pc_${name}`).toBeCloseTo((Number(folds[0]?.[i]?.[`pc_${name}`]) + Number(folds[1]?.[i]?.[`pc_${name}`])) / 2, 7));
      expect(pc.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(Number(row.coarse_prediction)).toBe(pc.indexOf(Math.max(...pc)));
      expect(Number(row.coarse_label)).toBe(PARENTS[Number(row.label)]);
      expect(row.fold).toBe('ensemble');
    });
  }, 300_000);

  it('a flat model on the same data: coarse probabilities are its fine ones summed per coarse class, and its coarse metrics are the run\'s', async () => {
    const out = path.join(cwd, 'predict-flat');
    const result = await runCli(['predict', runs.flat as string, '--split', 'test', '--bootstrap', '0', '--heatmaps', '-o', out], cwd);
    expect(result.code, result.err).toBe(0);
    const rows = csvRows(path.join(out, 'predictions.csv'));
    const fine = ['N', 'PB', 'UDH', 'FEA', 'ADH', 'DCIS', 'IC'];
    for (const row of rows) {
      COARSE.forEach((name, c) => {
        const summed = fine.filter((_, f) => PARENTS[f] === c).reduce((a, f) => a + Number(row[`p_${f}`]), 0);
        expect(Number(row[`pc_${name}`])).toBeCloseTo(summed, 6);
      });
    }
    const runMetrics = json<{ metrics: Metrics }>(path.join(runs.flat as string, 'fold-0', 'metrics.json')).metrics;
    const mine = json<{ foldMetrics: Record<string, Metrics> }>(path.join(out, 'metrics.json')).foldMetrics['0'] as Metrics;
    for (const key of ['coarse_auc', 'coarse_accuracy', 'coarse_f1', 'coarse_f1_atypical']) expect(mine[key]?.value, key).toBe(runMetrics[key]?.value);
    // ABMIL has one attention row and no coarse attention: the scores table keeps its flat layout.
    const table = csvRows(path.join(out, 'heatmaps', `${rows[0]?.slide_id}.scores.csv`));
    expect(Object.keys(table[0] as Row)).toEqual(['patch', 'x', 'y', 'patch_size', 'score']);
  }, 300_000);
});

describe('ensembles at both levels (pure functions)', () => {
  const fold = (index: number, fine: number[], coarse: number[] | undefined, scores: number[][], coarseScores?: number[][]): FoldPredictions => ({
    fold: index,
    predictions: [{ slideId: 's', caseId: 'c', label: 1, probs: fine, prediction: 0, ...(coarse ? { coarse: { label: 0, probs: coarse, prediction: 0 } } : {}) }],
    metrics: {},
    instanceScores: new Map([['s', { slideId: 's', scores: scores.map((r) => Float32Array.from(r)), ...(coarseScores ? { coarseScores: coarseScores.map((r) => Float32Array.from(r)) } : {}) }]]),
  });

  it('averages coarse probabilities and coarse attention over folds, and drops the coarse level when a fold lacks it', () => {
    const a = fold(0, [0.2, 0.8], [0.6, 0.4], [[0.5, 0.5]], [[0.25, 0.75], [1, 0]]);
    const b = fold(1, [0.4, 0.6], [0.2, 0.8], [[0.1, 0.9]], [[0.75, 0.25], [0, 1]]);
    const [mean] = ensembleProbabilities([a, b]);
    expect(mean?.probs[0]).toBeCloseTo(0.3, 12);
    expect(mean?.probs[1]).toBeCloseTo(0.7, 12);
    expect(mean?.coarse?.probs[0]).toBeCloseTo(0.4, 12);
    expect(mean?.coarse?.probs[1]).toBeCloseTo(0.6, 12);
    const scores = ensembleInstanceScores([a, b]).get('s');
    expect(Array.from(scores?.coarseScores?.[0] ?? [])).toEqual([0.5, 0.5]);
    expect(Array.from(scores?.coarseScores?.[1] ?? [])).toEqual([0.5, 0.5]);
    const flat = fold(1, [0.4, 0.6], undefined, [[0.1, 0.9]]);
    expect(ensembleProbabilities([a, flat])[0]?.coarse).toBeUndefined();
    expect(ensembleInstanceScores([a, flat]).get('s')?.coarseScores).toBeUndefined();
  });
});
