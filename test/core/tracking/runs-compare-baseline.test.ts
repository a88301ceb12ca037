// `milkit runs compare --baseline`: cell runs tested against a baseline cell over their fold runs.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { main } from '../../../src/core/cli/main.js';
import { binaryAuc } from '../../../src/core/eval/classification.js';
import { predictionsCsv } from '../../../src/core/eval/predictions.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { correctedResampledTTest } from '../../../src/core/stats/corrected-t-test.js';
import { MlflowFileStore } from '../../../src/core/tracking/file-store.js';
import { baselineCompareTable, loadLocalRuns } from '../../../src/core/tracking/runs-query.js';
import { tempWorkspace } from '../../helpers/tracking-kit.js';

let cwd: string;
let root: string;
const ids: Record<string, string> = {};
const aucs: Record<string, number[]> = {};

/**
 * A sweep with two cells × 5 fold runs (kfold of 40 slides: 32 train, 8 test), each fold with its predictions.csv;
 * with `coarse`, the folds also carry a coarse level (2 coarse classes over the 2 fine ones, mirrored) and log
 * `test/coarse_auc`.
 */
async function seed(coarse = false): Promise<void> {
  let clock = 1_700_000_000_000;
  const store = new MlflowFileStore({ root, logger: new MemoryLogger(), now: () => (clock += 1000) });
  const sweep = await store.startRun({ experimentName: 'ablation', runName: 'sweep', tags: { 'milkit.level': 'sweep' } });
  for (const [name, strength] of [['abmil', 0.2], ['abmil+cka', 0.6]] as const) {
    const cell = await store.startRun({ experimentName: 'ablation', runName: name, parentRunId: sweep, tags: { 'milkit.level': 'cell' } });
    ids[name] = cell;
    aucs[name] = [];
    await store.logParams(cell, { 'model.name': name, 'split.folds': '5' });
    const rng = new Rng(`runs-compare/${name}`);
    for (let fold = 0; fold < 5; fold += 1) {
      const run = await store.startRun({ experimentName: 'ablation', runName: `${name}-fold${fold}`, parentRunId: cell, tags: { 'milkit.level': 'fold', 'milkit.fold': String(fold) } });
      await store.logParams(run, { fold: String(fold), 'split.train': '32', 'split.val': '0', 'split.test': '8' });
      const rows = Array.from({ length: 8 }, (_, i) => {
        const label = i % 2;
        const p = Math.min(0.99, Math.max(0.01, 0.5 + strength * (label - 0.5) + 0.2 * rng.normal()));
        const coarseLevel = { label: 1 - label, probs: [p, 1 - p], prediction: p > 0.5 ? 0 : 1 };
        return { slideId: `s${fold * 8 + i}`, caseId: `c${fold * 8 + i}`, label, probs: [1 - p, p], prediction: p > 0.5 ? 1 : 0, fold, ...(coarse ? { coarse: coarseLevel } : {}) };
      });
      const auc = binaryAuc(rows.map((r) => r.label === 1), rows.map((r) => r.probs[1] as number)) as number;
      aucs[name]?.push(auc);
      await store.logMetrics(run, [{ key: 'test/auc', value: auc, step: 0, timestamp: 1 }, ...(coarse ? [{ key: 'test/coarse_auc', value: auc, step: 0, timestamp: 1 }] : [])]);
      // As runExperiment logs it: the fold folder's predictions.csv.
      const file = path.join(cwd, `${name}-fold-${fold}`, 'predictions.csv');
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, predictionsCsv(rows, ['normal', 'tumor'], coarse ? ['benign', 'malignant'] : undefined));
      await store.logArtifact(run, file);
      await store.endRun(run, 'FINISHED');
    }
    const values = aucs[name] ?? [];
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    await store.logMetrics(cell, [{ key: 'test/auc_mean', value: mean, step: 0, timestamp: 1 }, ...(coarse ? [{ key: 'test/coarse_auc_mean', value: mean, step: 0, timestamp: 1 }] : [])]);
    await store.endRun(cell, 'FINISHED');
  }
  await store.endRun(sweep, 'FINISHED');
}

beforeEach(async () => {
  cwd = tempWorkspace('milkit-runs-baseline-');
  root = path.join(cwd, 'mlruns');
  await seed();
});
afterEach(() => rmSync(cwd, { recursive: true, force: true }));

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { manifest: builtinManifest(), cwd, env: {}, io: { out: (t) => void out.push(t), err: (t) => void err.push(t), stdoutIsTTY: false } });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('runs compare --baseline', () => {
  it('pairs the fold runs and gives the corrected t-test of the difference', async () => {
    const all = await loadLocalRuns(root, { logger: new MemoryLogger() });
    const cells = all.filter((r) => r.tags['milkit.level'] === 'cell').sort((a, b) => a.runName.localeCompare(b.runName));
    const baseline = cells.find((r) => r.runName === 'abmil');
    if (!baseline) throw new Error('seed failed');
    const { comparison, table } = await baselineCompareTable(cells, all, { baseline, bootstrapResamples: 0 });
    const differences = (aucs['abmil+cka'] ?? []).map((v, i) => v - (aucs.abmil?.[i] ?? 0));
    const expected = correctedResampledTTest({ differences, testTrainRatio: 8 / 32 });
    const row = comparison.rows.find((r) => !r.isBaseline);
    expect(row?.metrics[0]?.pairedFolds).toBe(5);
    expect(row?.metrics[0]?.tTest?.effect).toBeCloseTo(expected.effect, 14);
    expect(row?.metrics[0]?.tTest?.p).toBeCloseTo(expected.p as number, 14);
    expect(table.header).toEqual(['run', 'model.name', 'auc', 'Δ auc [CI]', 'p (Holm)', 'DeLong p', 'bootstrap p']);
    expect(table.rows[0]?.[2]).toMatch(/ \(baseline\)$/);
  });

  it('prints Δ, p, marks, DeLong and bootstrap p-values and the method note from the CLI', async () => {
    const result = await cli(['runs', 'compare', '--level', 'cell', '--baseline', (ids.abmil ?? '').slice(0, 10), '--bootstrap', '200', '--sort', 'name']);
    expect(result.code).toBe(0);
    const lines = result.out.split('\n');
    expect(lines[0]).toMatch(/^run +model\.name +auc +Δ auc \[CI\] +p \(Holm\) +DeLong p +bootstrap p$/);
    const cka = lines.find((l) => l.startsWith('abmil+cka')) ?? '';
    expect(cka).toMatch(/ [▲▼≈] +\+0\.\d{3} \[-?\d\.\d{3}, \d\.\d{3}\] \(5 folds\) +(<0\.001|\d\.\d{3}) +(<0\.001|\d\.\d{3}) +(<0\.001|\d\.\d{3})$/);
    expect(result.out).toContain('[^stats]: Δ = row − baseline. **Corrected resampled t-test**');
  });

  it('recomputes a coarse-level metric (coarse_auc) with the auc plugin on the coarse predictions: DeLong and bootstrap as for auc', async () => {
    rmSync(root, { recursive: true, force: true });
    await seed(true);
    // Asked alone: a plugin named coarse_auc does not exist, the auc plugin on the coarse predictions computes it.
    const compare = async (metric: string): Promise<string[]> => {
      const result = await cli(['runs', 'compare', '--level', 'cell', '--baseline', (ids.abmil ?? '').slice(0, 10), '--metrics', metric, '--bootstrap', '200', '--sort', 'name']);
      expect(result.err).toBe('');
      expect(result.code).toBe(0);
      const lines = result.out.split('\n');
      expect(lines[0]).toMatch(/^run +model\.name +(coarse_)?auc +Δ (coarse_)?auc \[CI\] +p \(Holm\) +DeLong p +bootstrap p$/);
      return (lines.find((l) => l.startsWith('abmil+cka')) ?? '').split(/ {2,}/).slice(2);
    };
    const fine = await compare('test/auc');
    const coarse = await compare('test/coarse_auc');
    // The coarse level mirrors the fine one (labels and probabilities swapped), so its value, Δ with the t-test's CI,
    // p and DeLong p are the fine ones (the bootstrap draws its own resamples). Without a plugin for the coarse level
    // its DeLong and bootstrap cells are empty.
    expect(coarse).toHaveLength(5);
    expect(coarse.slice(0, 4)).toEqual(fine.slice(0, 4));
    expect(coarse[3]).toMatch(/^(<0\.001|\d\.\d{3})$/);
    expect(coarse[4]).toMatch(/^(<0\.001|\d\.\d{3})$/);
  });

  it('names the run when the baseline matches none', async () => {
    const result = await cli(['runs', 'compare', '--level', 'cell', '--baseline', 'zzzz']);
    expect(result.code).not.toBe(0);
    expect(result.err).toContain('no run "zzzz"');
  });
});
