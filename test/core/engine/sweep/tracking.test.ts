// A real `milkit sweep` of 2 cells × 3 folds must appear in MLflow as 1 sweep run, 2 cell runs (children)
// and 6 fold runs (grandchildren, one per job, each under its own cell), with cell summaries on the cells.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { parseMlruns } from '../../../helpers/mlruns-parser.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const bin = path.join(root, 'bin', 'milkit.mjs');

describe('sweep tracking', () => {
  it('logs a 2 × 3 sweep as 1 parent, 2 children and 6 grandchildren with the right tags', async () => {
    const tmp = await mkdtemp(path.join(tmpdir(), 'milkit-sweep-mlflow-'));
    const mlruns = path.join(tmp, 'mlruns');
    const args = [
      bin, 'sweep', 'experiments/quickstart.yaml',
      'data.dataset.slides=18', 'data.dataset.instances=[10,30]', 'data.dataset.thumbs=false', 'train.epochs=2',
      'split.folds=3', 'eval.metrics=[auc,accuracy]', 'eval.bootstrap=0', 'runtime.backend=cpu', 'model/aggregator=mean-pool,max-pool',
      `tracking.uri=${mlruns}`, `output.dir=${path.join(tmp, 'runs')}`, '--workers', '2', '--dir', path.join(tmp, 'state'),
    ];
    const run = await execa(process.execPath, args, { cwd: root, reject: false, env: { MLFLOW_TRACKING_URI: '' } });
    expect(run.exitCode, run.stderr).toBe(0);
    const [experiment] = parseMlruns(mlruns).filter((e) => e.runs.length > 0);
    expect(experiment?.name).toBe('quickstart');
    const runs = experiment?.runs ?? [];
    const byLevel = (level: string) => runs.filter((r) => r.tags['milkit.level'] === level);
    const [sweep] = byLevel('sweep');
    const cells = byLevel('cell');
    const folds = byLevel('fold');
    expect(byLevel('sweep')).toHaveLength(1);
    expect(cells).toHaveLength(2);
    expect(folds).toHaveLength(6);
    expect(runs).toHaveLength(9);
    for (const cell of cells) {
      expect(cell.tags['mlflow.parentRunId']).toBe(sweep?.runId);
      expect(cell.status).toBe('FINISHED');
      expect(cell.params['model.aggregator.name']).toMatch(/^(mean|max)-pool$/);
      expect(Object.keys(cell.metrics)).toEqual(expect.arrayContaining(['test/auc_mean', 'test/auc_std', 'test/accuracy_mean']));
      const children = folds.filter((f) => f.tags['mlflow.parentRunId'] === cell.runId);
      expect(children.map((f) => f.tags['milkit.fold']).sort()).toEqual(['0', '1', '2']);
      for (const fold of children) {
        expect(fold.status).toBe('FINISHED');
        expect(fold.metrics['test/auc']).toHaveLength(1);
        expect(fold.metrics['train/loss']).toHaveLength(2);
      }
    }
    expect(new Set(cells.map((c) => c.params['model.aggregator.name']))).toEqual(new Set(['mean-pool', 'max-pool']));
    expect(sweep?.status).toBe('FINISHED');
    expect(sweep?.artifacts).toEqual(expect.arrayContaining(['table.md', 'summary.csv']));

    // The same sweep logging elsewhere: tracking settings are not in the job ids, so nothing trains again, and
    // the runs saved for the first store are not reused in the second: it gets its own sweep and cell runs.
    const elsewhere = path.join(tmp, 'mlruns-2');
    const again = await execa(process.execPath, args.map((a) => (a === `tracking.uri=${mlruns}` ? `tracking.uri=${elsewhere}` : a)), { cwd: root, reject: false, env: { MLFLOW_TRACKING_URI: '' } });
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout).toContain('6 jobs: 6 already finished, 0 finished now');
    expect(again.stderr).toContain('the tracking settings changed since the last run');
    const second = parseMlruns(elsewhere).flatMap((e) => e.runs);
    expect(second.filter((r) => r.tags['milkit.level'] === 'sweep')).toHaveLength(1);
    expect(second.filter((r) => r.tags['milkit.level'] === 'cell').map((c) => c.status)).toEqual(['FINISHED', 'FINISHED']);
    expect(parseMlruns(mlruns).flatMap((e) => e.runs)).toHaveLength(9);
  }, 300_000);
});
