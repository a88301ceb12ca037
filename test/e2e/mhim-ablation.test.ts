// MHIM-MIL's masking ablation end to end (experiments/mhim/ablation.yaml, shrunk): six rows of the two-stage
// v1 AB-MIL experiment (baseline -> mhim) over 2 folds x 2 repeats, run by the real sweep runner. The table prints
// every row with the Youden accuracy/F1 columns and the paired comparison against "No masking"; the MLflow file
// store holds, under each fold run, the two stage runs, and the mhim stage logs its per-step masking numbers.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { parseMlruns } from '../helpers/mlruns-parser.js';
import { REPO } from './helpers.js';

const TINY = [
  'runtime.backend=cpu', 'data.dataset.slides=24', 'data.dataset.instances=[20,40]', 'data.dataset.featureDim=16', 'data.dataset.thumbs=false',
  'train.epochs=2', 'split.folds=2', 'split.repeats=2', 'model.aggregator.projectDim=16', 'model.aggregator.attnDim=8', 'eval.bootstrap=0',
  'train.optimizer.lr=0.003',
];
const ROWS = ['No masking', 'HAM', 'R-HAM', 'L-HAM', 'LR-HAM', 'LR-HAM + GRN (v2)'];

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('experiments/mhim/ablation.yaml', () => {
  it('runs every row end to end, prints the table with paired comparisons, and nests the stage runs under each fold', async () => {
    const tmp = await mkdtemp(path.join(tmpdir(), 'milkit-mhim-ablation-'));
    dirs.push(tmp);
    const mlruns = path.join(tmp, 'mlruns');
    const run = await execa(process.execPath, [
      path.join(REPO, 'bin/milkit.mjs'), 'sweep', '--file', 'experiments/mhim/ablation.yaml', ...TINY,
      `output.dir=${path.join(tmp, 'runs')}`, `tracking.uri=${mlruns}`, '--workers', '2', '--dir', path.join(tmp, 'state'),
    ], { cwd: REPO, reject: false, env: { MLFLOW_TRACKING_URI: '' } });
    expect(run.exitCode, run.stderr).toBe(0);
    console.log(run.stdout.split('\n').filter((line) => line.startsWith('|')).slice(0, 8).join('\n'));
    expect(run.stdout).toContain('6 cells, 24 jobs: 0 already finished, 24 finished now, 0 failed');
    const table = await readFile(path.join(tmp, 'state', 'table.md'), 'utf8');
    expect(table.split('\n')[0]).toMatch(/^\| row \| folds \| auc \| accuracy-youden \| f1-youden \| baseline_auc \|/);
    for (const row of ROWS) expect(table).toMatch(new RegExp(`^\\| ${row.replace(/[()+]/g, '\\$&')} \\| 4/4 \\| \\d`, 'm'));
    expect(run.stdout).toContain('difference from the baseline (No masking)');

    const runs = parseMlruns(mlruns).flatMap((experiment) => experiment.runs);
    const folds = runs.filter((r) => r.tags['milkit.level'] === 'fold');
    expect(folds).toHaveLength(ROWS.length * 4);
    for (const fold of folds) {
      const stages = runs.filter((r) => r.tags['milkit.level'] === 'stage' && r.tags['mlflow.parentRunId'] === fold.runId);
      expect(stages.map((r) => r.tags['milkit.stage']).sort(), `fold run ${fold.runId}`).toEqual(['baseline', 'mhim']);
      const mhim = stages.find((r) => r.tags['milkit.stage'] === 'mhim');
      for (const key of ['train/masked_random', 'train/masked_low', 'train/masked_high', 'train/masked', 'train/ratio_high', 'train/teacher_rate', 'train/loss_consistency']) {
        expect(mhim?.metrics[key], `${key} on the mhim stage run`).toBeDefined();
      }
    }
    // R-HAM masks a random half: its stage runs log a positive random count; "No masking" logs none masked.
    const anyRandom = runs.some((r) => r.tags['milkit.stage'] === 'mhim' && (r.metrics['train/masked_random']?.at(-1)?.value ?? 0) > 0);
    const anyUnmasked = runs.some((r) => r.tags['milkit.stage'] === 'mhim' && r.metrics['train/masked']?.at(-1)?.value === 0);
    expect(anyRandom && anyUnmasked).toBe(true);
  }, 1_200_000);
});
