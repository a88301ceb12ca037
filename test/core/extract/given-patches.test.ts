// `milkit extract --patches DIR`: a CLAM/TRIDENT patch-coordinate file replaces segmentation. The features come
// out for exactly the given coordinates, in the given order, equal to the features of the same patches in a
// segmenting run; a patch file of another patch size is refused naming both sizes (docs/slides.md#feature-extraction).
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { writeSyntheticSlides } from '../../../src/core/slides/synthetic-slides.js';
import { runCli } from '../../e2e/helpers.js';

const COMMON = ['--reader', 'tiff', '--detector-set', 'downsample=16', '--detector-set', 'minTissueArea=0.5', '--extractor-set', 'batchSize=8'];

type H5 = typeof import('h5wasm/node').default;
async function h5(): Promise<H5> {
  const lib = (await import('h5wasm/node')).default;
  await lib.ready;
  return lib;
}

async function readRows(file: string): Promise<{ features: Float32Array; coords: Int32Array; dim: number; patchSizeLevel0: number }> {
  const lib = await h5();
  const f = new lib.File(file, 'r');
  try {
    const features = f.get('features') as unknown as { value: Float32Array; shape: number[] };
    const coords = f.get('coords') as unknown as { value: Int32Array };
    const attrs = f.attrs as unknown as Record<string, { value: unknown }>;
    return { features: Float32Array.from(features.value), coords: Int32Array.from(coords.value), dim: features.shape[1] as number, patchSizeLevel0: Number(attrs.patch_size_level0?.value) };
  } finally {
    f.close();
  }
}

let root = '';
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'milkit-given-patches-'));
  await writeSyntheticSlides({ slides: 1, seed: 5, tumourFraction: 0.5, format: 'svs', quality: 80, tileSize: 256, mpp: 0.5, magnification: 20, maskDownsample: 64, logger: silentLogger, outDir: path.join(root, 'slides'), size: 2048 });
}, 300_000);
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('milkit extract --patches', () => {
  it('extracts exactly the given CLAM coordinates, in their order, with the features a segmenting run gives them', async () => {
    const segmented = await runCli(['extract', 'slides', '--out', 'segmented', ...COMMON], root);
    expect(segmented.code, segmented.err).toBe(0);
    const reference = await readRows(path.join(root, 'segmented', 'h5_files', 'synthetic-000.h5'));
    const n = reference.coords.length / 2;
    expect(n).toBeGreaterThan(4);
    // A CLAM patch file (create_patches_fp.py layout) holding every other patch of the grid, in reverse order.
    const picked = Array.from({ length: n }, (_, i) => i).filter((i) => i % 2 === 0).reverse();
    const given = Int32Array.from(picked.flatMap((i) => [reference.coords[2 * i] as number, reference.coords[2 * i + 1] as number]));
    await mkdir(path.join(root, 'patches'));
    const lib = await h5();
    const file = new lib.File(path.join(root, 'patches', 'synthetic-000.h5'), 'w');
    file.create_dataset({ name: 'coords', data: given, shape: [picked.length, 2], dtype: '<i4' });
    const ds = file.get('coords') as unknown as { create_attribute(name: string, value: unknown): void };
    ds.create_attribute('patch_level', 0);
    ds.create_attribute('patch_size', reference.patchSizeLevel0);
    ds.create_attribute('downsample', new Float64Array([1, 1]));
    file.close();

    const run = await runCli(['extract', 'slides', '--out', 'given', '--patches', 'patches', ...COMMON], root);
    expect(run.code, run.err).toBe(0);
    const out = await readRows(path.join(root, 'given', 'h5_files', 'synthetic-000.h5'));
    expect(Array.from(out.coords)).toEqual(Array.from(given));
    picked.forEach((row, k) => {
      const want = Array.from(reference.features.subarray(row * reference.dim, (row + 1) * reference.dim));
      const got = Array.from(out.features.subarray(k * out.dim, (k + 1) * out.dim));
      got.forEach((value, j) => expect(value, `patch ${k} feature ${j}`).toBeCloseTo(want[j] as number, 5));
    });

    const otherSize = await runCli(['extract', 'slides', '--out', 'other', '--patches', 'patches', '--patch-size', '128', ...COMMON], root);
    expect(otherSize.code).toBe(4);
    const table = await import('node:fs').then((fs) => fs.readFileSync(path.join(root, 'other', 'process_list.csv'), 'utf8'));
    expect(table).toMatch(/patches are \d+ px at level 0, but this extraction reads \d+ px patches/);
  }, 600_000);
});
