// Patch coordinates made by other tools, used instead of segmenting: CLAM's and TRIDENT's `patches/<slide>.h5`
// hold one dataset `coords` ([N, 2] level-0 x, y) whose attributes say the patch size. CLAM gives it in pixels of
// the level it patched at (`patch_size`, `patch_level`, `downsample`); TRIDENT gives the level-0 size directly
// (`patch_size_level0`). See docs/slides.md#patch-coordinates-from-clam-or-trident.
import { open, stat } from 'node:fs/promises';
import { DataError } from '../errors.js';

export interface PatchCoords {
  /** [N, 2] level-0 top-left corners (x, y), in the file's row order. */
  readonly coords: Int32Array;
  /** Patch side in level-0 pixels, when the attributes say it. */
  readonly patchSizeLevel0: number | undefined;
  /** Who wrote it, as told by its attributes. */
  readonly layout: 'clam' | 'trident' | 'unknown';
  /** Every attribute of `coords`, as JSON values. */
  readonly attributes: Readonly<Record<string, unknown>>;
}

type H5Api = typeof import('h5wasm/node').default;

function firstNumber(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'bigint') return Number(value);
  if (Array.isArray(value) && value.length > 0) return firstNumber(value[0]);
  return undefined;
}

/** Reads `coords` and its attributes from a CLAM/TRIDENT patch file; every problem names the file. */
export async function readPatchCoordsH5(file: string): Promise<PatchCoords> {
  const hint = 'Give the patches/<slide_id>.h5 written by CLAM (create_patches_fp.py) or TRIDENT for this slide, or let milkit segment the slide instead.';
  await stat(file).catch((cause: unknown) => {
    throw new DataError('missing-file', 'patch coordinate file not found.', { where: { file }, hint, cause });
  });
  // The HDF5 signature first: the library itself prints a diagnostic stack to stderr for a file that is not HDF5.
  const head = Buffer.alloc(8);
  const handle = await open(file, 'r');
  await handle.read(head, 0, 8, 0).finally(() => handle.close());
  if (!head.equals(Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    throw new DataError('unreadable-file', 'cannot open the patch coordinate file as HDF5 (no HDF5 signature at its start).', { where: { file }, hint });
  }
  const h5: H5Api = (await import('h5wasm/node')).default;
  await h5.ready;
  let f: InstanceType<H5Api['File']>;
  try {
    f = new h5.File(file, 'r');
  } catch (cause) {
    throw new DataError('unreadable-file', `cannot open the patch coordinate file as HDF5 (${String(cause)}).`, { where: { file }, hint, cause });
  }
  try {
    let keys: string[];
    try {
      keys = f.keys();
    } catch (cause) {
      // h5wasm opens any file lazily; a file that is not HDF5 (or is truncated) fails here.
      throw new DataError('unreadable-file', `cannot open the patch coordinate file as HDF5 (${String(cause)}).`, { where: { file }, hint, cause });
    }
    if (!keys.includes('coords')) {
      throw new DataError('missing-dataset', `the patch coordinate file has no "coords" dataset (it has: ${keys.join(', ') || 'nothing'}).`, { where: { file, key: 'coords' }, hint });
    }
    const dataset = f.get('coords') as unknown as { shape: number[] | null; value: unknown; attrs: Record<string, { json_value: unknown }> };
    const shape = dataset.shape ?? [];
    if (shape.length !== 2 || shape[1] !== 2) {
      throw new DataError('bad-shape', `"coords" has shape [${shape.join(', ')}]; patch coordinates are [N, 2] (x, y at level 0).`, { where: { file, key: 'coords' }, hint });
    }
    const raw = dataset.value as ArrayLike<number | bigint>;
    const coords = new Int32Array(raw.length);
    for (let i = 0; i < raw.length; i += 1) {
      const v = Number(raw[i]);
      if (!Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1) {
        throw new DataError('bad-value', `"coords" row ${Math.floor(i / 2)} has ${String(raw[i])}; coordinates are non-negative whole level-0 pixels.`, { where: { file, key: 'coords' }, hint });
      }
      coords[i] = v;
    }
    const attributes: Record<string, unknown> = {};
    for (const [name, attribute] of Object.entries(dataset.attrs)) attributes[name] = attribute.json_value;
    const level0 = firstNumber(attributes.patch_size_level0);
    const size = firstNumber(attributes.patch_size);
    const level = firstNumber(attributes.patch_level);
    const downsample = firstNumber(attributes.downsample);
    let patchSizeLevel0: number | undefined;
    let layout: PatchCoords['layout'] = 'unknown';
    if (level0 !== undefined) {
      patchSizeLevel0 = level0;
      layout = 'trident';
    } else if (size !== undefined && level !== undefined) {
      // CLAM: the size is in pixels of the patch level; its downsample brings it to level 0.
      patchSizeLevel0 = level === 0 ? size : downsample !== undefined ? Math.round(size * downsample) : undefined;
      layout = 'clam';
    }
    return { coords, patchSizeLevel0, layout, attributes };
  } finally {
    try {
      f.close();
    } catch {
      // The error already thrown says what is wrong with this file; a failing close adds nothing.
    }
  }
}
