// `milkit predict` on h5 feature folders: a cohort whose files name another extractor than the training cohort's
// is refused before any compute even at equal width (both names in the message); the same extractor, or files
// that record none, are scored. Also the feature-file identity reader on CLAM-style attributes.
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractorDifferences, readFeatureFileIdentity, recordedPatchSize } from '../../../src/core/data/feature-identity.js';
import { runCli } from '../../e2e/helpers.js';
import { writeH5Cohort as writeCohort } from '../../helpers/h5-cohort.js';

let cwd: string;

let runDir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  cwd = await mkdtemp(path.join(tmpdir(), 'milkit-predict-h5-'));
  await writeCohort(path.join(cwd, 'train'), 1, 'resnet50-trunc');
  writeFileSync(path.join(cwd, 'h5.yaml'), [
    'name: h5', 'seed: 0', 'data:', '  dataset: { name: features-h5, slideTable: train/slides.csv, featuresDir: train }',
    'model:', '  aggregator: { name: mean-pool }', '  classifier: { name: linear }', '  losses: { ce: { name: cross-entropy } }',
    'train: { epochs: 1, optimizer: { name: adam, lr: 0.01 } }', 'split: { mode: kfold, folds: 2, valFraction: 0.2 }',
    'runtime: { backend: cpu }', 'tracking: { enabled: false }', 'eval: { metrics: [auc], bootstrap: 0 }',
  ].join('\n'));
  const run = await runCli(['run', path.join(cwd, 'h5.yaml'), '--folds', '0'], cwd);
  expect(run.code, run.err).toBe(0);
  const base = path.join(cwd, 'outputs', 'h5');
  runDir = path.join(base, readdirSync(base)[0] as string);
}, 300_000);
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

describe('extractor identity of feature files', () => {
  it('reads root and coords attributes; differences are the extractor attributes both files have', async () => {
    await writeCohort(path.join(cwd, 'uni'), 2, 'uni-v1', 2);
    const a = await readFeatureFileIdentity(path.join(cwd, 'train', 's1-0.h5'));
    const b = await readFeatureFileIdentity(path.join(cwd, 'uni', 's2-0.h5'));
    expect(a?.root.extractor).toBe('resnet50-trunc');
    expect(a?.coords.patch_size).toBe('256');
    expect(recordedPatchSize(a as NonNullable<typeof a>)).toBe(256);
    expect(extractorDifferences(a as NonNullable<typeof a>, b as NonNullable<typeof b>)).toEqual([['extractor', 'resnet50-trunc', 'uni-v1']]);
    expect(await readFeatureFileIdentity(path.join(cwd, 'train', 'slides.csv'))).toBeUndefined();
  });

  it('refuses a cohort of another extractor at equal width, before any compute, naming both', async () => {
    const dir = path.join(cwd, 'other');
    await writeCohort(dir, 3, 'uni-v1');
    const out = path.join(cwd, 'predict-other');
    const result = await runCli(['predict', runDir, '--data', dir, '-o', out], cwd);
    expect(result.code).toBe(4);
    expect(result.err).toContain('uni-v1');
    expect(result.err).toContain('resnet50-trunc');
    expect(result.err).toContain('extractor');
  }, 120_000);

  it('scores a cohort of the same extractor, and one whose files record none', async () => {
    for (const [name, extractor] of [['same', 'resnet50-trunc'], ['unnamed', undefined]] as const) {
      const dir = path.join(cwd, name);
      await writeCohort(dir, 4, extractor, 6);
      const out = path.join(cwd, `predict-${name}`);
      const result = await runCli(['predict', runDir, '--data', dir, '--bootstrap', '0', '--heatmaps', '-o', out], cwd);
      expect(result.code, result.err).toBe(0);
      expect(result.out).toContain('6 slides');
    }
  }, 120_000);
});
