import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dump } from 'npyjs';
import { describe, expect, it } from 'vitest';
import { checkBag } from '../../../src/core/data/bags.js';
import { readH5Bag, readNpyBag, readSafetensorsBag } from '../../../src/core/data/readers.js';
import { writeSafetensors } from '../../../src/core/nn/safetensors.js';
import { asyncErrorText } from './error-text.js';

const FIXTURES = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../reference/fixtures/h5');
const fixture = (name: string): string => path.join(FIXTURES, name);

/** The closed formulas of test/reference/h5_features.py. */
function features(n: number, d: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i += 1) for (let j = 0; j < d; j += 1) out.push((((i * 7919 + j * 104729) % 2001) - 1000) / 64);
  return out;
}
function coords(n: number): number[] {
  return Array.from({ length: n }, (_, i) => [256 * (i % 5), 256 * Math.floor(i / 5)]).flat();
}
function thumbs(n: number, channels: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i += 1) for (let y = 0; y < 16; y += 1) for (let x = 0; x < 16; x += 1) for (let c = 0; c < channels; c += 1) out.push((i * 31 + y * 7 + x * 3 + c * 50) % 256);
  return out;
}

describe('core/data/readers', () => {
  it('loads a CLAM h5 written by h5py with (1, 1024) chunks identically to the source arrays', async () => {
    const bag = await readH5Bag(fixture('clam-1024.h5'), 'clam');
    expect([bag.n, bag.d]).toEqual([6, 1024]);
    expect(Array.from(bag.features)).toEqual(features(6, 1024));
    expect(Array.from(bag.coords ?? [])).toEqual(coords(6));
    expect(bag.thumbs).toBeUndefined();
  });

  it('loads a TRIDENT-style h5 (contiguous, int64 coords)', async () => {
    const bag = await readH5Bag(fixture('trident.h5'), 'trident');
    expect(Array.from(bag.features)).toEqual(features(7, 16));
    expect(Array.from(bag.coords ?? [])).toEqual(coords(7));
  });

  it('loads thumbnails in feature row order, dropping an alpha channel', async () => {
    const rgb = await readH5Bag(fixture('thumbs.h5'), 't');
    expect(Array.from(rgb.thumbs ?? [])).toEqual(thumbs(5, 3));
    const rgba = await readH5Bag(fixture('thumbs-rgba.h5'), 't');
    expect(Array.from(rgba.thumbs ?? [])).toEqual(thumbs(5, 3));
    expect((await readH5Bag(fixture('thumbs.h5'), 't', undefined, { thumbs: false })).thumbs).toBeUndefined();
  });

  it('widens float16 features exactly', async () => {
    const bag = await readH5Bag(fixture('float16.h5'), 'half');
    // Every value is a multiple of 1/64 below 16 in magnitude: representable in float16.
    expect(Array.from(bag.features)).toEqual(features(3, 16));
  });

  it('names slide and file for a missing file', async () => {
    const file = fixture('absent.h5');
    expect(await asyncErrorText(() => readH5Bag(file, 'absent'))).toBe(
      `DataError[missing-file] ${file}: slide "absent": feature file not found. Check data.dataset.featuresDir and that the file is named <slide_id> + extension, or set data.onBadSlide: skip.`,
    );
  });

  it('names slide and file for a file that is not HDF5', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'milkit-h5-'));
    const file = path.join(dir, 'text.h5');
    writeFileSync(file, 'slide_id,label\n');
    expect(await asyncErrorText(() => readH5Bag(file, 'text'))).toBe(
      `DataError[unreadable-file] ${file}: slide "text": not an HDF5 file (no HDF5 signature). Re-export the file (it may be truncated by an interrupted copy), or set data.onBadSlide: skip.`,
    );
  });

  it('reports a truncated h5 with sizes on disk and in the superblock', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'milkit-h5-'));
    const file = path.join(dir, 'cut.h5');
    writeFileSync(file, readFileSync(fixture('clam-1024.h5')).subarray(0, 20_000));
    expect(await asyncErrorText(() => readH5Bag(file, 'cut'))).toBe(
      `DataError[unreadable-file] ${file}: slide "cut": truncated file: 20000 bytes on disk, the HDF5 superblock records 31528. Re-export the file (it may be truncated by an interrupted copy), or set data.onBadSlide: skip.`,
    );
  });

  it('names the missing dataset and what the file holds', async () => {
    const file = fixture('no-features.h5');
    expect(await asyncErrorText(() => readH5Bag(file, 'nf'))).toBe(
      `DataError[missing-dataset] ${file}: slide "nf": dataset "features" not found (file has: coords). CLAM/TRIDENT files hold "features" [N, D] and "coords" [N, 2]; if yours uses other names set data.dataset.featuresKey / coordsKey.`,
    );
  });

  it('rejects a 1-D features dataset', async () => {
    const file = fixture('one-dim.h5');
    expect(await asyncErrorText(() => readH5Bag(file, 'flat'))).toBe(`DataError[feature-shape] ${file}: slide "flat": "features" has shape [16], expected [N, D]. Save one 2-D array of instance features per slide.`);
  });

  it.each([
    ['empty.h5', 'empty-bag', 'slide "x" has no instances (N = 0).'],
    ['non-finite.h5', 'non-finite-features', 'slide "x": 2 non-finite feature value(s) (first NaN at instance 3, column 2).'],
    ['coords-mismatch.h5', 'coords-length-mismatch', 'slide "x": coords have 4 rows but features have N = 5.'],
    ['narrow.h5', 'feature-dim-mismatch', 'slide "x": feature width 8 ≠ 16 expected by the model (inputDim).'],
  ])('loads %s and flags it as %s', async (name, code, message) => {
    const bag = await readH5Bag(fixture(name), 'x');
    const [problem] = checkBag(bag, 16, fixture(name));
    expect(problem?.code).toBe(code);
    expect(problem?.message).toBe(message);
    expect(problem?.where?.file).toBe(fixture(name));
  });

  it('reads safetensors bags (F16 features, I64 coords) and names a missing tensor', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'milkit-st-'));
    const file = path.join(dir, 's.safetensors');
    const f = features(3, 4);
    const half = new Uint16Array(f.map((v) => {
      // float16 bits of small multiples of 1/64 (exact): sign, exponent, 10-bit mantissa.
      if (v === 0) return 0;
      const sign = v < 0 ? 0x8000 : 0;
      const a = Math.abs(v);
      const e = Math.floor(Math.log2(a));
      return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
    }));
    writeFileSync(file, writeSafetensors({
      features: { dtype: 'F16', shape: [3, 4], data: half },
      coords: { dtype: 'I64', shape: [3, 2], data: BigInt64Array.from(coords(3).map(BigInt)) },
    }));
    const bag = await readSafetensorsBag(file, 's');
    expect(Array.from(bag.features)).toEqual(f);
    expect(Array.from(bag.coords ?? [])).toEqual(coords(3));
    writeFileSync(file, writeSafetensors({ feats: { dtype: 'F32', shape: [1, 1], data: new Float32Array(1) } }));
    expect(await asyncErrorText(() => readSafetensorsBag(file, 's'))).toMatch(/missing-dataset\] .*s\.safetensors: slide "s": tensor "features" not found \(file has: feats\)/);
    writeFileSync(file, 'garbage!');
    expect(await asyncErrorText(() => readSafetensorsBag(file, 's'))).toMatch(/^DataError\[unreadable-file\] .*: slide "s": cannot parse the safetensors file/);
  });

  it('reads npy bags with side files', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'milkit-npy-'));
    writeFileSync(path.join(dir, 'f.npy'), Buffer.from(dump(Float32Array.from(features(4, 3)), [4, 3])));
    writeFileSync(path.join(dir, 'c.npy'), Buffer.from(dump(Int32Array.from(coords(4)), [4, 2])));
    const bag = await readNpyBag({ features: path.join(dir, 'f.npy'), coords: path.join(dir, 'c.npy') }, 'n');
    expect([bag.n, bag.d]).toEqual([4, 3]);
    expect(Array.from(bag.features)).toEqual(features(4, 3));
    expect(Array.from(bag.coords ?? [])).toEqual(coords(4));
    copyFileSync(fixture('trident.h5'), path.join(dir, 'bad.npy'));
    expect(await asyncErrorText(() => readNpyBag({ features: path.join(dir, 'bad.npy') }, 'n'))).toMatch(/^DataError\[unreadable-file\] .*bad\.npy: slide "n": cannot parse the \.npy file/);
  });
});
