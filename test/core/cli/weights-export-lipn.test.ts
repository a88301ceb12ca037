// `milkit weights export` of an HDMIL run: the LIPN pre-screener, trained in its own stage and kept only in that
// stage's checkpoint, is exported beside DMIN under its original keys (docs/methods/state-dict-keys.md#lipn) and
// loads with strict key checking into the reference network (test/reference/lipn_export_check.py), giving
// milkit's eval-mode branch scores within 1e-5. The torch part runs where /usr/bin/python3 has torch.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTrainedRun } from '../../../src/core/engine/predict.js';
import { silentLogger } from '../../../src/core/logger.js';
import { readSafetensors } from '../../../src/core/nn/safetensors.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { REPO, runCli } from '../../e2e/helpers.js';
import { builtinRegistry } from '../../helpers/registry.js';

const PYTHON = '/usr/bin/python3';
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
/** HDMIL's two stages (experiments/hdmil.yaml) at tiny widths and one epoch each. */
const TINY_HDMIL = [
  'name: tiny-hdmil', 'seed: 0', 'data:', '  dataset: { name: synthetic-camelyon, slides: 12, instances: [8, 12], featureDim: 12, signalDim: 2 }',
  'model:', '  aggregator: { name: dmin, hiddenDim: 8, attnDim: 6, kSample: 2 }', '  classifier: { name: cka, degree: 3 }', '  prescreener: { name: lipn }',
  '  losses:', '    ce: { name: cross-entropy, weight: 0.7 }', '    instance: { name: clam-instance, weight: 0.3 }', '    mse: { name: embedding-mse, weight: 0.5 }',
  '    kl: { name: logit-kl, weight: 0.5 }', '    rate: { name: keep-rate, target: 0.6, weight: 2 }',
  'train:', '  epochs: 1', '  optimizer: { name: adam, lr: 0.0003, weightDecay: 0.00001 }',
  'stages:', '  - name: dmin', '  - name: lipn', '    from: dmin', '    trains: [prescreener]', '    modes: { aggregator: train }',
  '    strategy: { name: gate-distillation }', '    losses: { ce: { name: cross-entropy } }', '    stream: prescreener',
  '    train: { epochs: 1, optimizer: { name: adam, lr: 0.0001, weightDecay: 0.00001 } }',
  'split: { mode: kfold, folds: 2, valFraction: 0.2 }', 'runtime: { backend: cpu }', 'tracking: { enabled: false }', 'eval: { metrics: [auc], bootstrap: 0 }',
].join('\n');

let cwd: string;
let runDir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  cwd = await mkdtemp(path.join(tmpdir(), 'milkit-export-lipn-'));
  writeFileSync(path.join(cwd, 'tiny-hdmil.yaml'), `${TINY_HDMIL}\n`);
  const run = await runCli(['run', path.join(cwd, 'tiny-hdmil.yaml'), '--folds', '0'], cwd);
  expect(run.code, run.err).toBe(0);
  const base = path.join(cwd, 'outputs', 'tiny-hdmil');
  runDir = path.join(base, readdirSync(base)[0] as string);
}, 300_000);
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

describe('milkit weights export of an HDMIL fold', () => {
  it('writes the LIPN stage\'s pre-screener under the original keys, and the reference loads it strictly with equal scores', async () => {
    const out = path.join(cwd, 'dmin.torch.safetensors');
    const exported = await runCli(['weights', 'export', runDir, '-o', out], cwd);
    expect(exported.code, exported.err).toBe(0);
    const lipnFile = path.join(cwd, 'dmin.lipn.torch.safetensors');
    expect(exported.out).toContain('dmin.lipn.torch.safetensors');
    expect(exported.err).not.toContain('left out'); // the pre-screener is no longer dropped
    const { tensors, metadata } = readSafetensors(new Uint8Array(readFileSync(lipnFile)));
    expect(metadata['milkit.stage']).toBe('lipn');
    expect(metadata['milkit.prescreener']).toBe('lipn');
    // The documented original keys (docs/methods/state-dict-keys.md#lipn): 87 entries, BatchNorm buffers included.
    const documented = [...readFileSync(path.join(REPO, 'docs/methods/state-dict-keys.md'), 'utf8').split('## LIPN')[1]?.matchAll(/^\| `(extractor\.[^`]+)` \| \[([^\]]*)\] \| (\w+) \|$/gm) ?? []];
    expect(documented.length).toBeGreaterThan(50);
    expect(Object.keys(tensors).sort()).toEqual(documented.map((m) => m[1]).sort());
    for (const [, key, shape, dtype] of documented) {
      expect(tensors[key as string]?.shape.join(', '), key).toBe(shape);
      expect(tensors[key as string]?.dtype, key).toBe(dtype === 'int64' ? 'I64' : 'F32');
    }

    // milkit's eval-mode branch scores of the stage's LIPN on fixed thumbnails.
    const registry = builtinRegistry();
    const run = await loadTrainedRun(runDir, { registry, cwd, env: {}, logger: silentLogger });
    const n = 5;
    const values = new Rng(3).uniformArray(n * 16 * 16 * 3, 0, 1);
    let milkit: Float32Array;
    try {
      const prescreener = run.folds[0]?.model.prescreener;
      expect(prescreener?.branchScores).toBeDefined();
      milkit = tf.tidy(() => (prescreener?.branchScores?.(tf.tensor4d(values, [n, 16, 16, 3]), { training: false, rng: new Rng(0) }) as tf.Tensor2D).dataSync() as Float32Array);
    } finally {
      run.dispose();
    }
    if (!hasTorch) return;
    const thumbs = path.join(cwd, 'thumbs.json');
    writeFileSync(thumbs, JSON.stringify({ shape: [n, 16, 16, 3], values: Array.from(values) }));
    const torch = spawnSync(PYTHON, [path.join(REPO, 'test/reference/lipn_export_check.py'), lipnFile, thumbs, '2'], { cwd: path.join(REPO, 'test/reference'), encoding: 'utf8' });
    expect(torch.status, torch.stderr).toBe(0);
    const reference = JSON.parse(torch.stdout) as { keys: number; scores: number[]; shape: number[] };
    expect(reference.shape).toEqual([n, 2]);
    reference.scores.forEach((s, i) => expect(Math.abs(s - (milkit[i] as number)), `score ${i}`).toBeLessThan(1e-5));
  }, 300_000);

  it('predict: the screened model gets class-wise heatmaps from the full pass (every patch scored)', async () => {
    const out = path.join(cwd, 'predict-hdmil');
    const result = await runCli(['predict', runDir, '--split', 'test', '--bootstrap', '0', '--heatmaps', '-o', out], cwd);
    expect(result.code, result.err).toBe(0);
    const files = readdirSync(path.join(out, 'heatmaps'));
    const slide = files.find((f) => f.endsWith('.scores.csv'))?.replace('.scores.csv', '') as string;
    expect(files).toEqual(expect.arrayContaining([`${slide}.heatmap.normal_tissue.png`, `${slide}.heatmap.tumor_tissue.png`, `${slide}.geojson`]));
    const [header, ...rows] = readFileSync(path.join(out, 'heatmaps', `${slide}.scores.csv`), 'utf8').trim().split('\n');
    expect(header).toBe('patch,x,y,patch_size,score,score_normal_tissue,score_tumor_tissue');
    expect(rows.length).toBeGreaterThanOrEqual(8); // every patch of the slide (8–12 instances), not only the kept ones
  }, 300_000);
});
