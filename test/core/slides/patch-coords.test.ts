// Patch coordinates from CLAM and TRIDENT (fixtures written with h5py by test/reference/make_patch_coords_fixtures.py):
// corners in file order, the level-0 patch size from each tool's attributes, and clear errors for unusable files.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import h5wasm from 'h5wasm/node';
import { describe, expect, it } from 'vitest';
import { readPatchCoordsH5 } from '../../../src/core/slides/patch-coords.js';
import { asyncErrorText } from '../data/error-text.js';

const FIXTURES = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../reference/fixtures/slides');

describe('slides/patch-coords', () => {
  it("reads CLAM's coords with the patch size brought from its patch level to level 0", async () => {
    const clam = await readPatchCoordsH5(path.join(FIXTURES, 'clam-patches.h5'));
    expect(Array.from(clam.coords)).toEqual([0, 0, 512, 0, 1024, 512, 1536, 1024]);
    expect(clam.layout).toBe('clam');
    expect(clam.patchSizeLevel0).toBe(512); // 256 px at level 1 (downsample 2)
    expect(clam.attributes.name).toBe('clam-slide');
  });

  it("reads TRIDENT's coords with its level-0 patch size", async () => {
    const trident = await readPatchCoordsH5(path.join(FIXTURES, 'trident-patches.h5'));
    expect(Array.from(trident.coords)).toEqual([0, 0, 256, 0, 512, 256, 768, 512]);
    expect(trident.layout).toBe('trident');
    expect(trident.patchSizeLevel0).toBe(256);
  });

  it('names the file and what is wrong: missing, not HDF5, no coords, wrong shape, negative values', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'milkit-coords-'));
    expect(await asyncErrorText(() => readPatchCoordsH5(path.join(dir, 'absent.h5')))).toContain('patch coordinate file not found.');
    writeFileSync(path.join(dir, 'text.h5'), 'not hdf5');
    expect(await asyncErrorText(() => readPatchCoordsH5(path.join(dir, 'text.h5')))).toContain('cannot open the patch coordinate file as HDF5 (no HDF5 signature at its start).');
    await h5wasm.ready;
    const write = (name: string, datasets: Record<string, { data: Int32Array; shape: number[] }>): string => {
      const file = path.join(dir, name);
      const f = new h5wasm.File(file, 'w');
      for (const [key, { data, shape }] of Object.entries(datasets)) f.create_dataset({ name: key, data, shape, dtype: '<i' });
      f.close();
      return file;
    };
    expect(await asyncErrorText(() => readPatchCoordsH5(write('features.h5', { features: { data: new Int32Array(4), shape: [2, 2] } })))).toContain('the patch coordinate file has no "coords" dataset (it has: features).');
    expect(await asyncErrorText(() => readPatchCoordsH5(write('flat.h5', { coords: { data: new Int32Array(6), shape: [2, 3] } })))).toContain('"coords" has shape [2, 3]; patch coordinates are [N, 2]');
    expect(await asyncErrorText(() => readPatchCoordsH5(write('negative.h5', { coords: { data: Int32Array.from([0, 0, -256, 0]), shape: [2, 2] } })))).toContain('"coords" row 1 has -256;');
  });
});
