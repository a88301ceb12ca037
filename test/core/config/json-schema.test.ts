import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { experimentJsonSchema } from '../../../src/core/config/json-schema.js';
import { main } from '../../../src/core/cli/main.js';
import type { CliIo } from '../../../src/core/cli/app.js';
import { builtinManifest } from '../../../plugins/index.js';
import { Registry } from '../../../src/registry/index.js';
import { tmpTree } from './tmp-tree.js';
import { testRegistry } from './test-registry.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- walking a generated JSON document
type Json = Record<string, any>;

function validator(schema: object) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  expect(ajv.validateSchema(schema), JSON.stringify(ajv.errors)).toBe(true);
  return ajv.compile(schema);
}

describe('experimentJsonSchema', () => {
  it('is valid JSON Schema (draft 2020-12) and lists the registered plugins per slot', async () => {
    const schema = (await experimentJsonSchema(testRegistry(), { variant: 'complete' })) as Json;
    validator(schema);
    const aggregator = schema.properties.model.properties.aggregator;
    expect(aggregator.properties.name.enum).toEqual(['max-pool', 'mean-pool']);
    expect(aggregator.oneOf.map((b: Json) => b.properties.name.const)).toEqual(['max-pool', 'mean-pool']);
    const meanPool = aggregator.oneOf[1];
    expect(meanPool.properties.dropout).toMatchObject({ type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0 });
    expect(meanPool.additionalProperties).toBe(false);
    expect(schema.properties.model.properties.losses.additionalProperties.properties.name.enum).toEqual(['cross-entropy']);
    expect(schema.properties.model.properties.losses.additionalProperties.oneOf[0].properties.weight).toMatchObject({ type: 'number', minimum: 0 });
    expect(schema.properties.data.properties.dataset.properties.name.enum).toEqual(['toy-bags']);
    expect(schema.properties.eval.properties.metrics.items.enum).toEqual(['accuracy', 'auc']);
    expect(schema.properties.model.properties.classifier.default).toEqual({ name: 'linear' });
  });

  it('accepts a valid experiment and rejects bad option values, unknown options and unknown plugins', async () => {
    const validate = validator(await experimentJsonSchema(testRegistry(), { variant: 'complete' }));
    const good = {
      defaults: [{ 'model/aggregator': 'mean-pool' }, '_self_'],
      name: 'x',
      data: { dataset: { name: 'toy-bags', slides: 12 } },
      model: { aggregator: { name: 'mean-pool', dropout: 0.25 }, losses: { ce: { name: 'cross-entropy', weight: 0.5 } } },
      train: { epochs: 3 },
    };
    expect(validate(good), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...good, model: { aggregator: { name: 'mean-pool', dropout: 'high' } } })).toBe(false);
    expect(validate({ ...good, model: { aggregator: { name: 'mean-pool', bogus: 1 } } })).toBe(false);
    expect(validate({ ...good, model: { aggregator: { name: 'abmill' } } })).toBe(false);
    expect(validate({ ...good, trian: {} })).toBe(false);
  });

  it('covers every built-in plugin, and a partial variant accepts incomplete files', async () => {
    const registry = new Registry(builtinManifest());
    const full = (await experimentJsonSchema(registry, { variant: 'complete' })) as Json;
    validator(full);
    expect(full.properties.model.properties.aggregator.properties.name.enum).toEqual(registry.names('aggregator'));
    const partial = validator(await experimentJsonSchema(registry, { variant: 'partial' }));
    expect(partial({ model: { aggregator: { dropout: 0.1 } } }), JSON.stringify(partial.errors)).toBe(true);
    expect(partial({ model: { aggregator: { dropout: 2 } } })).toBe(false);
  });

  it('by default requires keys only in files without a defaults: list', async () => {
    const auto = validator(await experimentJsonSchema(testRegistry()));
    const composed = { defaults: [{ 'model/aggregator': 'mean-pool' }], model: { losses: { ce: { name: 'cross-entropy' } } } };
    expect(auto(composed), JSON.stringify(auto.errors)).toBe(true);
    expect(auto({ model: { losses: { ce: { name: 'cross-entropy' } } } })).toBe(false);
    expect(auto({ data: { dataset: { name: 'toy-bags' } }, model: { aggregator: { name: 'max-pool' } } })).toBe(true);
    expect(auto({ ...composed, model: { aggregator: { name: 'mean-pool', dropout: 'high' } } })).toBe(false);
  });
});

describe('milkit schema', () => {
  const capture = (): CliIo & { stdout: string[]; stderr: string[] } => {
    const stdout: string[] = [];
    const stderr: string[] = [];
    return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t), stdoutIsTTY: false };
  };

  it('prints the schema, and writes it with --out', async () => {
    const cwd = await tmpTree({ 'package.json': '{"name": "lab"}' });
    const io = capture();
    expect(await main(['schema'], { manifest: builtinManifest(), io, cwd, env: {} })).toBe(0);
    const printed = JSON.parse(io.stdout.join('')) as Json;
    expect(printed.$defs.complete.properties.model.properties.aggregator.properties.name.enum).toContain('mean-pool');
    expect(printed.if).toEqual({ type: 'object', required: ['defaults'] });
    const io2 = capture();
    expect(await main(['schema', '--out', 'schemas/milkit.schema.json'], { manifest: builtinManifest(), io: io2, cwd, env: {} })).toBe(0);
    expect(JSON.parse(await readFile(path.join(cwd, 'schemas/milkit.schema.json'), 'utf8'))).toEqual(printed);
    expect(io2.stderr.join('\n')).toContain('# yaml-language-server: $schema=');
  });

  it('mentions the yaml-language-server modeline in its help', async () => {
    const io = capture();
    await main(['schema', '--help'], { manifest: {}, io, env: {} });
    expect(io.stdout.join('')).toContain('# yaml-language-server: $schema=../milkit.schema.json');
  });
});
