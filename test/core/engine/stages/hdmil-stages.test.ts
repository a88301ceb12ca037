// HDMIL on stages reproduces the pre-stages engine: the reduced experiments/hdmil.yaml run recorded before the
// move (test/fixtures/hdmil-baseline.json, `prescreenerTrain` stage) and the same run as stages dmin → lipn give
// the same fold metrics, per-epoch losses of both stages and selected epochs (up to float noise).
import { readFile, rm } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO, runCli, tempDir } from '../../../e2e/helpers.js';

interface BaselineFold {
  fold: number;
  auc: number;
  accuracy: number;
  all_auc: number;
  all_accuracy: number;
  kept_prescreener: number;
  all_kept_aggregator: number;
  instance_auc: number;
  dmin: { bestEpoch: number; trainLoss: number[]; valLoss: number[] };
  lipn: { bestEpoch: number; trainLoss: number[]; valLoss: number[]; valKept: number[] };
}

interface FoldMetricsFile {
  metrics: Record<string, { value: number | null }>;
  instanceAuc?: { value: number | null };
  stages: Record<string, { bestEpoch: number; history: Array<{ metrics: Record<string, number | null> }> }>;
}

const TOLERANCE = 1e-6;

function expectNear(actual: number | null | undefined, expected: number, what: string): void {
  expect(actual, what).not.toBeNull();
  expect(Math.abs((actual as number) - expected), `${what}: ${actual} vs ${expected}`).toBeLessThanOrEqual(TOLERANCE * Math.max(1, Math.abs(expected)));
}

let cwd: string | undefined;
afterAll(async () => {
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

describe('HDMIL on stages', () => {
  it('matches the recorded pre-stages baseline fold by fold', async () => {
    const baseline = JSON.parse(await readFile(path.join(REPO, 'test/fixtures/hdmil-baseline.json'), 'utf8')) as { overrides: string[]; folds: BaselineFold[] };
    // The old stage-2 key maps onto the lipn stage's train: settings.
    const overrides = baseline.overrides.map((o) => o.replace(/^prescreenerTrain\./, 'stages[1].train.'));
    cwd = await tempDir('milkit-hdmil-stages-');
    const run = await runCli(['cv', path.join(REPO, 'experiments/hdmil.yaml'), ...overrides, `output.dir=${path.join(cwd, 'out')}`], cwd);
    expect(run.code, run.err).toBe(0);
    const outDir = path.join(cwd, 'out', readdirSync(path.join(cwd, 'out'))[0] as string);
    for (const expected of baseline.folds) {
      const got = JSON.parse(await readFile(path.join(outDir, `fold-${expected.fold}`, 'metrics.json'), 'utf8')) as FoldMetricsFile;
      const m = (key: string): number | null | undefined => got.metrics[key]?.value;
      const label = `fold ${expected.fold}`;
      // HDMIL (screened pipeline) is the last stage's test; HDMIL† (DMIN on all instances) is stage dmin's.
      expectNear(m('auc'), expected.auc, `${label} auc`);
      expectNear(m('accuracy'), expected.accuracy, `${label} accuracy`);
      expectNear(m('kept_prescreener'), expected.kept_prescreener, `${label} kept_prescreener`);
      expectNear(m('dmin_auc'), expected.all_auc, `${label} dmin_auc`);
      expectNear(m('dmin_accuracy'), expected.all_accuracy, `${label} dmin_accuracy`);
      expectNear(m('dmin_kept_aggregator'), expected.all_kept_aggregator, `${label} dmin_kept_aggregator`);
      expectNear(got.instanceAuc?.value, expected.instance_auc, `${label} instance_auc`);
      const dmin = got.stages.dmin as FoldMetricsFile['stages'][string];
      const lipn = got.stages.lipn as FoldMetricsFile['stages'][string];
      expect(dmin.bestEpoch, `${label} dmin best epoch`).toBe(expected.dmin.bestEpoch);
      expect(lipn.bestEpoch, `${label} lipn best epoch`).toBe(expected.lipn.bestEpoch);
      expect(dmin.history).toHaveLength(expected.dmin.valLoss.length);
      expect(lipn.history).toHaveLength(expected.lipn.valLoss.length);
      expected.dmin.trainLoss.forEach((v, e) => expectNear(dmin.history[e]?.metrics['train/loss'], v, `${label} dmin train/loss epoch ${e}`));
      expected.dmin.valLoss.forEach((v, e) => expectNear(dmin.history[e]?.metrics['val/loss'], v, `${label} dmin val/loss epoch ${e}`));
      expected.lipn.trainLoss.forEach((v, e) => expectNear(lipn.history[e]?.metrics['train/loss'], v, `${label} lipn train/loss epoch ${e}`));
      // Old: host float64 cross-entropy of the screened pipeline; new: the stage's cross-entropy loss (float32).
      expected.lipn.valLoss.forEach((v, e) => expectNear(lipn.history[e]?.metrics['val/loss'], v, `${label} lipn val/loss epoch ${e}`));
    }
  }, 900_000);

  it('refuses an old config with prescreenerTrain (exit 2) and shows the stages form', async () => {
    cwd ??= await tempDir('milkit-hdmil-stages-');
    const run = await runCli(['cv', path.join(REPO, 'experiments/hdmil.yaml'), '+prescreenerTrain.epochs=3', 'tracking.enabled=false'], cwd);
    expect(run.code).toBe(2);
    expect(run.err).toContain('prescreenerTrain was replaced by stages:');
    expect(run.err).toContain('strategy: { name: gate-distillation }');
    expect(run.err).toContain('trains: [prescreener]');
  });
});
