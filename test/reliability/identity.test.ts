// The saved config is a faithful, safe record of the run: data-file keys (featuresKey, coordsKey, thumbsKey) stay in
// clear, a secret reached through ${env:VAR} stays that expression (never its value), and config.resolved.yaml loaded
// again in the same environment gives the run's own config hash.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadExperiment } from '../../src/core/config/load.js';
import { builtinRegistry } from '../helpers/registry.js';
import { runCli, tempDir } from '../e2e/helpers.js';

const SECRET = 'tok-3f9a7c1e55d2';

describe('run identity: the saved config', () => {
  it('keeps data-file keys, writes env secrets back as ${env:…}, and re-resolves to the same hash', async () => {
    const cwd = await tempDir('milkit-identity-');
    const env = { LAB_API_TOKEN: SECRET };
    expect((await runCli(['data', 'export', 'synthetic-camelyon', '--out', 'features', '--set', 'slides=12', '--set', 'featureDim=8', '--set', 'instances=[10,20]'], cwd)).code).toBe(0);
    await writeFile(path.join(cwd, 'exp.yaml'), [
      'name: identity',
      'data:',
      '  dataset: { name: features-h5, slideTable: features/slides.csv, featuresDir: features/h5_files, featuresKey: features, coordsKey: coords }',
      'model: { aggregator: { name: mean-pool } }',
      'split: { mode: kfold, folds: 2, valFraction: 0.25 }',
      'train: { epochs: 1 }',
      'eval: { bootstrap: 0 }',
      'runtime: { backend: cpu }',
      // A secret used by the config: resolved at run time, never written out.
      'tracking: { experimentName: "lab-${env:LAB_API_TOKEN}" }',
      '',
    ].join('\n'));
    const run = await runCli(['run', 'exp.yaml'], cwd, env);
    expect(run.code, run.err).toBe(0);
    const [hashDir] = await readdir(path.join(cwd, 'outputs', 'identity'));
    const saved = path.join(cwd, 'outputs', 'identity', hashDir as string, 'config.resolved.yaml');
    const text = await readFile(saved, 'utf8');
    expect(text).not.toContain(SECRET);
    expect(text).toContain('experimentName: lab-${env:LAB_API_TOKEN}');
    expect(text).toMatch(/featuresKey: features\n/);
    expect(text).toMatch(/coordsKey: coords\n/);
    expect(text).not.toContain('[REDACTED]');
    const original = await loadExperiment('exp.yaml', [], { registry: builtinRegistry(), cwd, env, project: {} });
    const again = await loadExperiment(saved, [], { registry: builtinRegistry(), cwd, env, project: {} });
    expect(again.configHash).toBe(original.configHash);
    expect(again.config.tracking.experimentName).toBe(`lab-${SECRET}`);
    expect(hashDir).toBe(original.configHash.slice(0, 8));
  });
});
