// `milkit predict` on a run with a trainable encoder (HMIL with the LeNet digit encoder on hierarchical MNIST, a
// tiny version of experiments/hmil/mnist.yaml): the checkpoint's shapes give the aggregator's width (the encoder's
// 500-d output), while the cohort is the raw instances the model reads (784 pixels, recorded in run.json; before,
// predict refused the run's own data as 784-d against 500-d); the run's own test split gives back its test metrics
// at both levels exactly, with the coarse attention per bag.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, runCli } from '../../e2e/helpers.js';

const MNIST = path.join(REPO, 'experiments/hmil/mnist.yaml');
const TINY = [
  'runtime.backend=cpu', 'data.dataset.trainBags=36', 'data.dataset.testBags=12', 'data.dataset.meanBagSize=4', 'data.dataset.stdBagSize=1',
  'train.epochs=1', 'train.bagsPerStep=4', 'split.folds=1', 'tracking.enabled=false', 'eval.bootstrap=0',
];

let cwd: string;
let runDir: string;

beforeAll(async () => {
  await tf.setBackend('cpu');
  cwd = await mkdtemp(path.join(tmpdir(), 'milkit-predict-encoder-'));
  const run = await runCli(['run', MNIST, 'name=mnist', ...TINY], cwd);
  expect(run.code, run.err).toBe(0);
  const base = path.join(cwd, 'outputs', 'mnist');
  runDir = path.join(base, readdirSync(base)[0] as string);
}, 600_000);
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

describe('milkit predict with a trained encoder', () => {
  it('accepts the 784-pixel cohort of a LeNet + HMIL run and reproduces its test metrics at both levels', async () => {
    const out = path.join(cwd, 'predict');
    const result = await runCli(['predict', runDir, '--split', 'test', '--bootstrap', '0', '--heatmaps', '-o', out], cwd);
    expect(result.code, result.err).toBe(0);
    const runMetrics = (JSON.parse(readFileSync(path.join(runDir, 'fold-0', 'metrics.json'), 'utf8')) as { metrics: Record<string, { value: number | null }> }).metrics;
    const mine = (JSON.parse(readFileSync(path.join(out, 'metrics.json'), 'utf8')) as { foldMetrics: Record<string, Record<string, { value: number | null }>> }).foldMetrics['0'] ?? {};
    for (const key of ['auc', 'accuracy', 'coarse_auc', 'coarse_accuracy', 'coarse_f1', 'fine_recall_digit-3', 'coarse_precision_high']) {
      expect(mine[key]?.value, key).toBe(runMetrics[key]?.value);
    }
    const header = readFileSync(path.join(out, 'predictions.csv'), 'utf8').split('\n')[0];
    expect(header).toContain(',fold,coarse_label,coarse_label_name,pc_low,pc_high,coarse_prediction,coarse_prediction_name');
    // No coordinates in MNIST bags: the scores table still has every fine and coarse attention row.
    const first = readdirSync(path.join(out, 'heatmaps')).find((f) => f.endsWith('.scores.csv')) as string;
    const columns = readFileSync(path.join(out, 'heatmaps', first), 'utf8').split('\n')[0]?.split(',');
    expect(columns).toEqual(['patch', 'x', 'y', 'patch_size', 'score', ...[0, 1, 2, 3, 4, 5].map((d) => `score_digit-${d}`), 'score_coarse_low', 'score_coarse_high']);
  }, 300_000);
});
