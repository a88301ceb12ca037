// The feature files `milkit extract` writes: CLAM's h5 layout (`features` [N, D] float32, `coords` [N, 2] int32
// level-0 corners with `patch_level`/`patch_size` attributes) plus HDMIL's `thumbs` [N, 16, 16, 3] uint8, and root
// attributes saying what the features are: the patch geometry and the extractor's identity. The file is written
// under a temporary name and renamed, so a killed run never leaves a truncated `.h5` behind.
import { rename, rm } from 'node:fs/promises';
import { DataError } from '../errors.js';
import type { FeatureExtractorIdentity } from './extractor.js';

/** Root attributes of an extracted feature file. */
export interface FeatureFileAttributes {
  /** Patch side in level-0 pixels. */
  readonly patchSizeLevel0: number;
  /** Patch side at the target magnification (what was read and resized to the encoder's input). */
  readonly patchSize: number;
  /** Pyramid level the patches were read from. */
  readonly readLevel: number;
  /** Target microns per pixel and magnification (0 when unknown). */
  readonly targetMpp: number;
  readonly targetMagnification: number;
  readonly extractor: FeatureExtractorIdentity;
}

export interface FeatureFileContent {
  readonly features: Float32Array;
  readonly dim: number;
  readonly coords: Int32Array;
  /** [N, 16, 16, 3] or undefined to leave thumbnails out. */
  readonly thumbs: Uint8Array | undefined;
  readonly attributes: FeatureFileAttributes;
}

type H5Module = typeof import('h5wasm/node').default;

async function h5(): Promise<H5Module> {
  const module = (await import('h5wasm/node')).default;
  await module.ready;
  return module;
}

/** Writes `file` atomically (temporary `<file>.<pid>.partial`, then rename). */
export async function writeFeatureFile(file: string, content: FeatureFileContent): Promise<void> {
  const lib = await h5();
  const n = content.coords.length / 2;
  const partial = `${file}.${process.pid}.partial`;
  const f = new lib.File(partial, 'w');
  try {
    const { attributes: a } = content;
    f.create_dataset({ name: 'features', data: content.features, shape: [n, content.dim], dtype: '<f', maxshape: [null, content.dim], chunks: [Math.max(1, Math.min(n, 256)), content.dim] });
    f.create_dataset({ name: 'coords', data: content.coords, shape: [n, 2], dtype: '<i', maxshape: [null, 2], chunks: [Math.max(1, Math.min(n, 1024)), 2] });
    const coords = f.get('coords') as { create_attribute(name: string, data: number): void };
    // CLAM's attributes, at level 0 so that every reader maps the corners the same way.
    coords.create_attribute('patch_level', 0);
    coords.create_attribute('patch_size', a.patchSizeLevel0);
    if (content.thumbs !== undefined) {
      f.create_dataset({ name: 'thumbs', data: content.thumbs, shape: [n, 16, 16, 3], dtype: '|B', chunks: [Math.max(1, Math.min(n, 256)), 16, 16, 3] });
    }
    f.create_attribute('patch_size_level0', a.patchSizeLevel0);
    f.create_attribute('patch_size', a.patchSize);
    f.create_attribute('read_level', a.readLevel);
    f.create_attribute('target_mpp', a.targetMpp, null, '<d');
    f.create_attribute('target_magnification', a.targetMagnification, null, '<d');
    f.create_attribute('extractor_name', a.extractor.name);
    f.create_attribute('extractor_model_sha256', a.extractor.modelSha256 || '-');
    f.create_attribute('extractor_input_size', a.extractor.inputSize);
    f.create_attribute('extractor_dim', a.extractor.dim);
    f.create_attribute('extractor_normalisation_mean', [...a.extractor.normalisation.mean], [3], '<d');
    f.create_attribute('extractor_normalisation_std', [...a.extractor.normalisation.std], [3], '<d');
  } catch (error) {
    f.close();
    await rm(partial, { force: true });
    throw error;
  }
  f.close();
  await rename(partial, file);
}

function attribute(attrs: Record<string, { value: unknown }>, name: string, file: string): unknown {
  const entry = attrs[name];
  if (entry === undefined) {
    throw new DataError('no-extractor-identity', `the feature file has no "${name}" attribute, so it does not say which extractor wrote it.`, {
      where: { file },
      hint: 'Feature files written by `milkit extract` carry it; re-extract the slides with milkit extract, or compare extractors by hand.',
    });
  }
  return entry.value;
}

function numberAttribute(attrs: Record<string, { value: unknown }>, name: string, file: string): number {
  const value = attribute(attrs, name, file);
  const n = typeof value === 'bigint' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new DataError('bad-extractor-identity', `attribute "${name}" is not a number.`, { where: { file } });
  return n;
}

function tripleAttribute(attrs: Record<string, { value: unknown }>, name: string, file: string): [number, number, number] {
  const value = attribute(attrs, name, file);
  const list = ArrayBuffer.isView(value) ? Array.from(value as unknown as ArrayLike<number>) : Array.isArray(value) ? (value as number[]) : [];
  if (list.length !== 3) throw new DataError('bad-extractor-identity', `attribute "${name}" is not three numbers.`, { where: { file } });
  return [Number(list[0]), Number(list[1]), Number(list[2])];
}

/** The extractor identity and patch geometry a feature file records (DataError naming the file when absent). */
export async function readFeatureFileAttributes(file: string): Promise<FeatureFileAttributes & { readonly patches: number }> {
  const lib = await h5();
  let f: InstanceType<H5Module['File']>;
  try {
    f = new lib.File(file, 'r');
  } catch (cause) {
    throw new DataError('unreadable-feature-file', 'cannot open the feature file as HDF5.', { where: { file }, cause });
  }
  try {
    const attrs = f.attrs as unknown as Record<string, { value: unknown }>;
    const sha = String(attribute(attrs, 'extractor_model_sha256', file));
    const features = f.get('features') as { shape?: number[] } | null;
    return {
      patches: features?.shape?.[0] ?? 0,
      patchSizeLevel0: numberAttribute(attrs, 'patch_size_level0', file),
      patchSize: numberAttribute(attrs, 'patch_size', file),
      readLevel: numberAttribute(attrs, 'read_level', file),
      targetMpp: numberAttribute(attrs, 'target_mpp', file),
      targetMagnification: numberAttribute(attrs, 'target_magnification', file),
      extractor: {
        name: String(attribute(attrs, 'extractor_name', file)),
        modelSha256: sha === '-' ? '' : sha,
        inputSize: numberAttribute(attrs, 'extractor_input_size', file),
        dim: numberAttribute(attrs, 'extractor_dim', file),
        normalisation: { mean: tripleAttribute(attrs, 'extractor_normalisation_mean', file), std: tripleAttribute(attrs, 'extractor_normalisation_std', file) },
      },
    };
  } finally {
    f.close();
  }
}

/** The identity of the extractor that wrote a feature file (for refusing a cohort embedded by another encoder). */
export async function readFeatureFileIdentity(file: string): Promise<FeatureExtractorIdentity> {
  return (await readFeatureFileAttributes(file)).extractor;
}
