// checkStages: every stage problem is found before compute, as a ConfigError naming the key and the fix.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadExperiment } from '../../../../src/core/config/load.js';
import { checkStages, foldMetrics, resolveStages, stageStreams } from '../../../../src/core/engine/stages.js';
import { Rng } from '../../../../src/core/runtime/random.js';
import { builtinRegistry } from '../../../helpers/registry.js';
import { REPO } from '../../../e2e/helpers.js';

const HDMIL = path.join(REPO, 'experiments/hdmil.yaml');

async function problems(overrides: readonly string[], file = HDMIL): Promise<Array<{ code: string; key: string | undefined; text: string }>> {
  const registry = builtinRegistry();
  const resolved = await loadExperiment(file, overrides, { registry, cwd: REPO, env: {} });
  const stages = await resolveStages(resolved, registry);
  return checkStages(resolved, stages, registry).map((e) => ({ code: e.code, key: e.where?.key, text: `${e.message} ${e.hint ?? ''}` }));
}

describe('checkStages', () => {
  it('accepts experiments/hdmil.yaml and resolves its stages (train: merged over the top level)', async () => {
    expect(await problems([])).toEqual([]);
    const registry = builtinRegistry();
    const resolved = await loadExperiment(HDMIL, ['train.gradClip=3'], { registry, cwd: REPO, env: {} });
    const [dmin, lipn] = await resolveStages(resolved, registry);
    expect(dmin?.train).toEqual(resolved.config.train);
    expect(lipn?.train.optimizer.lr).toBe(0.0001);
    expect(lipn?.train.gradClip).toBe(3); // not set by the stage: inherited
    expect(lipn?.trains).toEqual(['prescreener']);
    expect(lipn?.from).toEqual({ stage: 'dmin' });
    expect(lipn?.strategy.name).toBe('gate-distillation');
  });

  it('refuses an unknown or later `from` stage', async () => {
    expect(await problems(['stages[1].from=nope'])).toEqual([expect.objectContaining({ code: 'unknown-from-stage', key: 'stages[1].from' })]);
    const later = await problems(['stages[0].from=lipn']);
    expect(later[0]).toMatchObject({ code: 'unknown-from-stage', key: 'stages[0].from' });
    expect(later[0]?.text).toContain('runs after');
  });

  it('refuses parts that do not exist, naming why', async () => {
    const [problem] = await problems(['stages[1].trains=[prescreener,classifier]']);
    expect(problem).toMatchObject({ code: 'unknown-part', key: 'stages[1].trains' });
    expect(problem?.text).toContain('owns its classifier heads');
    expect((await problems(['+stages[1].modes.classifier=train']))[0]).toMatchObject({ code: 'unknown-part', key: 'stages[1].modes.classifier' });
  });

  it('checks strategy requirements: aggregator gates and a trained pre-screener', async () => {
    const noLipn = await problems(['model/prescreener=none']);
    expect(noLipn.map((p) => p.code)).toContain('strategy-requirement');
    expect(noLipn.find((p) => p.code === 'strategy-requirement')?.text).toContain('not trainable');
    const notTrained = await problems(['stages[1].trains=[aggregator]']);
    expect(notTrained[0]).toMatchObject({ code: 'strategy-requirement', key: 'stages[1].strategy' });
    expect(notTrained[0]?.text).toContain('Add prescreener to stages[1].trains');
    const abmil = await problems(['~model.aggregator', '+model.aggregator={name:abmil}', '~model.losses', '+model.losses={ce:{name:cross-entropy}}']);
    expect(abmil[0]).toMatchObject({ code: 'strategy-requirement', key: 'stages[1].strategy' });
    expect(abmil[0]?.text).toContain('capability gateLogits');
  });

  it('refuses views the dataset does not provide', async () => {
    const [problem] = await problems(['+stages[0].views=[raw]']);
    expect(problem).toMatchObject({ code: 'view-not-provided', key: 'stages[0].views' });
    expect(problem?.text).toContain('"raw"');
  });
});

describe('stage streams and fold metrics', () => {
  it('stage 1 uses the fold stream itself; later stages stage-<k>/<stream>-stage', () => {
    const fold = new Rng(0).fork('fold-1');
    const first = stageStreams(fold, { index: 0, stream: 'main' } as Parameters<typeof stageStreams>[1]);
    expect(first.epoch(2).seedLabel).toBe('0/fold-1/epoch-2');
    expect(first.test.seedLabel).toBe('0/fold-1/test');
    const second = stageStreams(fold, { index: 1, stream: 'prescreener' } as Parameters<typeof stageStreams>[1]);
    expect(second.epoch(2).seedLabel).toBe('0/fold-1/stage-2/prescreener-stage/prescreener-epoch-2');
  });

  it('reports the last stage plainly and earlier ones under <stage>_<metric>', () => {
    const test = (auc: number, kept?: number): Parameters<typeof foldMetrics>[0][number]['test'] => ({
      metrics: { auc: { value: auc } }, loss: 0.5, msPerSlide: 2, stageMs: { prescreen: 1, read: 0, aggregate: 1, total: 2 }, kept: kept === undefined ? {} : { prescreener: kept }, screened: kept !== undefined, predictions: [],
    });
    const base = { history: [], bestEpoch: 0, epochsRun: 1, stoppedEarly: false, trainMs: 10, reused: false };
    const metrics = foldMetrics([{ ...base, name: 'dmin', test: test(0.8) }, { ...base, name: 'lipn', test: test(0.7, 0.4) }]);
    expect(metrics.auc).toEqual({ value: 0.7 });
    expect(metrics.dmin_auc).toEqual({ value: 0.8 });
    expect(metrics.kept_prescreener).toEqual({ value: 0.4 });
    expect(metrics.time_total_ms).toEqual({ value: 2 });
    expect(metrics.time_lipn_ms).toEqual({ value: 10 });
    // One stage: exactly the metrics a run had before stages.
    expect(foldMetrics([{ ...base, name: 'main', test: test(0.9) }])).toEqual({ auc: { value: 0.9 } });
  });
});
