import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PluginError, ConfigError } from '../../src/core/errors.js';
import { DEFAULT_AGGREGATOR_CAPABILITIES, definePlugin, Registry, type AnyPluginDefinition } from '../../src/registry/index.js';
import { builtinRegistry } from '../helpers/registry.js';

const toyLoss = definePlugin({
  kind: 'loss',
  name: 'toy',
  summary: 'a test loss',
  options: z.strictObject({ scale: z.number().min(0).lt(1).default(0.5).describe('scale') }),
  capabilities: { requires: ['x'] },
  create: (options) => ({ compute: () => ({ scaleSeen: options.scale as never }) }),
});

describe('registry', () => {
  it('lists built-in plugins of a kind, sorted', () => {
    const names = builtinRegistry().names('aggregator');
    expect(names).toEqual([...names].sort());
    expect(names).toContain('mean-pool');
    expect(names).toContain('max-pool');
  });

  it('resolves a slot, filling defaults from the plugin schema', async () => {
    const resolved = await builtinRegistry().resolve('aggregator', { name: 'mean-pool', projectDim: 8 }, { key: 'model.aggregator' });
    expect(resolved.options).toEqual({ projectDim: 8, dropout: 0, level: 'embedding' });
    expect(resolved.definition.name).toBe('mean-pool');
  });

  it('accepts a bare name as a slot', async () => {
    const resolved = await builtinRegistry().resolve('classifier', 'linear', { key: 'model.classifier' });
    expect(resolved.options).toEqual({ init: 'torch-default', bias: true });
  });

  it('suggests the closest name and lists the registered ones for an unknown plugin', async () => {
    const registry = builtinRegistry();
    await expect(registry.resolve('aggregator', { name: 'mean-pol' }, { file: 'experiments/x.yaml', key: 'model.aggregator' })).rejects.toThrow(PluginError);
    await expect(registry.resolve('aggregator', { name: 'mean-pol' }, { file: 'experiments/x.yaml', key: 'model.aggregator' })).rejects.toThrow(
      /^experiments\/x\.yaml › model\.aggregator\.name: unknown aggregator "mean-pol"\. Did you mean "mean-pool"\? Registered: .*max-pool, .*mean-pool/,
    );
  });

  it('names the key path, the allowed range and the file for an invalid option value', async () => {
    const registry = new Registry();
    registry.register(toyLoss as unknown as AnyPluginDefinition, 'test');
    await expect(registry.resolve('loss', { name: 'toy', scale: 'high' }, { file: 'experiments/x.yaml', key: 'model.losses.main' })).rejects.toThrow(ConfigError);
    await expect(registry.resolve('loss', { name: 'toy', scale: 'high' }, { file: 'experiments/x.yaml', key: 'model.losses.main' })).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: model.losses.main.scale: expected number in [0,1), got "high" (experiments/x.yaml)]`,
    );
  });

  it('rejects an unknown option key with did-you-mean', async () => {
    await expect(builtinRegistry().resolve('aggregator', { name: 'mean-pool', projectdim: 4 }, { key: 'model.aggregator' })).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: model.aggregator.projectdim: unknown key (got 4). Allowed: projectDim, dropout, level. Did you mean "projectDim"?]`,
    );
  });

  it('refuses a duplicate id, naming both sources', () => {
    const registry = builtinRegistry();
    const dup = { ...toyLoss, kind: 'aggregator', name: 'mean-pool' } as unknown as AnyPluginDefinition;
    expect(() => registry.register(dup, './my-plugins.ts')).toThrow(/plugin "aggregator\/mean-pool" from \.\/my-plugins\.ts is already registered \(from the built-in manifest\)/);
  });

  it('describes options with types, defaults and descriptions from the schema', async () => {
    const d = await builtinRegistry().describe('aggregator/mean-pool');
    expect(d.options).toEqual([
      { key: 'projectDim', type: 'integer ≥0', default: 0, description: expect.stringContaining('projection'), required: false },
      { key: 'dropout', type: 'number ≥0 <1', default: 0, description: expect.stringContaining('dropout'), required: false },
      { key: 'level', type: expect.stringContaining('embedding'), default: 'embedding', description: expect.stringContaining('instance'), required: false },
    ]);
  });

  it('merges capabilities that depend on the options over the declared ones', async () => {
    const registry = builtinRegistry();
    const instance = await registry.resolve('aggregator', { name: 'mean-pool', level: 'instance' }, { key: 'model.aggregator' });
    const embedding = await registry.resolve('aggregator', { name: 'mean-pool' }, { key: 'model.aggregator' });
    expect(registry.capabilities(instance, DEFAULT_AGGREGATOR_CAPABILITIES)).toMatchObject({ ownsClassifier: true, permutationInvariant: true });
    expect(registry.capabilities(embedding, DEFAULT_AGGREGATOR_CAPABILITIES)).toMatchObject({ ownsClassifier: false, permutationInvariant: true });
  });

  it('merges declared capabilities over the kind defaults', async () => {
    const registry = new Registry();
    registry.register(toyLoss as unknown as AnyPluginDefinition, 'test');
    const resolved = await registry.resolve('loss', 'toy', { key: 'model.losses.x' });
    expect(registry.capabilities(resolved, { requires: [] })).toEqual({ requires: ['x'] });
  });

  it('loads user plugins from a file and a package-shaped export', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'milkit-plugins-'));
    const registryUrl = new URL('../../src/registry/index.ts', import.meta.url).href;
    await writeFile(path.join(dir, 'one.ts'), `
      import { z } from 'zod';
      import { definePlugin } from '${registryUrl}';
      export default definePlugin({ kind: 'metric', name: 'acme:ones', summary: 'always one', options: z.strictObject({}), capabilities: {}, create: () => ({ compute: () => ({ value: 1 }) }) });
    `);
    await writeFile(path.join(dir, 'pkg.ts'), `
      import { z } from 'zod';
      import { definePlugin } from '${registryUrl}';
      export default { meta: { namespace: 'acme' }, plugins: [definePlugin({ kind: 'metric', name: 'acme:zeros', summary: 'always zero', options: z.strictObject({}), capabilities: {}, create: () => ({ compute: () => ({ value: 0 }) }) })] };
    `);
    const registry = builtinRegistry();
    const added = await registry.loadUserPlugins(['./one.ts', './pkg.ts'], dir);
    expect(added).toEqual(['metric/acme:ones', 'metric/acme:zeros']);
    const resolved = await registry.resolve('metric', 'acme:zeros', { key: 'eval.metrics' });
    expect((registry.create(resolved, { numClasses: 2 }) as { compute: (i: unknown) => unknown }).compute({})).toEqual({ value: 0 });
  });

  it('reports a user plugin path that does not exist', async () => {
    await expect(builtinRegistry().loadUserPlugins(['./nope.ts'], tmpdir())).rejects.toThrow(/plugins: loading "\.\/nope\.ts" failed/);
  });
});
