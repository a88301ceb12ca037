import { writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { QUICKSTART, REPO, TINY, runCli, tempDir } from './helpers.js';

describe('cli (end to end)', () => {
  it('runs the quickstart and prints per-fold and summary test metrics', async () => {
    const cwd = await tempDir();
    const run = await runCli(['run', QUICKSTART, ...TINY], cwd);
    expect(run.err).not.toMatch(/error/);
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/summary over 2 fold\(s\) \(mean ± sample std, ddof=1\):/);
    expect(run.out).toMatch(/test\/auc: \d\.\d{4} ± \d\.\d{4}/);
    expect(run.out).toMatch(/test\/accuracy: \d\.\d{4} ± \d\.\d{4}/);
    expect(run.err).toMatch(/^backend: cpu/m);
  });

  it('gives identical metrics for the same config and seed', async () => {
    const a = await runCli(['run', QUICKSTART, ...TINY, 'model/aggregator=max-pool', '+model.aggregator.projectDim=8'], await tempDir());
    const b = await runCli(['run', QUICKSTART, ...TINY, 'model/aggregator=max-pool', '+model.aggregator.projectDim=8'], await tempDir());
    const c = await runCli(['run', QUICKSTART, ...TINY, 'model/aggregator=max-pool', '+model.aggregator.projectDim=8', 'seed=1'], await tempDir());
    const table = (text: string): string => text.split('\n').filter((l) => /^\d\t/.test(l)).map((l) => l.split('\t').slice(0, 4).join('\t')).join('\n');
    expect(table(a.out)).not.toBe('');
    expect(table(a.out)).toBe(table(b.out));
    expect(table(a.out)).not.toBe(table(c.out));
  });

  it('--cfg prints the resolved config with group and key overrides applied', async () => {
    const run = await runCli(['run', QUICKSTART, 'model/aggregator=max-pool', 'train.epochs=3', '--cfg'], await tempDir());
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/aggregator:\n\s+name: max-pool/);
    expect(run.out).toMatch(/train:\n\s+epochs: 3/);
    expect(run.out).toMatch(/# overrides: model\/aggregator=max-pool train\.epochs=3/);
  });

  it.each([
    [['model.aggregator.bogus=1'], /model\.aggregator\.bogus/],
    [['train.optimizer.lr=abc'], /train\.optimizer\.lr: expected number > 0, got "abc" \(override train\.optimizer\.lr=abc\)/],
    [['model/aggregator=mean-pol'], /config group model\/aggregator has no option "mean-pol"\. Did you mean "mean-pool"\?/],
    [['+model.aggregator.projectDim=high'], /model\.aggregator\.projectDim: expected integer ≥ 0, got "high"/],
    [['train.epochs'], /train\.epochs/],
  ])('rejects %j with the key path, exit code ≠ 0 and no stack trace', async (overrides, message) => {
    const run = await runCli(['run', QUICKSTART, ...overrides], REPO);
    expect(run.code).not.toBe(0);
    expect(run.err).toMatch(message);
    expect(run.err).not.toMatch(/\n\s+at /);
  });

  it('runs an experiment with a user aggregator loaded from the config\'s plugins list', async () => {
    const dir = await tempDir('milkit-user-plugin-');
    await mkdir(path.join(dir, 'my-plugins'));
    const registryUrl = new URL('../../src/registry/index.ts', import.meta.url).href;
    const layersUrl = new URL('../../src/core/nn/layers.ts', import.meta.url).href;
    await writeFile(path.join(dir, 'my-plugins/index.ts'), `
      import * as tf from '@tensorflow/tfjs';
      import { z } from 'zod';
      import { definePlugin, Module } from '${registryUrl}';
      import { Linear } from '${layersUrl}';
      class SumPool extends Module {
        constructor(options, ctx) { super(); this.embeddingDim = options.width; this.fc = this.addModule('fc', new Linear(ctx.inputDim, options.width, ctx.rng)); }
        forward(bag) { return tf.tidy(() => ({ embedding: tf.sum(tf.relu(this.fc.forward(bag.features)), 0, true) })); }
      }
      export default { meta: { namespace: 'acme' }, plugins: [definePlugin({
        kind: 'aggregator', name: 'acme:sum-pool', summary: 'ReLU projection then sum',
        options: z.strictObject({ width: z.int().positive().default(8).describe('embedding width') }),
        capabilities: { permutationInvariant: true },
        create: (options, ctx) => new SumPool(options, ctx),
      })] };
    `);
    await writeFile(path.join(dir, 'exp.yaml'), [
      'name: user-plugin',
      'plugins: [./my-plugins/index.ts]',
      'data:',
      '  dataset: { name: synthetic-camelyon }',
      'model:',
      "  aggregator: { name: 'acme:sum-pool', width: 6 }",
      '  losses:',
      '    ce: { name: cross-entropy }',
      'split: { mode: kfold, folds: 2 }',
    ].join('\n'));
    const run = await runCli(['run', path.join(dir, 'exp.yaml'), ...TINY], dir);
    expect(run.err).not.toMatch(/error/);
    expect(run.code).toBe(0);
    const cfg = await runCli(['run', path.join(dir, 'exp.yaml'), '--cfg'], dir);
    expect(cfg.out).toMatch(/name: acme:sum-pool\n\s+width: 6/);
  });
});
