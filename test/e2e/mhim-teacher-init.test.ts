// The MHIM teacher starts as the earlier stage's selected checkpoint of the same fold: experiments/mhim/v1-abmil.yaml
// shrunk, with teacher rate m = 1 so the teacher never moves, and its saved teacher compared tensor by tensor with
// stage `baseline`'s selected weights.
import { readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/core/engine/checkpoint.js';
import { toFloat32 } from '../../src/core/nn/safetensors.js';
import { REPO, runCli, tempDir } from './helpers.js';

const TINY = [
  'runtime.backend=cpu', 'data.dataset.slides=16', 'data.dataset.instances=[20,40]', 'data.dataset.featureDim=16', 'data.dataset.thumbs=false',
  'train.epochs=2', 'split.folds=2', 'split.repeats=1', 'model.aggregator.projectDim=16', 'model.aggregator.attnDim=8', 'eval.bootstrap=0',
  'stages[1].strategy.momentum=1', 'tracking.enabled=false',
];

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('mhim teacher initialisation from the baseline stage', () => {
  it('equals the baseline stage\'s selected checkpoint', async () => {
    const cwd = await tempDir('milkit-mhim-init-');
    dirs.push(cwd);
    const args = ['cv', path.join(REPO, 'experiments/mhim/v1-abmil.yaml'), ...TINY, `output.dir=${path.join(cwd, 'out')}`];
    const first = await runCli(args, cwd);
    expect(first.code, first.err).toBe(0);
    const [hash] = readdirSync(path.join(cwd, 'out')).filter((name) => /^[0-9a-f]{8}$/.test(name));
    const fold0 = path.join(cwd, 'out', hash as string, 'fold-0');
    const baseline = await loadCheckpoint(path.join(fold0, 'stage-baseline', 'selected.ckpt'));
    const mhim = await loadCheckpoint(path.join(fold0, 'stage-mhim', 'selected.ckpt'));
    const studentKeys = Object.keys(baseline?.tensors ?? {}).filter((k) => k.startsWith('model/aggregator.') || k.startsWith('model/classifier.'));
    expect(studentKeys.length).toBeGreaterThan(0);
    for (const key of studentKeys) {
      const teacher = mhim?.tensors[key.replace('model/', 'model/strategy.teacher.')];
      expect(teacher, `teacher copy of ${key}`).toBeDefined();
      expect(Array.from(toFloat32(teacher as never)), key).toEqual(Array.from(toFloat32(baseline?.tensors[key] as never)));
    }
    // And the student moved away from it in the mhim stage (it trained).
    const moved = studentKeys.some((key) => Array.from(toFloat32(mhim?.tensors[key] as never)).join() !== Array.from(toFloat32(baseline?.tensors[key] as never)).join());
    expect(moved).toBe(true);

  }, 600_000);

  it('v1: the student starts from the baseline\'s projection only (lr 1e-30: steps below float32 resolution keep the starting weights)', async () => {
    const cwd = await tempDir('milkit-mhim-student-');
    dirs.push(cwd);
    const args = ['cv', path.join(REPO, 'experiments/mhim/v1-abmil.yaml'), ...TINY, '++stages[1].train.optimizer.lr=1e-30', `output.dir=${path.join(cwd, 'out')}`];
    const run = await runCli(args, cwd);
    expect(run.code, run.err).toBe(0);
    const [hash] = readdirSync(path.join(cwd, 'out')).filter((name) => /^[0-9a-f]{8}$/.test(name));
    const fold0 = path.join(cwd, 'out', hash as string, 'fold-0');
    const baseline = await loadCheckpoint(path.join(fold0, 'stage-baseline', 'selected.ckpt'));
    const mhim = await loadCheckpoint(path.join(fold0, 'stage-mhim', 'selected.ckpt'));
    const values = (checkpoint: typeof baseline, key: string): string => Array.from(toFloat32(checkpoint?.tensors[key] as never)).join();
    const studentKeys = Object.keys(baseline?.tensors ?? {}).filter((k) => k.startsWith('model/aggregator.') || k.startsWith('model/classifier.')).sort();
    const same = studentKeys.filter((key) => values(mhim, key) === values(baseline, key));
    expect(same).toEqual(['model/aggregator.feature_extractor_part2.0.bias', 'model/aggregator.feature_extractor_part2.0.weight']);
  }, 600_000);
});
