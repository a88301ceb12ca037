// `milkit weights export` of an HDMIL run: the LIPN pre-screener, trained in its own stage and kept only in that
// stage's checkpoint, is exported beside DMIN under its original keys (docs/methods/state-dict-keys.md#lipn) and
// loads with strict key checking into the reference network, giving milkit's eval-mode branch scores within 1e-5.
// Everywhere (CI has no torch): the export of the committed run test/fixtures/infer-hdmil-run is compared with
// what PyTorch made of it (test/reference/fixtures/lipn-export.json, from test/reference/lipn_export_fixture.py):
// the reference's keys, shapes, dtypes, the bytes it loaded, and its scores. Where /usr/bin/python3 has torch, a
// freshly trained run's export is also loaded live (test/reference/lipn_export_check.py).
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

/** The fixed thumbnails of test/reference/lipn_export_fixture.py: NHWC, value i = ((i · 7919) mod 1000) / 999. */
function fixtureThumbnails(shape: readonly number[]): Float32Array {
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i += 1) values[i] = Math.fround(((i * 7919) % 1000) / 999);
  return values;
}

/** milkit's eval-mode branch scores [n, C] of fold 0's pre-screener (its LIPN stage) on NHWC thumbnails. */
async function branchScores(run: string, values: Float32Array, n: number): Promise<Float32Array> {
  const trained = await loadTrainedRun(run, { registry: builtinRegistry(), cwd, env: {}, logger: silentLogger });
  try {
    const prescreener = trained.folds[0]?.model.prescreener;
    expect(prescreener?.branchScores).toBeDefined();
    return tf.tidy(() => (prescreener?.branchScores?.(tf.tensor4d(values, [n, 16, 16, 3]), { training: false, rng: new Rng(0) }) as tf.Tensor2D).dataSync() as Float32Array);
  } finally {
    trained.dispose();
  }
}

interface LipnFixture {
  readonly stage: string;
  readonly thumbnails: { readonly shape: number[] };
  readonly keys: ReadonlyArray<{ readonly key: string; readonly shape: number[]; readonly dtype: string; readonly sha256: string }>;
  readonly scoresShape: number[];
  readonly scores: number[];
}

const SAFETENSORS_DTYPE: Readonly<Record<string, string>> = { float32: 'F32', int64: 'I64' };

let cwd: string;
let runDir: string;
/** What the first test exported and scored, for the live torch check. */
let fresh: { readonly lipnFile: string; readonly values: Float32Array; readonly scores: Float32Array } | undefined;
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
  it('writes the LIPN stage\'s pre-screener under the documented original keys, shapes and dtypes', async () => {
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

    // milkit's eval-mode branch scores of the stage's LIPN on fixed thumbnails, for the live torch check below.
    const n = 5;
    const values = new Rng(3).uniformArray(n * 16 * 16 * 3, 0, 1);
    const scores = await branchScores(runDir, values, n);
    expect(scores.length).toBe(n * 2);
    fresh = { lipnFile, values, scores };
  }, 300_000);

  it.runIf(hasTorch)('PyTorch (live) loads the fresh export strictly and gives milkit\'s scores within 1e-5', () => {
    expect(fresh, 'the export test above must have run').toBeDefined();
    const { lipnFile, values, scores } = fresh as NonNullable<typeof fresh>;
    const n = values.length / (16 * 16 * 3);
    const thumbs = path.join(cwd, 'thumbs.json');
    writeFileSync(thumbs, JSON.stringify({ shape: [n, 16, 16, 3], values: Array.from(values) }));
    const torch = spawnSync(PYTHON, [path.join(REPO, 'test/reference/lipn_export_check.py'), lipnFile, thumbs, '2'], { cwd: path.join(REPO, 'test/reference'), encoding: 'utf8' });
    expect(torch.status, torch.stderr).toBe(0);
    const reference = JSON.parse(torch.stdout) as { keys: number; scores: number[]; shape: number[] };
    expect(reference.shape).toEqual([n, 2]);
    reference.scores.forEach((s, i) => expect(Math.abs(s - (scores[i] as number)), `score ${i}`).toBeLessThan(1e-5));
  }, 120_000);

  it('the committed run\'s export is what PyTorch loaded strictly for the fixture: keys, shapes, bytes, and milkit\'s scores equal its scores', async () => {
    const fixture = JSON.parse(readFileSync(path.join(REPO, 'test/reference/fixtures/lipn-export.json'), 'utf8')) as LipnFixture;
    const committed = path.join(cwd, 'infer-hdmil-run');
    cpSync(path.join(REPO, 'test/fixtures/infer-hdmil-run'), committed, { recursive: true });
    const exported = await runCli(['weights', 'export', committed, '-o', path.join(cwd, 'committed.torch.safetensors')], cwd);
    expect(exported.code, exported.err).toBe(0);
    const { tensors, metadata } = readSafetensors(new Uint8Array(readFileSync(path.join(cwd, 'committed.lipn.torch.safetensors'))));
    expect(metadata['milkit.stage']).toBe(fixture.stage);
    // The reference's state_dict after load_state_dict(strict=True): exactly these keys, shapes and dtypes...
    expect(Object.keys(tensors).sort()).toEqual(fixture.keys.map((k) => k.key).sort());
    for (const expected of fixture.keys) {
      const record = tensors[expected.key];
      expect(record?.shape, expected.key).toEqual(expected.shape);
      expect(record?.dtype, expected.key).toBe(SAFETENSORS_DTYPE[expected.dtype]);
      // ...and the very bytes it loaded (a transposed or reordered tensor keeps its shape but not its bytes).
      const bytes = new Uint8Array(record?.data.buffer as ArrayBuffer, record?.data.byteOffset, record?.data.byteLength);
      expect(createHash('sha256').update(bytes).digest('hex'), `${expected.key} bytes`).toBe(expected.sha256);
    }
    // On those weights PyTorch's eval-mode branch scores equal milkit's, from the run's own checkpoint.
    const n = fixture.thumbnails.shape[0] as number;
    expect(fixture.thumbnails.shape).toEqual([n, 16, 16, 3]);
    expect(fixture.scoresShape).toEqual([n, 2]);
    const scores = await branchScores(committed, fixtureThumbnails(fixture.thumbnails.shape), n);
    expect(scores.length).toBe(fixture.scores.length);
    fixture.scores.forEach((s, i) => expect(Math.abs(s - (scores[i] as number)), `score ${i}`).toBeLessThan(1e-5));
  }, 120_000);

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
