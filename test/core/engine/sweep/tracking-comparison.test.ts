// The sweep's comparison with the baseline as MLflow sees it: per-cell compare/* metrics, stats.* params and
// the method note on the sweep run.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SweepPlan } from '../../../../src/core/engine/sweep/plan.js';
import type { PlannedCellRecord } from '../../../../src/core/engine/sweep/state.js';
import type { SweepTable } from '../../../../src/core/engine/sweep/table.js';
import { createSweepTracking } from '../../../../src/core/engine/sweep/tracking.js';
import { MemoryLogger } from '../../../../src/core/logger.js';
import { Rng } from '../../../../src/core/runtime/random.js';
import { compareWithBaseline, type FoldRecord } from '../../../../src/core/stats/compare.js';
import { MlflowFileStore } from '../../../../src/core/tracking/file-store.js';
import { loadLocalRuns } from '../../../../src/core/tracking/runs-query.js';

function cell(index: number, row: string): PlannedCellRecord {
  return { index, name: row, row, params: {}, overrides: [], configHash: `hash${index}`, folds: 10, jobIds: Array.from({ length: 10 }, (_, f) => `j${index}-${f}`) };
}

describe('sweep tracking of the comparison', () => {
  it('logs each cell\'s difference from the baseline and the method on the sweep run', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-sweep-stats-'));
    const store = new MlflowFileStore({ root: path.join(dir, 'mlruns'), logger: new MemoryLogger() });
    const cells = [cell(0, 'base'), cell(1, 'better')];
    const plan: SweepPlan = { specHash: 'spec', cells, jobs: [] };
    const tracking = createSweepTracking({ tracker: store, experimentName: 'stats', logger: new MemoryLogger(), cwd: dir, configOf: () => ({}) });
    await tracking.open(plan, dir, 'stats');
    const folds = (shift: number): FoldRecord[] => Array.from({ length: 10 }, (_, f) => ({ index: f, repeat: 0, metrics: { auc: 0.7 + shift + 0.01 * (f % 3) + 0.001 * f * shift * 10 }, nTrain: 40, nTest: 10 }));
    const comparison = compareWithBaseline([{ label: 'base', folds: folds(0) }, { label: 'better', folds: folds(0.05) }], { metrics: ['auc'], rng: new Rng(1) });
    const table: SweepTable = { metrics: ['auc'], params: [], cells: cells.map((c) => ({ cell: c, done: 10, metrics: { auc: { mean: 0.7, std: 0.01, n: 10 } } })) };
    await tracking.close(table, dir, [], comparison);
    const runs = await loadLocalRuns(path.join(dir, 'mlruns'), { logger: new MemoryLogger() });
    const better = runs.find((r) => r.runName === 'better');
    const expected = comparison.rows[1]?.metrics[0];
    expect(expected?.mark).toBe('▲');
    expect(better?.metrics['compare/auc/effect']).toBeCloseTo(expected?.tTest?.effect as number, 12);
    expect(better?.metrics['compare/auc/p_holm']).toBeCloseTo(expected?.adjustedP as number, 12);
    expect(better?.metrics['compare/auc/mark']).toBe(1);
    expect(Object.keys(runs.find((r) => r.runName === 'base')?.metrics ?? {}).filter((k) => k.startsWith('compare/'))).toEqual([]);
    const sweep = runs.find((r) => r.tags['milkit.level'] === 'sweep');
    expect(sweep?.params['stats.baseline']).toBe('base');
    expect(sweep?.params['stats.alpha']).toBe('0.05');
    expect(sweep?.tags['mlflow.note.content']).toContain('Corrected resampled t-test');
    expect(sweep?.metrics['compare/better/auc/mark']).toBe(1);
    expect(sweep?.metrics['compare/better/auc/p_holm']).toBeCloseTo(expected?.adjustedP as number, 12);
  });
});
