// The shipped milkit.schema.json (the experiments' yaml-language-server modeline points at it) must be what
// `milkit schema` generates now; a plugin or schema change without regenerating it fails here.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { experimentJsonSchema } from '../../../src/core/config/index.js';
import { builtinRegistry } from '../../helpers/registry.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

describe('milkit.schema.json', () => {
  it('equals the schema generated from the registry (regenerate: npx milkit schema --out milkit.schema.json)', async () => {
    const shipped = JSON.parse(await readFile(path.join(root, 'milkit.schema.json'), 'utf8')) as unknown;
    expect(shipped).toEqual(await experimentJsonSchema(builtinRegistry()));
  });
});
