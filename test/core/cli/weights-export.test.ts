// `milkit weights export` of trained fold checkpoints: each zoo model trains one tiny fold through the CLI, is
// exported, and its logits on a fixed bag are compared with PyTorch's on the same weights — from the committed
// fixtures of test/reference/export_fixtures.py (training is seeded, so the export is the same every time), and,
// where torch is installed, by loading the fresh export live with strict=True.
// Regenerate the fixtures after a change that alters training numbers:
//   MILKIT_EXPORT_FIXTURES=/tmp/exports npx vitest run test/core/cli/weights-export.test.ts
//   /usr/bin/python3 test/reference/export_fixtures.py write /tmp/exports
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTrainedFold, locateFoldCheckpoint } from '../../../src/core/engine/export.js';
import type { MilModel } from '../../../src/core/engine/model.js';
import { isFloatDtype, readSafetensors, toFloat32, toInt32, type TensorRecord } from '../../../src/core/nn/safetensors.js';
import { importTorchState } from '../../../src/core/nn/state-dict.js';
import { REPO, runCli } from '../../e2e/helpers.js';
import { bagOf, buildModel, expectClose, FIXTURES, io, type PluginSpec } from '../../helpers/zoo.js';
import { builtinRegistry } from '../../helpers/registry.js';

const ZOO = path.join(REPO, 'experiments/zoo.yaml');
const QUICKSTART = path.join(REPO, 'experiments/quickstart.yaml');
/** DMIN as experiments/hdmil.yaml sets up its stage 1, at tiny widths and without the pre-screener stage. */
const TINY_DMIN = [
  'name: tiny-dmin',
  'seed: 0',
  'data:',
  '  dataset: { name: synthetic-camelyon }',
  'model:',
  '  aggregator: { name: dmin, hiddenDim: 8, attnDim: 6, kSample: 2 }',
  '  classifier: { name: cka, degree: 3 }',
  '  losses:',
  '    ce: { name: cross-entropy, weight: 0.7 }',
  '    instance: { name: clam-instance, weight: 0.3 }',
  '    mse: { name: embedding-mse, weight: 0.5 }',
  '    kl: { name: logit-kl, weight: 0.5 }',
  '    rate: { name: keep-rate, target: 0.6, weight: 2 }',
  'train:',
  '  optimizer: { name: adam, lr: 0.0003, weightDecay: 0.00001 }',
  'split: { mode: kfold, folds: 2, valFraction: 0.2 }',
  'eval: { metrics: [auc] }',
].join('\n');
const PYTHON = '/usr/bin/python3';
const REFERENCE = path.join(REPO, 'test/reference');
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const fixtureOut = process.env.MILKIT_EXPORT_FIXTURES;

/** One small fold on the cpu backend: 12 slides of 8–12 instances, 12 features, 2 epochs. */
const TINY = [
  'runtime.backend=cpu', 'data.dataset.slides=12', 'data.dataset.instances=[8,12]', 'data.dataset.featureDim=12',
  'data.dataset.signalDim=2', 'train.epochs=2', 'split.folds=2', 'tracking.enabled=false', 'eval.bootstrap=0', '--folds', '0',
];

/** The zoo recipes (experiments/groups/recipe/) with widths small enough for a tiny fold. */
const CASES: ReadonlyArray<{ readonly aggregator: string; readonly overrides: readonly string[]; readonly config?: string; readonly classifier?: string }> = [
  { aggregator: 'abmil', overrides: ['model.aggregator.projectDim=10', 'model.aggregator.attnDim=6'] },
  { aggregator: 'clam-sb', overrides: ['model.aggregator.hiddenDim=10', 'model.aggregator.attnDim=6', 'model.aggregator.kSample=2'] },
  { aggregator: 'clam-mb', overrides: ['model.aggregator.hiddenDim=10', 'model.aggregator.attnDim=6', 'model.aggregator.kSample=2'] },
  { aggregator: 'dsmil', overrides: ['model.aggregator.queryDim=5'] },
  { aggregator: 'transmil', overrides: ['model.aggregator.embedDim=16', 'model.aggregator.heads=2', 'model.aggregator.landmarks=4'] },
  // DTFD's recipe selects among the last 20% of epochs only; with two epochs, let both count.
  { aggregator: 'dtfd-mil', overrides: ['model.aggregator.embedDim=10', 'model.aggregator.attnDim=6', 'train.earlyStopping.minEpochsFraction=0.1'] },
  // HDMIL's stage-1 network (DMIN with CKA heads) alone, from tiny-dmin.yaml below: the pre-screener is a separate model.
  { aggregator: 'dmin', config: 'tiny-dmin.yaml', classifier: 'cka', overrides: [] },
];

let cwd: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  cwd = await mkdtemp(path.join(tmpdir(), 'milkit-weights-export-'));
  writeFileSync(path.join(cwd, 'tiny-dmin.yaml'), `${TINY_DMIN}\n`);
});
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

function readFile(file: string): { tensors: Readonly<Record<string, TensorRecord>>; metadata: Readonly<Record<string, string>> } {
  return readSafetensors(new Uint8Array(readFileSync(file)));
}

function onlyRunDir(name: string): string {
  const base = path.join(cwd, 'outputs', name);
  const hashes = readdirSync(base);
  expect(hashes).toHaveLength(1);
  return path.join(base, hashes[0] as string);
}

/** Eval-mode logits of a model on bag x; DTFD's pseudo-bags split the instances in order (as the reference does). */
function logitsOf(model: MilModel, x: { values: Float32Array; shape: number[] }): Float32Array {
  const features = tf.tensor2d(x.values, x.shape as [number, number]);
  const injected = { permutation: tf.range(0, x.shape[0] as number, 1, 'int32') };
  try {
    model.setTraining(false);
    const out = model.forward(bagOf(features), io(false, 0, injected));
    const values = out.logits.dataSync() as Float32Array;
    tf.dispose(out as unknown as tf.TensorContainer);
    return values;
  } finally {
    features.dispose();
    injected.permutation.dispose();
  }
}

function fixtureTensor(tensors: Readonly<Record<string, TensorRecord>>, key: string): { values: Float32Array; shape: number[] } {
  const record = tensors[key];
  if (!record) throw new Error(`fixture has no tensor "${key}"`);
  return { values: toFloat32(record), shape: [...record.shape] };
}

/** What the live torch check compares: each fresh export with milkit's logits on its fixture bag. */
const fresh: Array<{ aggregator: string; file: string; logits: Float32Array }> = [];

describe('milkit weights export of a trained fold', () => {
  for (const { aggregator, overrides, config, classifier } of CASES) {
    it(`${aggregator}: trains a fold, exports it under the original keys, and torch's logits match milkit's`, async () => {
      const run = await runCli(config ? ['run', path.join(cwd, config), ...overrides, ...TINY] : ['run', ZOO, `recipe=${aggregator}`, ...overrides, ...TINY], cwd);
      expect(run.code, run.err).toBe(0);
      const runDir = onlyRunDir(config ? path.basename(config, '.yaml') : `zoo-${aggregator}`);
      const out = path.join(cwd, 'exports', `${aggregator}.torch.safetensors`);
      mkdirSync(path.dirname(out), { recursive: true });
      const exported = await runCli(['weights', 'export', runDir, '-o', out], cwd);
      expect(exported.code, exported.err).toBe(0);
      // The fold's selected checkpoint: best.ckpt in the fold folder, or selected.ckpt in the last stage's folder.
      const located = await locateFoldCheckpoint(runDir, { cwd });
      const checkpoint = path.relative(runDir, located.file).split(path.sep).join('/');
      expect(checkpoint).toMatch(/^fold-0\/(stage-[^/]+\/selected|best)\.ckpt$/);
      expect(exported.out).toContain(`tensors of fold 0 (${path.relative(cwd, located.file)}`);
      if (fixtureOut) {
        mkdirSync(fixtureOut, { recursive: true });
        copyFileSync(out, path.join(fixtureOut, path.basename(out)));
      }

      const { tensors, metadata } = readFile(out);
      expect(metadata['milkit.fold']).toBe('0');
      expect(metadata['milkit.configHash']?.slice(0, 8)).toBe(path.basename(runDir));
      expect(JSON.parse(metadata['milkit.plugins'] ?? '{}')).toEqual({ aggregator, classifier: classifier ?? 'linear' });
      expect(metadata['milkit.version']).toMatch(/^\d+\.\d+\.\d+/);
      expect(metadata['milkit.inputDim']).toBe('12');
      expect(metadata['milkit.numClasses']).toBe('2');
      expect(metadata['milkit.checkpoint']).toBe(checkpoint);
      expect(Number(metadata['milkit.epoch'])).toBeGreaterThanOrEqual(0);

      const fixtureFile = path.join(FIXTURES, `export-${aggregator}.safetensors`);
      expect(existsSync(fixtureFile), `${fixtureFile} is missing; regenerate it (see the head of this file)`).toBe(true);
      const fixture = readFile(fixtureFile).tensors;
      const x = fixtureTensor(fixture, 'x');

      // milkit's side of the export: a fresh model loads it through the strict torch-key import...
      const spec = JSON.parse(metadata['milkit.aggregator'] ?? '{}') as PluginSpec;
      const imported = await buildModel({ inputDim: 12, numClasses: 2, aggregator: spec, classifier: JSON.parse(metadata['milkit.classifier'] ?? '{}') as PluginSpec });
      // ...and the run's own model straight from its checkpoint must give the very same logits.
      const trained = await loadTrainedFold(located, { registry: builtinRegistry(), cwd, env: {} });
      const torchLogits = fixtureTensor(fixture, 'logits64');
      try {
        // The fixture's weights (what torch loaded) give torch's logits in milkit, whatever training does.
        const weightKeys = Object.keys(fixture).filter((k) => k.startsWith('weights.')).map((k) => k.slice('weights.'.length));
        importTorchState(imported, Object.fromEntries(weightKeys.map((k) => [k, fixture[`weights.${k}`] as TensorRecord])), fixtureFile);
        expectClose(logitsOf(imported, x), torchLogits.values, `${aggregator}: milkit vs torch logits on the fixture's weights`, 1e-5, 0);

        importTorchState(imported, tensors, out);
        const logits = logitsOf(imported, x);
        expectClose(logitsOf(trained.model, x), logits, `${aggregator}: checkpoint vs export`, 1e-7, 0);
        fresh.push({ aggregator, file: out, logits });

        // Seeded training re-creates the weights the fixture's torch logits were computed on. If the engine's
        // training numbers change (random streams, optimiser), regenerate the fixtures (see the head of this file).
        expect(Object.keys(tensors).sort(), `${aggregator}: exported keys vs the fixture's`).toEqual(weightKeys.sort());
        for (const key of weightKeys) {
          const record = tensors[key] as TensorRecord;
          expect(record.dtype, key).toBe((fixture[`weights.${key}`] as TensorRecord).dtype);
          const expected = fixture[`weights.${key}`] as TensorRecord;
          if (!isFloatDtype(record.dtype)) expect(toInt32(record), key).toEqual(toInt32(expected)); // CLAM's instance_loss_fn.labels
          else expectClose(toFloat32(record), toFloat32(expected), `${aggregator} ${key}: the re-trained fold differs from the fixture's (training numbers changed? regenerate the fixtures)`, 1e-6, 0);
        }
        expect([1, logits.length]).toEqual(torchLogits.shape);
        expectClose(logits, torchLogits.values, `${aggregator}: milkit vs torch logits`, 1e-5, 0);
      } finally {
        imported.dispose();
        trained.model.dispose();
      }
    });
  }

  it.runIf(hasTorch)('torch loads every fresh export with strict=True and gives milkit\'s logits', () => {
    expect(fresh.map((f) => f.aggregator)).toEqual(CASES.map((c) => c.aggregator));
    const result = spawnSync(PYTHON, ['export_fixtures.py', 'check', ...fresh.map((f) => f.file)], { cwd: REFERENCE, encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    const torch = JSON.parse(result.stdout) as Record<string, number[][]>;
    for (const { aggregator, file, logits } of fresh) {
      expectClose(logits, (torch[file] as number[][]).flat(), `${aggregator}: milkit vs live torch logits`, 1e-5, 0);
    }
  });

  it('fails clearly: no checkpoint, a model without original key names, a config the registry cannot build', async () => {
    const abmilRun = onlyRunDir('zoo-abmil');
    mkdirSync(path.join(abmilRun, 'fold-7'));
    const noCheckpoint = await runCli(['weights', 'export', abmilRun, '--fold', '7'], cwd);
    expect(noCheckpoint.code).toBe(4);
    expect(noCheckpoint.err).toContain('[no-checkpoint]');
    expect(noCheckpoint.err).toContain('no checkpoint of fold 7 (looked for selected.ckpt, best.ckpt, last.ckpt)');
    const ambiguous = await runCli(['weights', 'export', abmilRun], cwd);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.err).toContain('the run has folds 0, 7; say which to export');
    rmSync(path.join(abmilRun, 'fold-7'), { recursive: true });

    const meanPool = await runCli(['run', QUICKSTART, ...TINY], cwd);
    expect(meanPool.code, meanPool.err).toBe(0);
    const noNames = await runCli(['weights', 'export', path.join(onlyRunDir('quickstart'), 'fold-0')], cwd);
    expect(noNames.code).toBe(3);
    expect(noNames.err).toContain('[no-torch-naming]: aggregator "mean-pool" has no original PyTorch implementation');
    expect(noNames.err).toMatch(/Export works for [^;]*abmil[^;]*dtfd-mil/);
    expect(noNames.err).not.toMatch(/Export works for [^;]*mean-pool/);

    const broken = path.join(cwd, 'broken-run');
    cpSync(abmilRun, broken, { recursive: true });
    const configFile = path.join(broken, 'config.resolved.yaml');
    writeFileSync(configFile, readFileSync(configFile, 'utf8').replace('name: abmil', 'name: abmil-v2'));
    const unbuildable = await runCli(['weights', 'export', broken, '-o', 'x.safetensors'], cwd);
    expect(unbuildable.code).toBe(3);
    expect(unbuildable.err).toContain('[unbuildable-config]');
    expect(unbuildable.err).toContain('cannot rebuild the run\'s model from its config');
    expect(unbuildable.err).toContain('abmil-v2');
  });

  it('finds the selected checkpoint in the stages layout: the last stage of the config, else the newest stage folder', async () => {
    const abmilRun = onlyRunDir('zoo-abmil');
    const staged = path.join(cwd, 'staged-run');
    cpSync(abmilRun, staged, { recursive: true });
    const fold = path.join(staged, 'fold-0');
    // Rebuild fold-0 in the stages layout from the run's selected checkpoint (whichever layout this engine wrote).
    const selected = (await locateFoldCheckpoint(staged, { cwd })).file;
    renameSync(selected, path.join(staged, 'selected.tmp'));
    rmSync(fold, { recursive: true });
    for (const stage of ['stage-warmup', 'stage-main']) mkdirSync(path.join(fold, stage), { recursive: true });
    copyFileSync(path.join(staged, 'selected.tmp'), path.join(fold, 'stage-warmup', 'last.ckpt'));
    renameSync(path.join(staged, 'selected.tmp'), path.join(fold, 'stage-main', 'selected.ckpt'));
    // No stages: in the config (this engine's schema), so the most recently written stage folder counts.
    utimesSync(path.join(fold, 'stage-warmup'), new Date(2020, 0, 1), new Date(2020, 0, 1));
    const byTime = await locateFoldCheckpoint(staged, { cwd });
    expect(byTime).toMatchObject({ fold: 0, stage: 'main', file: path.join(fold, 'stage-main', 'selected.ckpt') });
    // Without -o the export lands beside the checkpoint.
    const exported = await runCli(['weights', 'export', staged], cwd);
    expect(exported.code, exported.err).toBe(0);
    const defaultOut = path.join(fold, 'stage-main', 'abmil.fold-0.torch.safetensors');
    expect(exported.out).toContain(path.relative(cwd, defaultOut));
    expect(readFile(defaultOut).metadata).toMatchObject({ 'milkit.stage': 'main', 'milkit.checkpoint': 'fold-0/stage-main/selected.ckpt' });

    // A config that lists its stages decides the order, whatever the folders' times.
    const ordered = path.join(cwd, 'ordered-run');
    mkdirSync(path.join(ordered, 'fold-2', 'stage-b'), { recursive: true });
    mkdirSync(path.join(ordered, 'fold-2', 'stage-a'));
    writeFileSync(path.join(ordered, 'config.resolved.yaml'), 'stages:\n  - name: b\n  - name: a\n');
    writeFileSync(path.join(ordered, 'fold-2', 'stage-a', 'best.ckpt'), '');
    writeFileSync(path.join(ordered, 'fold-2', 'stage-b', 'last.ckpt'), '');
    utimesSync(path.join(ordered, 'fold-2', 'stage-a'), new Date(2020, 0, 1), new Date(2020, 0, 1));
    expect(await locateFoldCheckpoint(ordered, { cwd })).toMatchObject({ fold: 2, stage: 'a', file: path.join(ordered, 'fold-2', 'stage-a', 'best.ckpt') });
    expect(await locateFoldCheckpoint(path.join(ordered, 'fold-2', 'stage-b'), { cwd })).toMatchObject({ stage: 'b', file: path.join(ordered, 'fold-2', 'stage-b', 'last.ckpt') });
    await expect(locateFoldCheckpoint(path.join(ordered, 'fold-2'), { cwd, fold: 1 })).rejects.toThrow('--fold 1 contradicts');
  });
});
