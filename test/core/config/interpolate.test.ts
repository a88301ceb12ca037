import { describe, expect, it } from 'vitest';
import { composeConfig } from '../../../src/core/config/compose.js';
import { interpolateConfig } from '../../../src/core/config/interpolate.js';
import { tmpTree } from './tmp-tree.js';

const resolve = (config: Record<string, unknown>, env: Record<string, string | undefined> = {}) => interpolateConfig(config, { env, sourceOf: () => 'experiments/x.yaml' });

describe('interpolateConfig', () => {
  it('resolves absolute references, keeping the referenced type for whole-value interpolations', () => {
    expect(resolve({ dim: 512, model: { width: '${dim}', layers: '${sizes}' }, sizes: [1, 2], flag: true, copy: '${flag}' })).toEqual({
      dim: 512, model: { width: 512, layers: [1, 2] }, sizes: [1, 2], flag: true, copy: true,
    });
  });

  it('embeds values in strings', () => {
    expect(resolve({ seed: 3, name: 'abmil', run: 'run_${name}_s${seed}', nothing: 'x-${none}', none: null })).toMatchObject({ run: 'run_abmil_s3', nothing: 'x-null' });
  });

  it('resolves relative references (${.x} sibling, ${..x} one level up)', () => {
    expect(resolve({ x: 10, b: { y: 20, a: '${.y}', c: '${..x}', d: { e: '${..y}' } } })).toEqual({ x: 10, b: { y: 20, a: 20, c: 10, d: { e: 20 } } });
  });

  it('follows chains and references to mappings that contain interpolations', () => {
    expect(resolve({ a: '${b}', b: '${c}', c: 7, m: { p: '${c}' }, n: '${m}' })).toEqual({ a: 7, b: 7, c: 7, m: { p: 7 }, n: { p: 7 } });
  });

  it('resolves nested interpolations inside a key reference', () => {
    expect(resolve({ which: 'large', sizes: { small: 1, large: 9 }, size: '${sizes.${which}}' })).toMatchObject({ size: 9 });
  });

  it('reads ${env:VAR} and ${oc.env:VAR,default}, typing the text like an override value', () => {
    const env = { DATA_ROOT: '/data/c16', SEED: '17', USE: 'true' };
    expect(resolve({ root: '${env:DATA_ROOT}/feats', seed: '${env:SEED}', on: '${oc.env:USE}', missing: '${env:NOPE,fallback}', n: '${env:NOPE,5}', q: "${env:NOPE,'5'}", z: '${env:NOPE,null}' }, env)).toEqual({
      root: '/data/c16/feats', seed: 17, on: true, missing: 'fallback', n: 5, q: '5', z: null,
    });
    expect(resolve({ a: 3, d: '${env:NOPE,${a}}' })).toMatchObject({ d: 3 });
  });

  it('keeps \\${ escapes literal', () => {
    expect(resolve({ a: 1, s: 'cost \\${a} = ${a}' })).toEqual({ a: 1, s: 'cost ${a} = 1' });
  });

  it('names the key and file of an unresolvable reference, with did-you-mean', () => {
    expect(() => resolve({ model: { dim: 4, width: '${model.dims}' } })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: model.width: cannot resolve \${model.dims}: no key "model.dims" in the composed config (experiments/x.yaml).]`,
    );
    try {
      resolve({ model: { dim: 4, width: '${model.dims}' } });
    } catch (error) {
      expect((error as { hint: string }).hint).toBe('Did you mean ${model.dim}? Interpolations see composed values only (schema defaults are filled later).');
      expect((error as { code: string }).code).toBe('unresolved-interpolation');
    }
  });

  it('names an unset environment variable without default', () => {
    expect(() => resolve({ data: { root: '${env:DATA_ROOT}' } })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigError: data.root: environment variable DATA_ROOT is not set and \${env:DATA_ROOT} has no default (experiments/x.yaml).]`,
    );
  });

  it('reports cycles', () => {
    expect(() => resolve({ a: '${b}', b: '${a}' })).toThrow('a: interpolation cycle: a → b → a (experiments/x.yaml).');
    expect(() => resolve({ a: { b: '${a}' } })).toThrow('a.b: interpolation cycle: a.b → a.b (experiments/x.yaml).');
  });

  it('rejects unknown resolvers and embedding a mapping in a string', () => {
    expect(() => resolve({ a: '${now:%Y}' })).toThrow('a: unknown resolver "now" in ${now:%Y} (experiments/x.yaml).');
    expect(() => resolve({ m: { x: 1 }, s: 'x${m}' })).toThrow('s: ${m} is a mapping and cannot be embedded in the string "x${m}" (experiments/x.yaml).');
    expect(() => resolve({ s: '${a' })).toThrow('s: unclosed "${" in "${a" (experiments/x.yaml).');
  });
});

describe('interpolation in composition', () => {
  it('runs after overrides and names the file the bad value came from', async () => {
    const cwd = await tmpTree({
      'experiments/model/aggregator/abmil.yaml': 'name: abmil\nattnDim: ${model.width}\n',
      'experiments/x.yaml': 'defaults:\n  - model/aggregator: abmil\nmodel:\n  width: 128\nname: run_${model.aggregator.name}_${model.width}\n',
    });
    const composed = await composeConfig('experiments/x.yaml', ['model.width=64'], { cwd, env: {} });
    expect(composed.config).toEqual({ model: { aggregator: { name: 'abmil', attnDim: 64 }, width: 64 }, name: 'run_abmil_64' });
    await expect(composeConfig('experiments/x.yaml', ['~model.width'], { cwd, env: {} })).rejects.toThrow(
      'model.aggregator.attnDim: cannot resolve ${model.width}: no key "model.width" in the composed config (experiments/model/aggregator/abmil.yaml).',
    );
  });

  it('reads the environment given to composition', async () => {
    const cwd = await tmpTree({ 'experiments/x.yaml': 'data:\n  root: ${env:FEATS,/tmp/none}\n' });
    expect((await composeConfig('experiments/x.yaml', [], { cwd, env: { FEATS: '/mnt/feats' } })).config).toEqual({ data: { root: '/mnt/feats' } });
    expect((await composeConfig('experiments/x.yaml', [], { cwd, env: {} })).config).toEqual({ data: { root: '/tmp/none' } });
  });

  it('requires ??? values to be set', async () => {
    const cwd = await tmpTree({ 'experiments/x.yaml': 'data:\n  root: ???\n' });
    await expect(composeConfig('experiments/x.yaml', [], { cwd, env: {} })).rejects.toThrow('data.root: mandatory value missing (???) (experiments/x.yaml).');
    expect((await composeConfig('experiments/x.yaml', ['data.root=/d'], { cwd, env: {} })).config).toEqual({ data: { root: '/d' } });
  });
});
