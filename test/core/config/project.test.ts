import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findProjectSettings } from '../../../src/core/config/project.js';
import { loadExperiment } from '../../../src/core/config/load.js';
import { tmpTree } from './tmp-tree.js';
import { testRegistry } from './test-registry.js';

describe('findProjectSettings (cosmiconfig)', () => {
  it('reads the milkit key of package.json, resolving paths against its folder', async () => {
    const root = await tmpTree({
      'package.json': JSON.stringify({ name: 'lab', milkit: { searchPath: ['configs'], plugins: ['./plugins/x.ts', 'milkit-acme'], tracking: { uri: 'http://mlflow:5000' } } }),
    });
    const settings = await findProjectSettings(root);
    expect(settings).toEqual({
      searchPath: [path.join(root, 'configs')],
      plugins: [path.join(root, 'plugins/x.ts'), 'milkit-acme'],
      tracking: { uri: 'http://mlflow:5000' },
      file: path.join(root, 'package.json'),
    });
  });

  it('searches up from a subfolder to the project root', async () => {
    const root = await tmpTree({ 'package.json': '{"name": "lab"}', 'milkit.config.yaml': 'searchPath: [shared]\n', 'experiments/deep/.keep': '' });
    expect((await findProjectSettings(path.join(root, 'experiments/deep')))?.searchPath).toEqual([path.join(root, 'shared')]);
  });

  it('loads milkit.config.ts through the running TS loader', async () => {
    const helper = path.resolve('src/core/config/project.ts');
    const root = await tmpTree({
      'package.json': '{"name": "lab"}',
      'milkit.config.ts': `import { defineProjectSettings } from ${JSON.stringify(helper)};\nconst name: string = 'from-ts';\nexport default defineProjectSettings({ tracking: { experimentName: name } });\n`,
    });
    expect(await findProjectSettings(root)).toEqual({ tracking: { experimentName: 'from-ts' }, file: path.join(root, 'milkit.config.ts') });
  });

  it('loads milkit.config.json and .mjs', async () => {
    const json = await tmpTree({ 'package.json': '{}', 'milkit.config.json': '{"plugins": ["pkg-a"]}' });
    expect((await findProjectSettings(json))?.plugins).toEqual(['pkg-a']);
    const mjs = await tmpTree({ 'package.json': '{}', 'milkit.config.mjs': 'export default { plugins: ["pkg-b"] };\n' });
    expect((await findProjectSettings(mjs))?.plugins).toEqual(['pkg-b']);
  });

  it('stops at the project root and returns undefined when there are no settings', async () => {
    const root = await tmpTree({ 'package.json': '{"name": "lab"}', 'sub/package.json': '{"name": "inner"}' });
    expect(await findProjectSettings(path.join(root, 'sub'))).toBeUndefined();
  });

  it('validates the settings, naming the key and the file', async () => {
    const root = await tmpTree({ 'package.json': '{}', 'milkit.config.yaml': 'searchpath: [x]\n' });
    await expect(findProjectSettings(root)).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: searchpath: unknown key (got ["x"]). Allowed: searchPath, plugins, tracking. Did you mean "searchPath"? (milkit.config.yaml)]`,
    );
  });
});

describe('project settings in loadExperiment', () => {
  it('finds the project file from cwd and applies its search path and tracking defaults', async () => {
    const cwd = await tmpTree({
      'package.json': JSON.stringify({ name: 'lab', milkit: { searchPath: ['shared'], tracking: { uri: 'file:./runs', experimentName: 'lab-default' } } }),
      'shared/data/toy.yaml': 'dataset: { name: toy-bags, slides: 6 }\n',
      'experiments/x.yaml': 'defaults:\n  - data: toy\n  - _self_\nmodel: { aggregator: { name: mean-pool } }\ntracking: { experimentName: mine }\n',
    });
    const resolved = await loadExperiment('experiments/x.yaml', [], { registry: testRegistry(), cwd, env: {} });
    expect(resolved.config.data.dataset).toEqual({ name: 'toy-bags', slides: 6, featureDim: 8 });
    expect(resolved.config.tracking).toMatchObject({ uri: 'file:./runs', experimentName: 'mine' });
    expect(resolved.sources.data).toBe('shared/data/toy.yaml');
  });
});
