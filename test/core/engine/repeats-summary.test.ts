// Repeated k-fold CV: the run's summary gives mean ± the sample std of the per-repeat means (as MHIM-MIL reports
// it), not the std over all folds, and says so in summary.json and the printed report.
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { QUICKSTART, TINY, runCli, tempDir } from '../../e2e/helpers.js';

interface Summary {
  folds: Array<{ fold: number; ok: boolean; metrics: Record<string, { value: number | null }> }>;
  summary: Record<string, { mean: number | null; std: number | null; n: number; repeats?: number }>;
  std: string;
}

describe('repeated cross-validation summary', () => {
  it('reports the spread of the per-repeat means', async () => {
    const cwd = await tempDir('milkit-repeats-');
    const run = await runCli(['cv', QUICKSTART, ...TINY, 'split.repeats=2', 'tracking.enabled=false', 'eval.bootstrap=0', `output.dir=${path.join(cwd, 'out')}`], cwd);
    expect(run.code, run.err).toBe(0);
    const [hash] = await readdir(path.join(cwd, 'out'));
    const saved = JSON.parse(await readFile(path.join(cwd, 'out', hash as string, 'summary.json'), 'utf8')) as Summary;
    expect(saved.folds.map((f) => f.fold)).toEqual([0, 1, 2, 3]);
    expect(saved.std).toBe('sample standard deviation (ddof=1) of the per-repeat means');
    // Folds 0-1 are repeat 0, folds 2-3 repeat 1 (index = repeat · folds + fold).
    const auc = saved.folds.map((f) => f.metrics.auc?.value as number);
    const means = [(auc[0]! + auc[1]!) / 2, (auc[2]! + auc[3]!) / 2];
    const mean = (means[0]! + means[1]!) / 2;
    expect(saved.summary.auc?.mean).toBeCloseTo(mean, 12);
    expect(saved.summary.auc?.std).toBeCloseTo(Math.abs(means[0]! - means[1]!) / Math.SQRT2, 12);
    expect(saved.summary.auc?.n).toBe(4);
    expect(saved.summary.auc?.repeats).toBe(2);
    expect(run.out).toContain('summary over 4 fold(s) in 2 repeats (mean ± sample std of the per-repeat means, ddof=1):');
  });
});
