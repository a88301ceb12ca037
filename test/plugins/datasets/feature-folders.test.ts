import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dump } from 'npyjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { validateSource } from '../../../src/core/data/bags.js';
import { exportDataset } from '../../../src/core/data/export.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { writeSafetensors } from '../../../src/core/nn/safetensors.js';
import { Registry, type BagData, type BagSource } from '../../../src/registry/index.js';
import { asyncErrorText } from '../../core/data/error-text.js';

const registry = new Registry(builtinManifest());

async function create(name: string, options: Record<string, unknown>, baseDir: string, extra: { labelMap?: Record<string, number>; cacheBytes?: number } = {}, logger = new MemoryLogger()): Promise<BagSource> {
  const resolved = await registry.resolve('dataset', { name, ...options }, { key: 'data.dataset' });
  return registry.create(resolved, { seed: 0, logger, baseDir, ...extra });
}

function expectSameBag(a: BagData, b: BagData): void {
  expect([a.n, a.d]).toEqual([b.n, b.d]);
  expect(Array.from(a.features)).toEqual(Array.from(b.features));
  expect(Array.from(a.coords ?? [])).toEqual(Array.from(b.coords ?? []));
  expect(Array.from(a.thumbs ?? [])).toEqual(Array.from(b.thumbs ?? []));
  expect(Array.from(a.instanceLabels ?? [])).toEqual(Array.from(b.instanceLabels ?? []));
}

describe('feature-folder datasets', () => {
  let dir: string;
  let synthetic: BagSource;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'milkit-export-'));
    synthetic = await create('synthetic-camelyon', { slides: 6, instances: [10, 20], featureDim: 8, signalDim: 2 }, dir);
    await exportDataset(synthetic, path.join(dir, 'cam'), { logger: new MemoryLogger() });
  });

  it('dataset/features-h5 reads an exported synthetic dataset back identically', async () => {
    const files = await create('features-h5', { slideTable: 'cam/slides.csv', featuresDir: 'cam/h5_files' }, dir, { labelMap: { normal_tissue: 0, tumor_tissue: 1 } });
    expect(files.featureDim).toBe(8);
    expect(files.classNames).toEqual(synthetic.classNames);
    expect(files.slides).toEqual(synthetic.slides);
    for (const s of synthetic.slides) expectSameBag(await files.load(s.slideId), await synthetic.load(s.slideId));
    expect(files.fileOf?.('cam-0')).toBe(path.join(dir, 'cam', 'h5_files', 'cam-0.h5'));
  });

  it('writes the slide table with metadata columns', () => {
    const lines = readFileSync(path.join(dir, 'cam', 'slides.csv'), 'utf8').trim().split('\n');
    expect(lines[0]).toBe('slide_id,case_id,label,split,num_instances,tumor_instances');
    expect(lines).toHaveLength(7);
  });

  it('prints the inferred label map', async () => {
    const logger = new MemoryLogger();
    const files = await create('features-h5', { slideTable: 'cam/slides.csv', featuresDir: 'cam/h5_files' }, dir, {}, logger);
    expect(files.classNames).toEqual(['normal_tissue', 'tumor_tissue']);
    expect(logger.text()).toContain('labels inferred (declare data.labels to fix the order): normal_tissue=0, tumor_tissue=1');
  });

  it('dataset/features-dir reads a folder mixing h5, safetensors and npy files', async () => {
    const mixed = path.join(dir, 'mixed');
    mkdirSync(path.join(mixed, 'feats'), { recursive: true });
    mkdirSync(path.join(mixed, 'coords'), { recursive: true });
    copyFileSync(path.join(dir, 'cam', 'slides.csv'), path.join(mixed, 'slides.csv'));
    for (const [i, s] of synthetic.slides.entries()) {
      const bag = await synthetic.load(s.slideId);
      const base = path.join(mixed, 'feats', s.slideId);
      if (i % 3 === 0) copyFileSync(path.join(dir, 'cam', 'h5_files', `${s.slideId}.h5`), `${base}.h5`);
      else if (i % 3 === 1) {
        writeFileSync(`${base}.safetensors`, writeSafetensors({
          features: { dtype: 'F32', shape: [bag.n, bag.d], data: bag.features },
          coords: { dtype: 'F32', shape: [bag.n, 2], data: bag.coords as Float32Array },
          thumbs: { dtype: 'U8', shape: [bag.n, 16, 16, 3], data: bag.thumbs as Uint8Array },
        }));
      } else {
        writeFileSync(`${base}.npy`, Buffer.from(dump(bag.features, [bag.n, bag.d])));
        writeFileSync(path.join(mixed, 'coords', `${s.slideId}.npy`), Buffer.from(dump(bag.coords as Float32Array, [bag.n, 2])));
      }
    }
    const files = await create('features-dir', { slideTable: 'slides.csv', featuresDir: 'feats', coordsDir: 'coords' }, mixed);
    for (const [i, s] of synthetic.slides.entries()) {
      const expected = await synthetic.load(s.slideId);
      const got = await files.load(s.slideId);
      expect(Array.from(got.features)).toEqual(Array.from(expected.features));
      expect(Array.from(got.coords ?? [])).toEqual(Array.from(expected.coords ?? []));
      if (i % 3 !== 2) expect(Array.from(got.thumbs ?? [])).toEqual(Array.from(expected.thumbs ?? []));
    }
  });

  it('reads thumbnails from a side folder (npy and h5) and checks their shape', async () => {
    const side = path.join(dir, 'side');
    mkdirSync(path.join(side, 'thumbs'), { recursive: true });
    const [first, second] = synthetic.slides;
    const a = await synthetic.load(first?.slideId as string);
    writeFileSync(path.join(side, 'thumbs', `${a.slideId}.npy`), Buffer.from(dump(a.thumbs as Uint8Array, [a.n, 16, 16, 3])));
    copyFileSync(path.join(dir, 'cam', 'h5_files', `${second?.slideId as string}.h5`), path.join(side, 'thumbs', `${second?.slideId as string}.h5`));
    const files = await create('features-h5', { slideTable: 'cam/slides.csv', featuresDir: 'cam/h5_files', thumbsDir: 'side/thumbs' }, dir);
    expect(Array.from((await files.load(a.slideId)).thumbs ?? [])).toEqual(Array.from(a.thumbs ?? []));
    expect(Array.from((await files.load(second?.slideId as string)).thumbs ?? [])).toEqual(Array.from((await synthetic.load(second?.slideId as string)).thumbs ?? []));
    writeFileSync(path.join(side, 'thumbs', `${a.slideId}.npy`), Buffer.from(dump(new Uint8Array(a.n * 8 * 8 * 3), [a.n, 8, 8, 3])));
    const again = await create('features-h5', { slideTable: 'cam/slides.csv', featuresDir: 'cam/h5_files', thumbsDir: 'side/thumbs' }, dir);
    expect(await asyncErrorText(() => again.load(a.slideId))).toBe(
      `DataError[thumbs-shape] ${path.join(side, 'thumbs', `${a.slideId}.npy`)}: slide "${a.slideId}": "thumbs" has shape [${a.n}, 8, 8, 3], expected uint8 [N, 16, 16, 3] (or 4 with alpha). Thumbnails are 16×16 RGB patches at 1.25×, one per feature row.`,
    );
  });

  it('skips a missing and a truncated file under onBadSlide: skip, naming slide and file', async () => {
    const broken = path.join(dir, 'broken');
    mkdirSync(path.join(broken, 'h5'), { recursive: true });
    copyFileSync(path.join(dir, 'cam', 'slides.csv'), path.join(broken, 'slides.csv'));
    for (const s of synthetic.slides) copyFileSync(path.join(dir, 'cam', 'h5_files', `${s.slideId}.h5`), path.join(broken, 'h5', `${s.slideId}.h5`));
    unlinkSync(path.join(broken, 'h5', 'cam-2.h5'));
    const cut = path.join(broken, 'h5', 'cam-4.h5');
    writeFileSync(cut, readFileSync(cut).subarray(0, 3000));
    const files = await create('features-h5', { slideTable: 'slides.csv', featuresDir: 'h5' }, broken);
    const logger = new MemoryLogger();
    const result = await validateSource(files, { inputDim: 8, onBadSlide: 'skip', logger });
    expect(result.slides.map((s) => s.slideId)).toEqual(['cam-0', 'cam-1', 'cam-3', 'cam-5']);
    expect(result.skipped.map((s) => s.slideId)).toEqual(['cam-2', 'cam-4']);
    expect(result.skipped[0]?.reason).toBe(`[missing-file] ${path.join(broken, 'h5', 'cam-2.h5')}: slide "cam-2": feature file not found. Check data.dataset.featuresDir and that the file is named <slide_id> + extension, or set data.onBadSlide: skip.`);
    expect(result.skipped[1]?.reason).toMatch(/^\[unreadable-file\] .*cam-4\.h5: slide "cam-4": truncated file: 3000 bytes on disk, the HDF5 superblock records \d+\./);
    expect(logger.text()).toContain('skipped 2 of 6 slides (data.onBadSlide: skip)');
    expect(await asyncErrorText(() => validateSource(files, { inputDim: 8, onBadSlide: 'error', logger }))).toMatch(/^DataError\[missing-file\] .*cam-2\.h5: slide "cam-2"/);
  });

  it('rejects a features folder that does not exist', async () => {
    expect(await asyncErrorText(() => create('features-h5', { slideTable: 'cam/slides.csv', featuresDir: 'nope' }, dir))).toBe(
      `DataError[missing-file] ${path.join(dir, 'nope')} › data.dataset.featuresDir: features folder not found. Point featuresDir at the folder of per-slide feature files (CLAM: h5_files/).`,
    );
  });

  it('rejects options that are not in the schema', async () => {
    expect(await asyncErrorText(() => create('features-h5', { slideTable: 'a.csv', featuresDir: 'b', featureDir: 'c' }, dir))).toMatch(/data\.dataset\.featureDir: unknown key/);
  });
});
