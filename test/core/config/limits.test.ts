// Config-declared sizes and config-language expansions are bounded before anything is allocated: each limit is
// a ConfigError (exit 2) naming the key, never a V8 crash, a hang or "Maximum call stack size exceeded".
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors.js';
import { loadExperiment } from '../../../src/core/config/load.js';
import { MAX_INTERPOLATED_LENGTH, MAX_INTERPOLATION_DEPTH } from '../../../src/core/config/interpolate.js';
import { SYNTHETIC_LIMITS } from '../../../src/core/data/synthetic.js';
import { builtinRegistry } from '../../helpers/registry.js';
import { tmpTree } from './tmp-tree.js';

const HEAD = ['defaults: [{ data: synthetic-camelyon }, _self_]', 'model: { aggregator: { name: mean-pool } }'];

async function loadError(lines: readonly string[], overrides: string[] = []): Promise<ConfigError> {
  const cwd = await tmpTree({ 'experiments/x.yaml': [...HEAD, ...lines, ''].join('\n'), 'experiments/data/synthetic-camelyon.yaml': SYNTHETIC_GROUP });
  const error = await loadExperiment('experiments/x.yaml', overrides, { registry: builtinRegistry(), cwd, env: {}, project: {} }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

const SYNTHETIC_GROUP = ['# @package data', 'dataset: { name: synthetic-camelyon }', ''].join('\n');

describe('limits checked when the config is read', () => {
  it('refuses a YAML alias bomb with the file named', async () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (const [name, prev] of [['b', 'a'], ['c', 'b'], ['d', 'c'], ['e', 'd'], ['f', 'e']] as const) bomb.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`);
    const error = await loadError(bomb);
    expect(error.code).toBe('yaml-alias-limit');
    expect(error.render()).toContain('x.yaml');
  });

  it('refuses a chain of references deeper than the limit, naming a key of the chain', async () => {
    const depth = 5 * MAX_INTERPOLATION_DEPTH;
    const chain = Array.from({ length: depth }, (_, i) => `x${i}: \${x${i + 1}}`);
    const error = await loadError([...chain, `x${depth}: end`]);
    expect(error.code).toBe('interpolation-too-deep');
    expect(error.render()).toMatch(/x\d+: interpolation nested deeper than 64/);
  });

  it('refuses a doubling chain once the string passes the size limit, at the first key that does', async () => {
    const lines = ['x0: abcdefghij'];
    for (let i = 1; i < 40; i += 1) lines.push(`x${i}: \${x${i - 1}}\${x${i - 1}}`);
    const error = await loadError(lines);
    expect(error.code).toBe('interpolation-too-large');
    // 10 × 2^k characters pass the 1 MiB limit first at k = 17.
    const first = Math.ceil(Math.log2(MAX_INTERPOLATED_LENGTH / 10 + 1));
    expect(error.render()).toContain(`x${first}: interpolation expands to`);
  });

  it('refuses synthetic sizes beyond their bounds, naming the key', async () => {
    const slides = await loadError([], ['data.dataset.slides=1e12']);
    expect(slides.render()).toContain('data.dataset.slides');
    expect(slides.render()).toContain(String(SYNTHETIC_LIMITS.slides));
    const instances = await loadError([], ['data.dataset.instances=[1000000000,2000000000]']);
    expect(instances.render()).toContain('data.dataset.instances');
    // Within each bound, but a largest bag of 3.1 GiB: the per-bag budget names the product.
    const budget = await loadError([], ['data.dataset.instances=[1000,400000]', 'data.dataset.featureDim=2048']);
    expect(budget.render()).toMatch(/data\.dataset\.instances: the largest bag \(400000 instances × featureDim 2048/);
  });

  it('refuses an experiment name that would write outside the output folder', async () => {
    for (const name of ['../../x', 'a/b', '..']) {
      const error = await loadError([], [`name=${name}`]);
      expect(error.render(), name).toContain('name: must be a plain name');
    }
  });
});
