// The data fingerprint reads feature files' headers, attributes and a sample of rows (docs/reliability.md#identity):
// features re-extracted with another encoder of the same width, with the file's size and modification time kept,
// count as changed, and `--resume` over them is refused naming the file and the part that changed. Files here are
// over 1 MiB, so the whole-file hash of small files does not see the change; only the sample does.
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { dataFingerprint, fingerprintChanges, type DataFingerprint } from '../../src/core/engine/run-folder.js';
import { sampleRows } from '../../src/core/engine/feature-sample.js';
import { runCli, tempDir } from '../e2e/helpers.js';

/** Rows and width of the feature files: 2800 × 100 float32 = 1.12 MB, above the 1 MiB whole-file hash. */
const N = 2800;
const D = 100;

/** Deterministic features of one "encoder": the same width and size for any encoder, other values. */
function features(encoder: string, slide: number, label: number): Float32Array {
  const out = new Float32Array(N * D);
  let state = (crc32(`${encoder}/${slide}`) >>> 0) || 1;
  for (let i = 0; i < out.length; i += 1) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 4294967296 - 0.5 + (label === 1 && i % D === 0 ? 1 : 0);
  }
  return out;
}

async function writeH5(file: string, encoder: string, slide: number, label: number, extractorName = encoder): Promise<void> {
  const h5 = (await import('h5wasm/node')).default;
  await h5.ready;
  const f = new h5.File(file, 'w');
  f.create_dataset({ name: 'features', data: features(encoder, slide, label), shape: [N, D], dtype: '<f' });
  f.create_dataset({ name: 'coords', data: Int32Array.from({ length: N * 2 }, (_, i) => (i >> 1) * 256), shape: [N, 2], dtype: '<i' });
  const coords = f.get('coords') as unknown as { create_attribute(name: string, value: number): void };
  coords.create_attribute('patch_level', 0);
  coords.create_attribute('patch_size', 256);
  f.create_attribute('extractor_name', extractorName);
  f.create_attribute('extractor_dim', D);
  f.close();
}

function npy(values: Float32Array, rows: number, cols: number): Buffer {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const prefix = Buffer.alloc(10);
  prefix.write('\x93NUMPY', 0, 'latin1');
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), Buffer.from(values.buffer)]);
}

function safetensors(values: Float32Array, rows: number, cols: number, metadata: Record<string, string>): Buffer {
  const header = Buffer.from(JSON.stringify({ __metadata__: metadata, features: { dtype: 'F32', shape: [rows, cols], data_offsets: [0, values.byteLength] } }));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([length, header, Buffer.from(values.buffer)]);
}

/** A stored (uncompressed) zip in torch.save's layout: `<name>/data.pkl` and one storage `<name>/data/0`. */
function torchZip(pickle: Buffer, storage: Buffer): Buffer {
  const entries = [['archive/data.pkl', pickle], ['archive/data/0', storage]] as const;
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const nameBytes = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt32LE(crc32(data) >>> 0, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt32LE(crc32(data) >>> 0, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, data);
    centrals.push(central, nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

async function fingerprintOf(dir: string): Promise<DataFingerprint> {
  return dataFingerprint({ slides: [], featureDim: D, classNames: ['a', 'b'], datasetOptions: { featuresDir: dir }, bases: [dir] });
}

/** Writes `file` via `write`, then puts the old size and modification time back (as a careful copy would). */
async function rewriteKeepingStat(file: string, write: () => Promise<void> | void): Promise<void> {
  const before = statSync(file);
  await write();
  expect(statSync(file).size).toBe(before.size);
  await utimes(file, before.atime, before.mtime);
  expect(Math.round(statSync(file).mtimeMs)).toBe(Math.round(before.mtimeMs));
}

describe('sampled rows', () => {
  it('are the first, the last and three drawn rows, the same for the same length', () => {
    const rows = sampleRows(N);
    expect(rows[0]).toBe(0);
    expect(rows.at(-1)).toBe(N - 1);
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(rows.length).toBeLessThanOrEqual(5);
    expect(sampleRows(N)).toEqual(rows);
    expect(sampleRows(1)).toEqual([0]);
    expect(sampleRows(0)).toEqual([]);
  });
});

describe('data fingerprint of feature files over 1 MiB with size and mtime kept', () => {
  it('h5: another encoder (attributes and rows) and the same encoder name with other rows are both named', async () => {
    const dir = await tempDir('milkit-fp-h5-');
    const file = path.join(dir, 's0.h5');
    await writeH5(file, 'encoder-a', 0, 0);
    const before = await fingerprintOf(dir);
    expect(await fingerprintOf(dir)).toEqual(before);
    await rewriteKeepingStat(file, () => writeH5(file, 'encoder-b', 0, 0));
    expect(fingerprintChanges(before, await fingerprintOf(dir))).toEqual([`${dir} (dataset option featuresDir): 1 changed (s0.h5 (attributes, rows changed))`]);
    // Rows only: the attributes claim the old encoder.
    await writeH5(file, 'encoder-a', 0, 0);
    const again = await fingerprintOf(dir);
    await rewriteKeepingStat(file, () => writeH5(file, 'encoder-c', 0, 0, 'encoder-a'));
    expect(fingerprintChanges(again, await fingerprintOf(dir))).toEqual([`${dir} (dataset option featuresDir): 1 changed (s0.h5 (rows changed))`]);
  });

  it('npy: other rows of the same shape; another shape of the same size is a header change', async () => {
    const dir = await tempDir('milkit-fp-npy-');
    const file = path.join(dir, 's0.npy');
    writeFileSync(file, npy(features('a', 0, 0), N, D));
    const before = await fingerprintOf(dir);
    await rewriteKeepingStat(file, () => writeFileSync(file, npy(features('b', 0, 0), N, D)));
    expect(fingerprintChanges(before, await fingerprintOf(dir))).toEqual([`${dir} (dataset option featuresDir): 1 changed (s0.npy (rows changed))`]);
    const reshaped = await fingerprintOf(dir);
    await rewriteKeepingStat(file, () => writeFileSync(file, npy(features('b', 0, 0), N / 2, D * 2)));
    expect(fingerprintChanges(reshaped, await fingerprintOf(dir))[0]).toContain('s0.npy (header, rows changed)');
  });

  it('safetensors: metadata is the attributes part, tensors the rows', async () => {
    const dir = await tempDir('milkit-fp-st-');
    const file = path.join(dir, 's0.safetensors');
    writeFileSync(file, safetensors(features('a', 0, 0), N, D, { extractor: 'aaaa' }));
    const before = await fingerprintOf(dir);
    await rewriteKeepingStat(file, () => writeFileSync(file, safetensors(features('a', 0, 0), N, D, { extractor: 'bbbb' })));
    expect(fingerprintChanges(before, await fingerprintOf(dir))).toEqual([`${dir} (dataset option featuresDir): 1 changed (s0.safetensors (attributes changed))`]);
  });

  it('pt (torch.save zip): a storage with other bytes is a rows change, read from the zip directory only', async () => {
    const dir = await tempDir('milkit-fp-pt-');
    const file = path.join(dir, 's0.pt');
    const pickle = Buffer.from('structure: FloatStorage (2800, 100)');
    writeFileSync(file, torchZip(pickle, Buffer.from(features('a', 0, 0).buffer)));
    const before = await fingerprintOf(dir);
    await rewriteKeepingStat(file, () => writeFileSync(file, torchZip(pickle, Buffer.from(features('b', 0, 0).buffer))));
    expect(fingerprintChanges(before, await fingerprintOf(dir))).toEqual([`${dir} (dataset option featuresDir): 1 changed (s0.pt (rows changed))`]);
  });

  it('a run.json recorded before samples existed still matches unchanged data', async () => {
    const dir = await tempDir('milkit-fp-old-');
    await writeH5(path.join(dir, 's0.h5'), 'encoder-a', 0, 0);
    const now = await fingerprintOf(dir);
    const old = JSON.parse(JSON.stringify(now, (key, value: unknown) => (key === 'sample' || key === 'sampleHash' ? undefined : value))) as DataFingerprint;
    expect(fingerprintChanges(old, now)).toEqual([]);
  });
});

describe('--resume over same-width re-extracted features', () => {
  it('is refused with exit 2 naming the file and the parts that changed', async () => {
    const cwd = await tempDir('milkit-fp-cv-');
    const h5Dir = path.join(cwd, 'features', 'h5_files');
    await mkdir(h5Dir, { recursive: true });
    const rows = ['slide_id,case_id,label'];
    for (let s = 0; s < 8; s += 1) {
      await writeH5(path.join(h5Dir, `s${s}.h5`), 'encoder-a', s, s % 2);
      rows.push(`s${s},c${s},${s % 2 === 1 ? 'tumor' : 'normal'}`);
    }
    mkdirSync(path.join(cwd, 'features'), { recursive: true });
    await writeFile(path.join(cwd, 'features', 'slides.csv'), `${rows.join('\n')}\n`);
    await writeFile(path.join(cwd, 'exp.yaml'), [
      'name: reextracted',
      'data:',
      '  dataset: { name: features-h5, slideTable: features/slides.csv, featuresDir: features/h5_files }',
      'model: { aggregator: { name: mean-pool } }',
      'split: { mode: kfold, folds: 2, valFraction: 0.25 }',
      'train: { epochs: 1 }',
      'eval: { bootstrap: 0 }',
      'runtime: { backend: cpu }',
      '',
    ].join('\n'));
    const first = await runCli(['cv', 'exp.yaml'], cwd);
    expect(first.code, first.err).toBe(0);
    const [hash] = (await readdir(path.join(cwd, 'outputs', 'reextracted'))).filter((n) => /^[0-9a-f]{8}$/.test(n));
    const recorded = JSON.parse(await readFile(path.join(cwd, 'outputs', 'reextracted', hash as string, 'run.json'), 'utf8')) as { data: DataFingerprint };
    expect(recorded.data.paths.find((p) => p.key === 'featuresDir')?.files?.['s3.h5']?.sample).toMatchObject({ header: expect.any(String), attributes: expect.any(String), rows: expect.any(String) });

    // Same data: accepted.
    expect((await runCli(['cv', 'exp.yaml', '--resume'], cwd)).code).toBe(0);
    // s3.h5 re-extracted by another encoder of the same width; its size and modification time put back.
    const file = path.join(h5Dir, 's3.h5');
    await rewriteKeepingStat(file, () => writeH5(file, 'encoder-b', 3, 1));
    const refused = await runCli(['cv', 'exp.yaml', '--resume'], cwd);
    expect(refused.code, refused.err).toBe(2);
    expect(refused.err).toContain('--resume: the data changed since');
    expect(refused.err).toContain('1 changed (s3.h5 (attributes, rows changed))');
    expect(refused.err).not.toMatch(/\n\s+at /);
  }, 240_000);
});
