import { describe, expect, it } from 'vitest';
import { composeConfig, type ComposeOptions } from '../../../src/core/config/compose.js';
import { tmpTree } from './tmp-tree.js';

async function compose(files: Record<string, string>, overrides: string[] = [], options: ComposeOptions = {}, primary = 'experiments/main.yaml') {
  const cwd = await tmpTree(files);
  return composeConfig(primary, overrides, { cwd, env: {}, ...options });
}

const GROUPS = {
  'experiments/model/aggregator/abmil.yaml': 'name: abmil\nattnDim: 128\ndropout: 0.25\n',
  'experiments/model/aggregator/mean-pool.yaml': 'name: mean-pool\n',
  'experiments/data/camelyon.yaml': 'dataset:\n  name: synthetic-camelyon\n  slides: 40\n',
  'experiments/data/tcga.yaml': 'dataset:\n  name: features-h5\n  root: /data/tcga\n',
};

describe('composeConfig: defaults list', () => {
  it('merges group options at their package, then the file itself (_self_ last when absent)', async () => {
    const result = await compose({
      ...GROUPS,
      'experiments/main.yaml': 'defaults:\n  - model/aggregator: abmil\n  - data: camelyon\nname: exp\nmodel:\n  aggregator:\n    dropout: 0.1\n',
    });
    expect(result.config).toEqual({
      model: { aggregator: { name: 'abmil', attnDim: 128, dropout: 0.1 } },
      data: { dataset: { name: 'synthetic-camelyon', slides: 40 } },
      name: 'exp',
    });
    expect(result.choices).toEqual({ 'model/aggregator': 'abmil', data: 'camelyon' });
    expect(result.defaults.map((d) => d.configPath)).toEqual(['model/aggregator/abmil', 'data/camelyon', 'experiments/main.yaml']);
  });

  it('lets group values win when _self_ comes first', async () => {
    const result = await compose({
      ...GROUPS,
      'experiments/main.yaml': 'defaults:\n  - _self_\n  - model/aggregator: abmil\nmodel:\n  aggregator:\n    dropout: 0.1\n',
    });
    expect(result.config).toEqual({ model: { aggregator: { name: 'abmil', attnDim: 128, dropout: 0.25 } } });
    expect(result.defaults.map((d) => d.configPath)).toEqual(['experiments/main.yaml', 'model/aggregator/abmil']);
  });

  it('places _self_ where it is written, between defaults', async () => {
    const result = await compose({
      'experiments/a/one.yaml': '# @package _global_\nx: 1\ny: 1\nz: 1\n',
      'experiments/b/two.yaml': '# @package _global_\nz: 2\n',
      'experiments/main.yaml': 'defaults:\n  - a: one\n  - _self_\n  - b: two\ny: 0\nz: 0\n',
    });
    expect(result.config).toEqual({ x: 1, y: 0, z: 2 });
  });

  it('expands nested defaults inside group files, relative to the file\'s group, in depth-first order', async () => {
    const result = await compose({
      'experiments/model/encoder/small.yaml': 'width: 64\n',
      'experiments/model/encoder/large.yaml': 'width: 512\n',
      'experiments/model/abmil.yaml': 'defaults:\n  - encoder: small\n  - _self_\nname: abmil\nencoder:\n  depth: 2\n',
      'experiments/main.yaml': 'defaults:\n  - model: abmil\n',
    });
    expect(result.config).toEqual({ model: { name: 'abmil', encoder: { width: 64, depth: 2 } } });
    expect(result.choices).toEqual({ model: 'abmil', 'model/encoder': 'small' });
    expect(result.defaults.map((d) => `${d.configPath}@${d.package}`)).toEqual(['model/encoder/small@model.encoder', 'model/abmil@model', 'experiments/main.yaml@']);
  });

  it('overrides a nested group from the command line by its full path', async () => {
    const result = await compose({
      'experiments/model/encoder/small.yaml': 'width: 64\n',
      'experiments/model/encoder/large.yaml': 'width: 512\n',
      'experiments/model/abmil.yaml': 'defaults:\n  - encoder: small\nname: abmil\n',
      'experiments/main.yaml': 'defaults:\n  - model: abmil\n',
    }, ['model/encoder=large']);
    expect(result.config).toEqual({ model: { name: 'abmil', encoder: { width: 512 } } });
  });

  it('merges plain config paths and honours @package and # @package headers', async () => {
    const result = await compose({
      'experiments/base.yaml': 'seed: 1\ntrain:\n  epochs: 5\n',
      'experiments/db/mysql.yaml': 'driver: mysql\n',
      'experiments/extra/global.yaml': '# @package _global_\nseed: 3\n',
      'experiments/extra/here.yaml': '# @package deep.inside\nflag: true\n',
      'experiments/main.yaml': 'defaults:\n  - base\n  - db@backup: mysql\n  - extra/global\n  - extra: here\ntrain:\n  epochs: 9\n',
    });
    expect(result.config).toEqual({ seed: 3, train: { epochs: 9 }, backup: { driver: 'mysql' }, deep: { inside: { flag: true } } });
  });

  it('merges every option of a multi-select group at the group package, in order', async () => {
    const result = await compose({
      'experiments/losses/ce.yaml': 'ce:\n  name: cross-entropy\n',
      'experiments/losses/aux.yaml': 'aux:\n  name: instance\n  weight: 0.3\n',
      'experiments/main.yaml': 'defaults:\n  - losses: [ce, aux]\n',
    });
    expect(result.config).toEqual({ losses: { ce: { name: 'cross-entropy' }, aux: { name: 'instance', weight: 0.3 } } });
  });

  it('skips a missing optional default and a null choice', async () => {
    const result = await compose({
      ...GROUPS,
      'experiments/main.yaml': 'defaults:\n  - optional model/aggregator: nothing-here\n  - data: null\nx: 1\n',
    });
    expect(result.config).toEqual({ x: 1 });
  });

  it('applies `override` entries of a later config (the experiment pattern) to earlier groups', async () => {
    const files = {
      ...GROUPS,
      'experiments/experiment/paper.yaml': '# @package _global_\ndefaults:\n  - override /model/aggregator: abmil\n  - override /data: tcga\nseed: 42\n',
      // As in lightning-hydra-template: _self_ first, so the experiment's values win over the file's.
      'experiments/main.yaml': 'defaults:\n  - _self_\n  - model/aggregator: mean-pool\n  - data: camelyon\n  - experiment: null\nseed: 0\n',
    };
    const result = await compose(files, ['experiment=paper']);
    expect(result.config).toEqual({ model: { aggregator: { name: 'abmil', attnDim: 128, dropout: 0.25 } }, data: { dataset: { name: 'features-h5', root: '/data/tcga' } }, seed: 42 });
    expect(result.choices).toEqual({ 'model/aggregator': 'abmil', data: 'tcga', experiment: 'paper' });
    // The command line still wins over the experiment's override.
    const cli = await compose(files, ['experiment=paper', 'model/aggregator=mean-pool']);
    expect(cli.choices['model/aggregator']).toBe('mean-pool');
  });

  it('finds groups in the groups/ subfolder and in extra search paths, first match winning', async () => {
    const result = await compose({
      'experiments/groups/model/aggregator/abmil.yaml': 'name: abmil\nfrom: groups\n',
      'shared/model/aggregator/abmil.yaml': 'name: abmil\nfrom: shared\n',
      'shared/model/aggregator/transmil.yaml': 'name: transmil\n',
      'experiments/main.yaml': 'defaults:\n  - model/aggregator: abmil\n',
    }, [], { searchPath: ['shared'] });
    expect(result.config).toEqual({ model: { aggregator: { name: 'abmil', from: 'groups' } } });
    const other = await compose({
      'shared/model/aggregator/transmil.yaml': 'name: transmil\n',
      'experiments/model/aggregator/abmil.yaml': 'name: abmil\n',
      'experiments/main.yaml': 'defaults:\n  - model/aggregator: abmil\n',
    }, ['model/aggregator=transmil'], { searchPath: ['shared'] });
    expect(other.config).toEqual({ model: { aggregator: { name: 'transmil' } } });
  });

  it('offers implied options (registered plugins) when no file exists, files winning', async () => {
    const implied = (group: string) => (group === 'model/aggregator' ? ['abmil', 'max-pool', 'mean-pool'] : undefined);
    const result = await compose({ ...GROUPS, 'experiments/main.yaml': 'defaults:\n  - model/aggregator: max-pool\n' }, [], { impliedOptions: implied });
    expect(result.config).toEqual({ model: { aggregator: { name: 'max-pool' } } });
    const fromFile = await compose({ ...GROUPS, 'experiments/main.yaml': 'defaults:\n  - model/aggregator: max-pool\n' }, ['model/aggregator=abmil'], { impliedOptions: implied });
    expect(fromFile.config).toEqual({ model: { aggregator: { name: 'abmil', attnDim: 128, dropout: 0.25 } } });
  });

  it('loads JSON and TS primary configs', async () => {
    const json = await compose({ ...GROUPS, 'experiments/main.json': '{"defaults": [{"model/aggregator": "abmil"}], "seed": 2, "$schema": "./s.json"}' }, [], {}, 'experiments/main.json');
    expect(json.config).toEqual({ model: { aggregator: { name: 'abmil', attnDim: 128, dropout: 0.25 } }, seed: 2 });
    const ts = await compose({ ...GROUPS, 'experiments/main.ts': 'export default { defaults: [{ "model/aggregator": "abmil" }], seed: 3 * 2 };\n' }, [], {}, 'experiments/main.ts');
    expect(ts.config).toEqual({ model: { aggregator: { name: 'abmil', attnDim: 128, dropout: 0.25 } }, seed: 6 });
  });
});

describe('composeConfig: group overrides', () => {
  const files = { ...GROUPS, 'experiments/main.yaml': 'defaults:\n  - model/aggregator: abmil\n  - data: camelyon\n' };

  it('changes the selected option with group=option', async () => {
    const result = await compose(files, ['model/aggregator=mean-pool', 'data=tcga']);
    expect(result.config).toEqual({ model: { aggregator: { name: 'mean-pool' } }, data: { dataset: { name: 'features-h5', root: '/data/tcga' } } });
  });

  it('appends a group with +group=option (after _self_, so it wins)', async () => {
    const result = await compose({ ...GROUPS, 'experiments/main.yaml': 'model:\n  aggregator:\n    name: mean-pool\n' }, ['+model/aggregator=abmil']);
    expect(result.config).toEqual({ model: { aggregator: { name: 'abmil', attnDim: 128, dropout: 0.25 } } });
  });

  it('removes a group with ~group, or only when its option matches with ~group=option', async () => {
    expect((await compose(files, ['~data'])).config).toEqual({ model: { aggregator: { name: 'abmil', attnDim: 128, dropout: 0.25 } } });
    expect((await compose(files, ['~data=camelyon'])).config).not.toHaveProperty('data');
    await expect(compose(files, ['~data=tcga'])).rejects.toThrow('override ~data=tcga: cannot delete data=tcga, it is not in the defaults list.');
  });

  it('deselects a group with group=null', async () => {
    expect((await compose(files, ['data=null'])).config).not.toHaveProperty('data');
  });

  it('refuses group=option when the group is not in the defaults list, pointing to +group=option', async () => {
    await expect(compose({ ...GROUPS, 'experiments/main.yaml': 'seed: 1\n' }, ['model/aggregator=abmil'])).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: override model/aggregator=abmil: config group model/aggregator is not in the defaults list of experiments/main.yaml.]`,
    );
    const error = await compose({ ...GROUPS, 'experiments/main.yaml': 'seed: 1\n' }, ['model/aggregator=abmil']).catch((e: unknown) => e);
    expect((error as { hint: string }).hint).toBe('To add it, use +model/aggregator=abmil.');
    expect((error as { code: string }).code).toBe('group-not-in-defaults');
  });

  it('refuses +group=option when the group is already chosen', async () => {
    await expect(compose(files, ['+data=tcga'])).rejects.toThrow('override +data=tcga: data is already in the defaults list (camelyon, from experiments/main.yaml).');
  });

  it('names an unknown option with did-you-mean and the available options', async () => {
    await expect(compose(files, ['model/aggregator=abmill'])).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: override model/aggregator=abmill: config group model/aggregator has no option "abmill". Did you mean "abmil"? Options: abmil, mean-pool.]`,
    );
    await expect(compose({ ...GROUPS, 'experiments/main.yaml': 'defaults:\n  - data: camelion\n' })).rejects.toThrow(
      'experiments/main.yaml › defaults: config group data has no option "camelion". Did you mean "camelyon"? Options: camelyon, tcga.',
    );
  });

  it('names an unknown group with did-you-mean', async () => {
    await expect(compose(files, ['modle/aggregator=abmil'])).rejects.toThrow('override modle/aggregator=abmil: no config group "modle/aggregator". Did you mean "model/aggregator"?');
  });

  it('requires a choice for ??? options', async () => {
    await expect(compose({ ...GROUPS, 'experiments/main.yaml': 'defaults:\n  - data: ???\n' })).rejects.toThrow('experiments/main.yaml › defaults: choose an option for data (data=<option>).');
    expect((await compose({ ...GROUPS, 'experiments/main.yaml': 'defaults:\n  - data: ???\n' }, ['data=tcga'])).choices).toEqual({ data: 'tcga' });
  });

  it('rejects conflicting choices of one group without `override`', async () => {
    await expect(compose({
      ...GROUPS,
      'experiments/base.yaml': 'defaults:\n  - data: tcga\n',
      'experiments/main.yaml': 'defaults:\n  - data: camelyon\n  - base\n',
    })).rejects.toThrow('defaults: data is chosen twice');
  });

  it('rejects an override entry before a plain entry', async () => {
    await expect(compose({ ...GROUPS, 'experiments/main.yaml': 'defaults:\n  - override data: tcga\n  - model/aggregator: abmil\n' })).rejects.toThrow(
      'defaults: "override data" comes before a non-override entry (experiments/main.yaml).',
    );
  });

  it('refuses a sweep in a single composition', async () => {
    await expect(compose(files, ['data=camelyon,tcga'])).rejects.toThrow('override data=camelyon,tcga: a sweep gives several values, but a single run takes one.');
  });
});

describe('composeConfig: key overrides', () => {
  const files = { 'experiments/main.yaml': 'train:\n  epochs: 10\n  optimizer:\n    lr: 0.001\n    betas: [0.9, 0.999]\nmodel:\n  aggregator:\n    name: abmil\n    attnDim: 128\n' };
  const config = async (overrides: string[], options: ComposeOptions = {}) => (await compose(files, overrides, options)).config;

  it('sets existing keys, in order, with typed values', async () => {
    expect(await config(['train.epochs=3', 'train.epochs=4', 'train.optimizer.lr=1e-4'])).toMatchObject({ train: { epochs: 4, optimizer: { lr: 1e-4 } } });
  });

  it('assigns lists and merges mappings (Hydra)', async () => {
    const out = await config(['train.optimizer.betas=[0.8,0.99]', 'model.aggregator={dropout: 0.1, attnDim: 64}']);
    expect(out).toMatchObject({ train: { optimizer: { betas: [0.8, 0.99] } }, model: { aggregator: { name: 'abmil', attnDim: 64, dropout: 0.1 } } });
  });

  it('sets list items by index', async () => {
    expect(await config(['train.optimizer.betas[1]=0.98', 'train.optimizer.betas[-2]=0.5'])).toMatchObject({ train: { optimizer: { betas: [0.5, 0.98] } } });
  });

  it('adds new keys with +, and refuses + on an existing key', async () => {
    expect(await config(['+train.gradClip=1'])).toMatchObject({ train: { gradClip: 1 } });
    expect(await config(['+new.deep.key=x'])).toMatchObject({ new: { deep: { key: 'x' } } });
    await expect(config(['+train.epochs=3'])).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: train.epochs: already set to 10 (by experiments/main.yaml), and +train.epochs=... only adds new keys (override +train.epochs=3).]`,
    );
  });

  it('adds or replaces with ++', async () => {
    expect(await config(['++train.epochs=3', '++train.extra=true'])).toMatchObject({ train: { epochs: 3, extra: true } });
  });

  it('deletes with ~key, and with ~key=value only when the value matches', async () => {
    expect(await config(['~train.optimizer'])).toEqual({ train: { epochs: 10 }, model: { aggregator: { name: 'abmil', attnDim: 128 } } });
    expect((await config(['~train.epochs=10'])).train).toEqual({ optimizer: { lr: 0.001, betas: [0.9, 0.999] } });
    expect((await config(['~train.optimizer.betas[0]'])).train).toMatchObject({ optimizer: { betas: [0.999] } });
    await expect(config(['~train.epochs=11'])).rejects.toThrow('train.epochs: not deleted, its value is 10, not 11 (override ~train.epochs=11).');
    await expect(config(['~train.nothing'])).rejects.toThrow('train.nothing: cannot delete it, the key is not in the composed config (override ~train.nothing).');
  });

  it('refuses key=value for a key that is not there (Hydra), suggesting the closest key', async () => {
    await expect(config(['train.lr=0.1'])).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: train.lr: no such key in the composed config (got 0.1 from override train.lr=0.1). Did you mean "train.optimizer.lr"?]`,
    );
    const error = await config(['train.epoch=3']).catch((e: unknown) => e);
    expect(String((error as Error).message)).toContain('Did you mean "train.epochs"?');
    expect((error as { hint: string }).hint).toBe('To add a new key anyway, use +train.epoch=3.');
  });

  it('accepts key=value for keys a schema knows (isKnownKey)', async () => {
    const out = await config(['train.gradClip=2', 'model.aggregator.gated=true'], {
      isKnownKey: (p) => p.join('.') === 'train.gradClip' || p.slice(0, 2).join('.') === 'model.aggregator',
    });
    expect(out).toMatchObject({ train: { gradClip: 2 }, model: { aggregator: { gated: true } } });
  });

  it('refuses to set below a scalar', async () => {
    await expect(config(['++train.epochs.x=1'])).rejects.toThrow('train.epochs.x: cannot set it, train.epochs is a number (10), not a mapping (override ++train.epochs.x=1).');
  });

  it('remembers which file or override set each key', async () => {
    const result = await compose({
      ...GROUPS,
      'experiments/main.yaml': 'defaults:\n  - model/aggregator: abmil\nmodel:\n  aggregator:\n    dropout: 0.1\nseed: 1\n',
    }, ['model.aggregator.attnDim=64']);
    expect(result.sourceOf('model.aggregator.name')).toBe('experiments/model/aggregator/abmil.yaml');
    expect(result.sourceOf('model.aggregator.dropout')).toBe('experiments/main.yaml');
    expect(result.sourceOf('model.aggregator.attnDim')).toBe('override model.aggregator.attnDim=64');
    expect(result.sourceOf('model.aggregator.bogus')).toBe('experiments/main.yaml');
    // The last file that wrote into a key is its source.
    expect(result.topLevelSources).toEqual({ model: 'experiments/main.yaml', seed: 'experiments/main.yaml' });
  });
});

describe('composeConfig: files', () => {
  it('names the file and line of a YAML syntax error', async () => {
    await expect(compose({ 'experiments/main.yaml': 'a: 1\nb: [1, 2\nc: 3\n' })).rejects.toThrow(/^experiments\/main\.yaml:\d+: invalid YAML/);
  });

  it('rejects a config that is not a mapping', async () => {
    await expect(compose({ 'experiments/main.yaml': '- a\n- b\n' })).rejects.toThrow('experiments/main.yaml: a config file must hold a mapping of keys (got a list).');
  });

  it('rejects a missing primary config', async () => {
    await expect(compose({ 'experiments/other.yaml': 'a: 1\n' })).rejects.toThrow('experiments/main.yaml: cannot read the config file.');
  });

  it('rejects a malformed defaults entry, naming its index and file', async () => {
    await expect(compose({ 'experiments/main.yaml': 'defaults:\n  - {a: x, b: y}\n' })).rejects.toThrow('defaults.0: expected one "group: option" pair, got 2 keys (experiments/main.yaml).');
  });
});
