// Prediction on a cohort without labels: a copy of a labelled h5 cohort whose slide table has no label column is
// scored with exactly the probabilities of the labelled one, predictions.csv leaves the label columns empty, and
// neither metrics.json nor the ROC figure is written (one info line says why). Training on such a table still
// fails with exit code 4, naming the file and the missing column. CLAM-SB with its instance loss is the model:
// its loss reads the label, which an unlabelled slide has none of.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from './helpers.js';
import { writeH5Cohort } from '../helpers/h5-cohort.js';

let cwd: string;
let runDir: string;

const experiment = (slideTable: string, featuresDir: string, name: string): string => [
  `name: ${name}`, 'seed: 0', 'data:', `  dataset: { name: features-h5, slideTable: ${slideTable}, featuresDir: ${featuresDir} }`,
  'model:', '  aggregator: { name: clam-sb, hiddenDim: 8, attnDim: 4, kSample: 2 }', '  classifier: { name: linear }',
  '  losses: { bag: { name: cross-entropy, weight: 0.7 }, instance: { name: clam-instance, weight: 0.3 } }',
  'train: { epochs: 2, optimizer: { name: adam, lr: 0.01 } }', 'split: { mode: kfold, folds: 2, valFraction: 0.2 }',
  'runtime: { backend: cpu }', 'tracking: { enabled: false }', 'eval: { metrics: [auc, accuracy], bootstrap: 0 }',
].join('\n');

function csvRows(file: string): Array<Record<string, string>> {
  const [header, ...lines] = readFileSync(file, 'utf8').trim().split('\n');
  const names = (header as string).split(',');
  return lines.map((line) => Object.fromEntries(line.split(',').map((v, i) => [names[i] as string, v])));
}

/** A copy of a labelled cohort folder whose slides.csv drops the label column. */
function unlabelledCopy(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) if (name.endsWith('.h5')) copyFileSync(path.join(from, name), path.join(to, name));
  const [header, ...lines] = readFileSync(path.join(from, 'slides.csv'), 'utf8').trim().split('\n');
  const keep = (header as string).split(',').map((column, i) => (column === 'label' ? -1 : i)).filter((i) => i >= 0);
  const pick = (line: string): string => keep.map((i) => line.split(',')[i]).join(',');
  writeFileSync(path.join(to, 'slides.csv'), `${[header as string, ...lines].map(pick).join('\n')}\n`);
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  cwd = await tempDir('milkit-predict-unlabelled-');
  await writeH5Cohort(path.join(cwd, 'train'), 1, undefined, 12);
  writeFileSync(path.join(cwd, 'clam.yaml'), experiment('train/slides.csv', 'train', 'clam'));
  const run = await runCli(['run', path.join(cwd, 'clam.yaml'), '--folds', '0'], cwd);
  expect(run.code, run.err).toBe(0);
  const base = path.join(cwd, 'outputs', 'clam');
  runDir = path.join(base, readdirSync(base)[0] as string);
  await writeH5Cohort(path.join(cwd, 'cohort'), 5, undefined, 8);
  unlabelledCopy(path.join(cwd, 'cohort'), path.join(cwd, 'cohort-unlabelled'));
}, 300_000);
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

describe('milkit predict on a cohort without labels', () => {
  it('gives the labelled cohort\'s probabilities, empty label columns, and no metrics or ROC', async () => {
    const labelledOut = path.join(cwd, 'predict-labelled');
    const labelled = await runCli(['predict', runDir, '--data', path.join(cwd, 'cohort'), '--bootstrap', '20', '-o', labelledOut], cwd);
    expect(labelled.code, labelled.err).toBe(0);
    expect(existsSync(path.join(labelledOut, 'metrics.json'))).toBe(true);
    expect(existsSync(path.join(labelledOut, 'roc.png'))).toBe(true);

    const out = path.join(cwd, 'predict-unlabelled');
    const unlabelled = await runCli(['predict', runDir, '--data', path.join(cwd, 'cohort-unlabelled'), '--bootstrap', '20', '-o', out], cwd);
    expect(unlabelled.code, unlabelled.err).toBe(0);
    const withLabels = csvRows(path.join(labelledOut, 'predictions.csv'));
    const without = csvRows(path.join(out, 'predictions.csv'));
    expect(without).toHaveLength(8);
    // Probabilities are written at full precision: equal text is equal numbers.
    const scores = (rows: typeof without) => rows.map((r) => [r.slide_id, r.case_id, r.p_normal, r.p_tumor, r.prediction, r.prediction_name, r.fold]);
    expect(scores(without)).toEqual(scores(withLabels));
    expect(withLabels.every((r) => r.label === '0' || r.label === '1')).toBe(true);
    expect(without.every((r) => r.label === '' && r.label_name === '')).toBe(true);
    expect(existsSync(path.join(out, 'metrics.json'))).toBe(false);
    expect(existsSync(path.join(out, 'roc.png'))).toBe(false);
    expect(unlabelled.err).toContain('the slides have no labels, so only predictions are written (no metrics.json, no ROC figure)');
    expect(unlabelled.out).not.toMatch(/auc/);
    expect(labelled.out).toMatch(/auc\s+\d\.\d{4}/);
  }, 300_000);

  it('training on a slide table without labels fails with exit code 4, naming the file and the column', async () => {
    writeFileSync(path.join(cwd, 'unlabelled.yaml'), experiment('cohort-unlabelled/slides.csv', 'cohort-unlabelled', 'unlabelled'));
    const result = await runCli(['run', path.join(cwd, 'unlabelled.yaml'), '--folds', '0'], cwd);
    expect(result.code).toBe(4);
    expect(result.err).toContain(path.join(cwd, 'cohort-unlabelled', 'slides.csv'));
    expect(result.err).toContain('no "label" column');
    expect(result.err).not.toMatch(/\n\s+at /); // one clear message, no stack
  }, 120_000);
});
