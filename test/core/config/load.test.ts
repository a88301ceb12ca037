import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { ConfigError, PluginError } from '../../../src/core/errors.js';
import { canonicalJson } from '../../../src/core/config/tree.js';
import { composeExperiment, experimentGroupOptions, loadExperiment, type LoadOptions, type ResolvedSlots } from '../../../src/core/config/load.js';
import { hashInput, MILKIT_HASH_VERSION } from '../../../src/core/config/hash.js';
import { tmpTree } from './tmp-tree.js';
import { testRegistry } from './test-registry.js';
import { builtinRegistry } from '../../helpers/registry.js';

const X = [
  '# a small experiment',
  'defaults:',
  '  - model/aggregator: mean-pool',
  '  - _self_',
  'name: x',
  'data:',
  '  dataset: { name: toy-bags, slides: 12 }',
  'model:',
  '  aggregator: { projectDim: 4 }',
  'train:',
  '  epochs: 3',
  '',
].join('\n');

async function load(files: Record<string, string>, overrides: string[] = [], file = 'experiments/x.yaml', options: Partial<LoadOptions> = {}) {
  const cwd = await tmpTree(files);
  return loadExperiment(file, overrides, { registry: testRegistry(), cwd, env: {}, project: {}, ...options });
}

/** The options schema of each slot's plugin, as loadExperiment hands them to the hash. */
function pluginOptionsOf(slots: ResolvedSlots): (slotKey: string) => z.ZodType | undefined {
  const bySlot: Record<string, { definition: { options: z.ZodType } }> = {
    'model.aggregator': slots.aggregator,
    'model.classifier': slots.classifier,
    'model.prescreener': slots.prescreener,
    'data.dataset': slots.dataset,
    ...Object.fromEntries(Object.entries(slots.losses).map(([slot, loss]) => [`model.losses.${slot}`, loss])),
  };
  return (slotKey) => bySlot[slotKey]?.definition.options;
}

describe('loadExperiment', () => {
  it('composes, fills schema and plugin defaults, and resolves every slot', async () => {
    const resolved = await load({ 'experiments/x.yaml': X });
    expect(resolved.file).toBe('experiments/x.yaml');
    expect(path.basename(resolved.baseDir)).toBe('experiments');
    expect(resolved.config.model).toEqual({
      aggregator: { name: 'mean-pool', projectDim: 4, dropout: 0, level: 'embedding' },
      classifier: { name: 'linear', init: 'torch-default', bias: true },
      prescreener: { name: 'none' },
      encoder: { name: 'none' },
      losses: { ce: { name: 'cross-entropy', weight: 1, ...resolved.slots.losses.ce?.options } },
    });
    expect(resolved.config.data.dataset).toEqual({ name: 'toy-bags', slides: 12, featureDim: 8 });
    expect(resolved.config.train.epochs).toBe(3);
    expect(resolved.config.seed).toBe(0);
    expect(resolved.slots.aggregator).toMatchObject({ kind: 'aggregator', name: 'mean-pool', options: { projectDim: 4, dropout: 0 } });
    expect(resolved.slots.dataset.options).toEqual({ slides: 12, featureDim: 8 });
    expect(resolved.slots.losses.ce).toMatchObject({ kind: 'loss', name: 'cross-entropy', weight: 1 });
    expect(resolved.slots.metrics.map((m) => m.name)).toEqual(['auc', 'accuracy']);
    expect(resolved.choices).toEqual({ 'model/aggregator': 'mean-pool' });
    expect(resolved.sources.data).toBe('experiments/x.yaml');
  });

  it('hashes the canonical JSON of the non-default values, so key order does not matter and any change does', async () => {
    const a = await load({ 'experiments/x.yaml': X });
    const payload = { milkitHashVersion: MILKIT_HASH_VERSION, config: hashInput(a.config, { pluginOptions: pluginOptionsOf(a.slots) }) };
    expect(a.configHash).toBe(createHash('sha256').update(canonicalJson(payload)).digest('hex'));
    // Where results go is not what they are: output and tracking settings leave the hash (and sweep job ids) alone.
    const moved = await load({ 'experiments/x.yaml': X }, ['output.dir=/elsewhere', 'tracking.enabled=false']);
    expect(moved.config.output.dir).toBe('/elsewhere');
    expect(moved.configHash).toBe(a.configHash);
    const reordered = await load({ 'experiments/x.yaml': 'train: {epochs: 3}\nmodel: {aggregator: {projectDim: 4, name: mean-pool}}\ndata: {dataset: {slides: 12, name: toy-bags}}\nname: x\n' });
    expect(reordered.configHash).toBe(a.configHash);
    const changed = await load({ 'experiments/x.yaml': X }, ['train.epochs=4']);
    expect(changed.configHash).not.toBe(a.configHash);
    // Spelling out a default gives the same config, hence the same hash.
    const explicit = await load({ 'experiments/x.yaml': X }, ['model.aggregator.dropout=0']);
    expect(explicit.configHash).toBe(a.configHash);
  });

  it('deep-freezes the config and the slots\' options', async () => {
    const resolved = await load({ 'experiments/x.yaml': X });
    expect(Object.isFrozen(resolved.config)).toBe(true);
    expect(Object.isFrozen(resolved.config.model.aggregator)).toBe(true);
    expect(Object.isFrozen(resolved.slots.aggregator.options)).toBe(true);
    expect(() => {
      (resolved.config.train as { epochs: number }).epochs = 9;
    }).toThrow(TypeError);
  });

  it('writes YAML that loads back to the same config and hash', async () => {
    const resolved = await load({ 'experiments/x.yaml': X }, ['train.epochs=5']);
    const yaml = resolved.toYaml();
    expect(yaml).toContain('# overrides: train.epochs=5');
    expect(yaml).toContain(`# configHash: ${resolved.configHash}`);
    expect(parseYaml(yaml)).toEqual(resolved.config);
    const again = await load({ 'experiments/saved.yaml': yaml }, [], 'experiments/saved.yaml');
    expect(again.configHash).toBe(resolved.configHash);
  });

  it('applies group and key overrides from the command line', async () => {
    const resolved = await load({ 'experiments/x.yaml': X }, ['model/aggregator=max-pool', 'train.epochs=7', 'model.aggregator.dropout=0.5']);
    expect(resolved.config.model.aggregator).toEqual({ name: 'max-pool', projectDim: 4, dropout: 0.5, level: 'embedding' });
    expect(resolved.config.train.epochs).toBe(7);
    expect(resolved.overrides).toEqual(['model/aggregator=max-pool', 'train.epochs=7', 'model.aggregator.dropout=0.5']);
  });

  it('lets key=value set schema keys the file does not mention', async () => {
    const resolved = await load({ 'experiments/x.yaml': X }, ['train.optimizer.lr=0.01', 'split.folds=3']);
    expect(resolved.config.train.optimizer.lr).toBe(0.01);
    expect(resolved.config.split.folds).toBe(3);
  });

  it('loads a TS config written with defineExperiment', async () => {
    const helper = path.resolve('src/core/config/define-experiment.ts');
    const resolved = await load({
      'experiments/x.ts': [
        `import { defineExperiment } from ${JSON.stringify(helper)};`,
        'export default defineExperiment({',
        '  defaults: [{ "model/aggregator": "max-pool" }, "_self_"],',
        '  name: "from-ts",',
        '  data: { dataset: { name: "toy-bags" } },',
        '  train: { epochs: 2 * 3 },',
        '});',
        '',
      ].join('\n'),
    }, ['seed=4'], 'experiments/x.ts');
    expect(resolved.config.name).toBe('from-ts');
    expect(resolved.config.train.epochs).toBe(6);
    expect(resolved.config.seed).toBe(4);
    expect(resolved.config.model.aggregator.name).toBe('max-pool');
  });

  it('loads the user plugins listed under plugins:, relative to the config, once per registry', async () => {
    const registryPath = path.resolve('src/registry/index.ts');
    const files = {
      'experiments/my-plugins/index.ts': [
        `import { definePlugin } from ${JSON.stringify(registryPath)};`,
        'import { z } from "zod";',
        'export default definePlugin({ kind: "aggregator", name: "acme:first-instance", summary: "takes the first instance",',
        '  options: z.strictObject({ index: z.int().min(0).default(0).describe("which instance") }), capabilities: {},',
        '  create: () => { throw new Error("not used"); } });',
        '',
      ].join('\n'),
      'experiments/x.yaml': `${X}plugins: ['./my-plugins/index.ts']\n`,
    };
    const cwd = await tmpTree(files);
    const registry = testRegistry();
    const first = await loadExperiment('experiments/x.yaml', ['model.aggregator={name: "acme:first-instance", index: 2}', '~model.aggregator.projectDim'], { registry, cwd, env: {}, project: {} });
    expect(first.slots.aggregator).toMatchObject({ name: 'acme:first-instance', options: { index: 2 } });
    // A second experiment (a sweep cell) on the same registry does not register the plugin twice.
    const second = await loadExperiment('experiments/x.yaml', ['model/aggregator=acme:first-instance', '~model.aggregator.projectDim'], { registry, cwd, env: {}, project: {} });
    expect(second.config.model.aggregator).toEqual({ name: 'acme:first-instance', index: 0 });
  });

  it('merges project settings under the experiment: plugins, tracking defaults, search path', async () => {
    const cwd = await tmpTree({
      'shared/model/aggregator/noisy.yaml': 'name: mean-pool\ndropout: 0.3\n',
      'experiments/x.yaml': `${X}tracking: { experimentName: mine }\n`,
    });
    const resolved = await loadExperiment('experiments/x.yaml', ['model/aggregator=noisy'], {
      registry: testRegistry(), cwd, env: {},
      project: { searchPath: [path.join(cwd, 'shared')], tracking: { uri: 'http://mlflow:5000', experimentName: 'project-default' } },
    });
    expect(resolved.config.model.aggregator).toEqual({ name: 'mean-pool', projectDim: 4, dropout: 0.3, level: 'embedding' });
    expect(resolved.config.tracking).toMatchObject({ uri: 'http://mlflow:5000', experimentName: 'mine' });
  });

  it('treats every registered plugin as an option of its slot group, also for named loss slots', async () => {
    const resolved = await load({ 'experiments/x.yaml': X }, ['+model/classifier=linear', '+model/losses/extra=cross-entropy', 'model.losses.extra.weight=0.5']);
    expect(resolved.choices).toMatchObject({ 'model/classifier': 'linear', 'model/losses/extra': 'cross-entropy' });
    expect(resolved.slots.losses.extra).toMatchObject({ name: 'cross-entropy', weight: 0.5 });
    const cwd = await tmpTree({ 'experiments/x.yaml': X, 'experiments/model/aggregator/wide.yaml': 'name: mean-pool\nprojectDim: 64\n' });
    expect(await experimentGroupOptions('experiments/x.yaml', 'model/aggregator', { registry: testRegistry(), cwd, project: {} })).toEqual(['max-pool', 'mean-pool', 'wide']);
    expect(await experimentGroupOptions('experiments/x.yaml', 'model/aggregator', { cwd, project: {} })).toEqual(['wide']);
  });

  it('composeExperiment returns the composed object before validation', async () => {
    const cwd = await tmpTree({ 'experiments/x.yaml': X });
    const composed = await composeExperiment('experiments/x.yaml', ['train.epochs=9'], { cwd, env: {}, project: {}, registry: testRegistry() });
    expect(composed).toEqual({
      name: 'x', data: { dataset: { name: 'toy-bags', slides: 12 } }, model: { aggregator: { name: 'mean-pool', projectDim: 4 } }, train: { epochs: 9 },
    });
  });
});

describe('loadExperiment: error messages', () => {
  it('names key path, allowed range, given value and file for an invalid option value', async () => {
    const files = { 'experiments/x.yaml': X.replace('{ projectDim: 4 }', '{ projectDim: 4, dropout: high }') };
    await expect(load(files)).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: model.aggregator.dropout: expected number in [0,1), got "high" (experiments/x.yaml)]`,
    );
  });

  it('names the group file that set the bad value', async () => {
    await expect(load({
      'experiments/model/aggregator/noisy.yaml': 'name: mean-pool\ndropout: 1.5\n',
      'experiments/x.yaml': X,
    }, ['model/aggregator=noisy'])).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: model.aggregator.dropout: expected number in [0,1), got 1.5 (experiments/model/aggregator/noisy.yaml)]`,
    );
  });

  it('names the override that set the bad value', async () => {
    await expect(load({ 'experiments/x.yaml': X }, ['model.aggregator.dropout=high'])).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: model.aggregator.dropout: expected number in [0,1), got "high" (override model.aggregator.dropout=high)]`,
    );
    await expect(load({ 'experiments/x.yaml': X }, ['train.optimizer.lr=abc'])).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: train.optimizer.lr: expected number > 0, got "abc" (override train.optimizer.lr=abc)]`,
    );
  });

  it('suggests a plugin slot group for a misspelt group, listing each group once with relative paths', async () => {
    const error = await load({
      'experiments/x.yaml': X,
      'experiments/groups/recipe/a.yaml': 'name: x\n',
      'experiments/data/small.yaml': 'dataset: { name: toy-bags, slides: 12 }\n',
    }, ['modle/aggregator=mean-pool']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    const text = (error as ConfigError).render();
    expect(text).toContain('no config group "modle/aggregator". Did you mean "model/aggregator"?');
    const groups = /Groups: ([^.]*)\./.exec(text)?.[1]?.split(', ');
    expect(groups).toEqual(['data', 'data/dataset', 'model/aggregator', 'model/classifier', 'model/encoder', 'model/losses/<name>', 'model/prescreener', 'recipe']);
    expect(text).toContain('Searched: experiments/, experiments/groups/.');
  });

  it('explains a bare plugin name in a slot and options carried over from another plugin', async () => {
    const bare = await load({ 'experiments/x.yaml': X }, ['model.aggregator=max-pool']).catch((e: unknown) => e);
    expect((bare as ConfigError).render()).toBe(
      'model.aggregator: expected a mapping, got "max-pool" (override model.aggregator=max-pool) A plugin slot is a mapping {name, ...options}; choose the plugin with the group form model/aggregator=max-pool (+model/aggregator=max-pool when the defaults list has no model/aggregator entry).',
    );
    // The shipped HDMIL experiment sets DMIN's options; choosing ABMIL keeps them (mappings merge).
    const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
    const carried = await loadExperiment('experiments/hdmil.yaml', ['+model/aggregator=abmil'], { registry: builtinRegistry(), cwd: repo, env: {}, project: {} }).catch((e: unknown) => e);
    expect(carried).toBeInstanceOf(ConfigError);
    expect((carried as ConfigError).hint).toBe(
      '"abmil" was chosen by registered plugin (no file) model/aggregator/abmil, but kSample, subtyping, selfDistill came from experiments/hdmil.yaml, written for another plugin: options stay when the plugin changes. Start the slot afresh: \'~model.aggregator\' \'model.aggregator={name: abmil}\'.',
    );
    const afresh = await loadExperiment('experiments/hdmil.yaml', ['~model.aggregator', 'model.aggregator={name: abmil}'], { registry: builtinRegistry(), cwd: repo, env: {}, project: {} });
    expect(afresh.slots.aggregator.name).toBe('abmil');
  });

  it('blames the delete override for a slot it left missing', async () => {
    await expect(load({ 'experiments/x.yaml': X }, ['~model.aggregator'])).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: model.aggregator: required (a mapping), but missing (override ~model.aggregator)]`,
    );
  });

  it('says a string must not be empty', async () => {
    await expect(load({ 'experiments/x.yaml': X }, ['name='])).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: name: expected a non-empty string, got "" (override name=)]`,
    );
  });

  it('rejects an unknown option key with did-you-mean and the allowed keys', async () => {
    await expect(load({ 'experiments/x.yaml': X }, ['model.aggregator.bogus=1'])).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: model.aggregator.bogus: unknown key (got 1). Allowed: projectDim, dropout, level (override model.aggregator.bogus=1)]`,
    );
    await expect(load({ 'experiments/x.yaml': X.replace('{ projectDim: 4 }', '{ projectdim: 4 }') })).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: model.aggregator.projectdim: unknown key (got 4). Allowed: projectDim, dropout, level. Did you mean "projectDim"? (experiments/x.yaml)]`,
    );
  });

  it('rejects an unknown experiment key, naming the allowed ones', async () => {
    await expect(load({ 'experiments/x.yaml': `${X}trian: {epochs: 2}\n` })).rejects.toThrow(
      'trian: unknown key (got {"epochs":2}). Allowed: name, seed, plugins, data, model, train, stages, prescreenerTrain, split, eval, tracking, runtime, output. Did you mean "train"? (experiments/x.yaml)',
    );
  });

  it('suggests the right key for key=value on a key that does not exist', async () => {
    await expect(load({ 'experiments/x.yaml': X }, ['train.lr=abc'])).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: train.lr: no such key in the composed config or the experiment schema (got "abc" from override train.lr=abc). Did you mean "train.optimizer.lr"?]`,
    );
  });

  it('rejects an unknown plugin name with did-you-mean and the registered names', async () => {
    const error = await load({ 'experiments/x.yaml': X }, ['model.aggregator.name=mean-pol']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PluginError);
    expect((error as Error).message).toMatchInlineSnapshot(
      `"override model.aggregator.name=mean-pol › model.aggregator.name: unknown aggregator "mean-pol". Did you mean "mean-pool"? Registered: max-pool, mean-pool."`,
    );
    await expect(load({ 'experiments/x.yaml': X }, ['eval.metrics=[auc,acuracy]'])).rejects.toThrowErrorMatchingInlineSnapshot(
      `[PluginError: override eval.metrics=[auc,acuracy] › eval.metrics.1: unknown metric "acuracy". Did you mean "accuracy"? Registered: accuracy, auc.]`,
    );
  });

  it('rejects an unknown option of a slot group with did-you-mean', async () => {
    await expect(load({ 'experiments/x.yaml': X }, ['model/aggregator=max-pol'])).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: override model/aggregator=max-pol: config group model/aggregator has no option "max-pol". Did you mean "max-pool"? Options: max-pool, mean-pool.]`,
    );
  });

  it('rejects bad override syntax before reading anything', async () => {
    await expect(load({ 'experiments/x.yaml': X }, ['train.epochs=[3'])).rejects.toThrowErrorMatchingInlineSnapshot(`
      [ConfigError: bad override "train.epochs=[3": expected "," or "]" in the list at the end.
        train.epochs=[3
                       ^
      Accepted forms: key=value, +key=value (add a key), ++key=value (add or replace), ~key or ~key=value (delete),
        group=option (e.g. model/aggregator=max-pool), +group=option (add a group), ~group (drop a group).
        Values: 3, 1e-4, true, null, text, 'quoted text', [a,b], {k: v}; key= sets the empty string.
        Sweeps: a,b,c · choice(a,b) · range(start,stop[,step]) · glob(pattern). Escape ()[]{}:=, and spaces with \\ or quote the value.]
    `);
  });

  it('rejects group=option for a group that is not in the defaults list, telling to use +group=option', async () => {
    const error = await load({ 'experiments/x.yaml': X }, ['model/classifier=linear']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).render()).toMatchInlineSnapshot(
      `"override model/classifier=linear: config group model/classifier is not in the defaults list of experiments/x.yaml. To add it, use +model/classifier=linear."`,
    );
  });

  it('names every bad key when several are wrong', async () => {
    await expect(load({ 'experiments/x.yaml': X }, ['train.epochs=0', 'seed=-1'])).rejects.toThrowErrorMatchingInlineSnapshot(`
      [ConfigError: invalid experiment config:
        seed: expected integer ≥ 0, got -1 (override seed=-1)
        train.epochs: expected integer ≥ 1, got 0 (override train.epochs=0)]
    `);
  });

  it('reports a missing required section against the primary file', async () => {
    await expect(load({ 'experiments/x.yaml': 'name: nothing\nmodel: {aggregator: {name: mean-pool}}\n' })).rejects.toThrow(/^data: required/);
  });
});
