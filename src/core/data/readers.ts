// Feature-file readers: one slide's bag from a CLAM/TRIDENT `.h5` (h5wasm), a `.safetensors` or `.npy`
// file. Every failure is a DataError that names the slide and the file (missing, unreadable/truncated,
// missing dataset, wrong shape); shape/finiteness checks of the loaded bag live in bags.ts checkBag.
import { open, readFile, stat } from 'node:fs/promises';
import { parse as parseNpy } from 'npyjs';
import type { BagData } from '../../registry/contracts/data.js';
import { DataError } from '../errors.js';
import { readSafetensors, toFloat32, type TensorRecord } from '../nn/safetensors.js';
import { THUMB_SIDE } from './synthetic.js';

/** Dataset (h5) or tensor (safetensors) names of a bag's arrays. */
export interface BagKeys {
  readonly features: string;
  readonly coords: string;
  readonly thumbs: string;
}

export const CLAM_KEYS: BagKeys = { features: 'features', coords: 'coords', thumbs: 'thumbs' };

/** Instance ground truth (0/1 per row) travels in this non-CLAM dataset, so attention can be scored from files. */
export const INSTANCE_LABELS_KEY = 'instance_labels';

/** A numeric array as read from a file, before it becomes part of a bag. */
export interface HostArray {
  readonly shape: readonly number[];
  readonly data: ArrayLike<number> | BigInt64Array | BigUint64Array;
}

type H5Api = typeof import('h5wasm/node').default;
type H5Runtime = Awaited<H5Api['ready']>;

let h5Ready: Promise<{ h5: H5Api; runtime: H5Runtime }> | undefined;

/** Loads h5wasm once (lazily: importing milkit must not start the wasm module). */
function loadH5(): Promise<{ h5: H5Api; runtime: H5Runtime }> {
  h5Ready ??= (async () => {
    const h5 = (await import('h5wasm/node')).default;
    return { h5, runtime: await h5.ready };
  })();
  return h5Ready;
}

const HDF5_SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Checks the HDF5 superblock before the library sees the file: its signature (at 0, 512, 1024, ...) and
 * the end-of-file address it records, so truncated copies are reported by us (HDF5 itself would print a
 * diagnostic stack to the process's stderr). Returns a reason when the file is unusable.
 */
async function superblockProblem(file: string, size: number): Promise<string | undefined> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(96);
    for (let offset = 0; offset + 8 <= size; offset = offset === 0 ? 512 : offset * 2) {
      const { bytesRead } = await handle.read(head, 0, head.length, offset);
      if (!HDF5_SIGNATURE.every((b, i) => head[i] === b)) continue;
      const version = head[8] as number;
      // Field positions per superblock version (HDF5 file format spec §II.A).
      const offsetSize = version <= 1 ? (head[13] as number) : (head[9] as number);
      const baseAt = version === 0 ? 24 : version === 1 ? 28 : 12;
      // v0/v1: base, free-space, EOF addresses; v2/v3: base, extension, EOF addresses.
      const eofAt = baseAt + 2 * offsetSize;
      if (offsetSize !== 8 || eofAt + 8 > bytesRead) return undefined;
      const base = Number(head.readBigUInt64LE(baseAt));
      const storedEof = Number(head.readBigUInt64LE(eofAt));
      if (base + storedEof > size) return `truncated file: ${size} bytes on disk, the HDF5 superblock records ${base + storedEof}`;
      return undefined;
    }
    return 'not an HDF5 file (no HDF5 signature)';
  } finally {
    await handle.close();
  }
}

async function fileSize(file: string, slideId: string): Promise<number> {
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new DataError('missing-file', `slide "${slideId}": feature path is not a file.`, { where: { file }, hint: 'Point data.dataset.featuresDir at the folder of per-slide files.' });
    return s.size;
  } catch (error) {
    if (error instanceof DataError) throw error;
    throw new DataError('missing-file', `slide "${slideId}": feature file not found.`, {
      where: { file },
      hint: 'Check data.dataset.featuresDir and that the file is named <slide_id> + extension, or set data.onBadSlide: skip.',
      cause: error,
    });
  }
}

function unreadable(slideId: string, file: string, what: string, cause?: unknown): DataError {
  return new DataError('unreadable-file', `slide "${slideId}": ${what}.`, { where: { file }, hint: 'Re-export the file (it may be truncated by an interrupted copy), or set data.onBadSlide: skip.', cause });
}

function missingDataset(slideId: string, file: string, name: string, available: readonly string[], kind: string): DataError {
  return new DataError('missing-dataset', `slide "${slideId}": ${kind} "${name}" not found (file has: ${available.length > 0 ? available.join(', ') : 'nothing'}).`, {
    where: { file },
    hint: `CLAM/TRIDENT files hold "features" [N, D] and "coords" [N, 2]; if yours uses other names set data.dataset.featuresKey / coordsKey.`,
  });
}

/** Float32 view of any numeric array (float64/16 and integer types convert; float32 is shared). */
function asFloat32(data: HostArray['data']): Float32Array {
  if (data instanceof Float32Array) return data;
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Float32Array.from(data as ArrayLike<bigint>, (v) => Number(v));
  return Float32Array.from(data as ArrayLike<number>);
}

/** Assembles and shape-checks a bag from its arrays; thumbnails may be RGBA (HDMIL), the alpha is dropped. */
export function assembleBag(slideId: string, file: string, features: HostArray, coords: HostArray | undefined, thumbs: HostArray | undefined, keys: BagKeys): BagData {
  if (features.shape.length !== 2) {
    throw new DataError('feature-shape', `slide "${slideId}": "${keys.features}" has shape [${features.shape.join(', ')}], expected [N, D].`, { where: { file }, hint: 'Save one 2-D array of instance features per slide.' });
  }
  const [n, d] = features.shape as [number, number];
  const bag: { -readonly [K in keyof BagData]: BagData[K] } = { slideId, n, d, features: asFloat32(features.data) };
  if (coords !== undefined) {
    if (coords.shape.length !== 2 || coords.shape[1] !== 2) {
      throw new DataError('coords-shape', `slide "${slideId}": "${keys.coords}" has shape [${coords.shape.join(', ')}], expected [N, 2].`, { where: { file }, hint: 'Coordinates are one (x, y) row per instance.' });
    }
    bag.coords = asFloat32(coords.data);
  }
  if (thumbs !== undefined) bag.thumbs = thumbsFromArray(thumbs, slideId, file, keys.thumbs);
  return bag;
}

function dropAlpha(rgba: Uint8Array): Uint8Array {
  const out = new Uint8Array((rgba.length / 4) * 3);
  for (let p = 0, q = 0; p < rgba.length; p += 4, q += 3) {
    out[q] = rgba[p] as number;
    out[q + 1] = rgba[p + 1] as number;
    out[q + 2] = rgba[p + 2] as number;
  }
  return out;
}

interface H5DatasetLike {
  readonly shape: number[] | null;
  readonly metadata: { type: number; size: number; total_size: number };
  readonly value: unknown;
  readonly file_id: bigint;
  readonly path: string;
}

/** Reads a numeric dataset; float16 (which h5wasm does not decode) is read as raw bits and widened. */
function readH5Array(runtime: H5Runtime, dataset: H5DatasetLike): HostArray {
  const shape = dataset.shape ?? [];
  const { type, size, total_size: count } = dataset.metadata;
  const FLOAT_CLASS = 1;
  if (type === FLOAT_CLASS && size === 2) {
    const module = runtime as unknown as { _malloc(n: number): number; _free(p: number): void; HEAPU8: Uint8Array; get_dataset_data(...args: unknown[]): number };
    const ptr = module._malloc(count * 2);
    try {
      module.get_dataset_data(dataset.file_id, dataset.path, null, null, null, BigInt(ptr));
      const bits = new Uint16Array(module.HEAPU8.slice(ptr, ptr + count * 2).buffer);
      return { shape, data: toFloat32({ dtype: 'F16', shape, data: bits }) };
    } finally {
      module._free(ptr);
    }
  }
  return { shape, data: dataset.value as HostArray['data'] };
}

/**
 * Reads the named datasets of one h5 file (those absent are left out); `required` must exist. Every
 * failure names the slide and the file.
 */
export async function readH5Arrays(file: string, slideId: string, names: readonly string[], required: string): Promise<Map<string, HostArray>> {
  const size = await fileSize(file, slideId);
  const problem = await superblockProblem(file, size);
  if (problem !== undefined) throw unreadable(slideId, file, problem);
  const { h5, runtime } = await loadH5();
  let f: InstanceType<H5Api['File']>;
  try {
    f = new h5.File(file, 'r');
  } catch (error) {
    throw unreadable(slideId, file, `cannot open the HDF5 file (${String(error)})`, error);
  }
  try {
    let available: string[];
    try {
      available = f.keys();
    } catch (error) {
      throw unreadable(slideId, file, `cannot list the HDF5 file (${String(error)})`, error);
    }
    if (!available.includes(required)) throw missingDataset(slideId, file, required, available, 'dataset');
    const out = new Map<string, HostArray>();
    for (const name of names) {
      if (!available.includes(name)) continue;
      try {
        out.set(name, readH5Array(runtime, f.get(name) as unknown as H5DatasetLike));
      } catch (error) {
        throw unreadable(slideId, file, `cannot read dataset "${name}" (${String(error)})`, error);
      }
    }
    f.close();
    return out;
  } catch (error) {
    try {
      f.close();
    } catch {
      // The error being thrown already says what is wrong with this file; a failing close adds nothing.
    }
    throw error;
  }
}

/** One slide from a CLAM/TRIDENT `.h5`: `features` [N, D], optional `coords` [N, 2] and `thumbs` [N, 16, 16, 3]. */
export async function readH5Bag(file: string, slideId: string, keys: BagKeys = CLAM_KEYS, opts: { thumbs?: boolean } = {}): Promise<BagData> {
  const names = [keys.features, keys.coords, INSTANCE_LABELS_KEY, ...(opts.thumbs === false ? [] : [keys.thumbs])];
  const arrays = await readH5Arrays(file, slideId, names, keys.features);
  const bag = assembleBag(slideId, file, arrays.get(keys.features) as HostArray, arrays.get(keys.coords), opts.thumbs === false ? undefined : arrays.get(keys.thumbs), keys);
  const truth = arrays.get(INSTANCE_LABELS_KEY);
  if (truth === undefined) return bag;
  if (truth.shape.length !== 1 || truth.shape[0] !== bag.n) {
    throw new DataError('instance-labels-shape', `slide "${slideId}": "${INSTANCE_LABELS_KEY}" has shape [${truth.shape.join(', ')}], expected [N] with N = ${bag.n}.`, { where: { file }, hint: 'Instance labels are one 0/1 value per feature row.' });
  }
  return { ...bag, instanceLabels: Uint8Array.from(truth.data as ArrayLike<number>) };
}

/** Checks a thumbnail array ([N, 16, 16, 3|4] uint8) and returns RGB bytes. */
export function thumbsFromArray(array: HostArray, slideId: string, file: string, name: string): Uint8Array {
  const [, h, w, c] = array.shape;
  if (array.shape.length !== 4 || h !== THUMB_SIDE || w !== THUMB_SIDE || (c !== 3 && c !== 4) || !(array.data instanceof Uint8Array)) {
    throw new DataError('thumbs-shape', `slide "${slideId}": "${name}" has shape [${array.shape.join(', ')}], expected uint8 [N, 16, 16, 3] (or 4 with alpha).`, {
      where: { file },
      hint: 'Thumbnails are 16×16 RGB patches at 1.25×, one per feature row.',
    });
  }
  return c === 3 ? array.data : dropAlpha(array.data);
}

function safetensorsArray(record: TensorRecord): HostArray {
  if (record.dtype === 'F16' || record.dtype === 'BF16' || record.dtype === 'F64') return { shape: record.shape, data: toFloat32(record) };
  return { shape: record.shape, data: record.data as HostArray['data'] };
}

/** One slide from a `.safetensors` file holding tensors `features`, optional `coords` and `thumbs`. */
export async function readSafetensorsBag(file: string, slideId: string, keys: BagKeys = CLAM_KEYS, opts: { thumbs?: boolean } = {}): Promise<BagData> {
  await fileSize(file, slideId);
  let parsed: ReturnType<typeof readSafetensors>;
  try {
    parsed = readSafetensors(new Uint8Array(await readFile(file)));
  } catch (error) {
    throw unreadable(slideId, file, `cannot parse the safetensors file (${error instanceof Error ? error.message : String(error)})`, error);
  }
  const { tensors } = parsed;
  const features = tensors[keys.features];
  if (features === undefined) throw missingDataset(slideId, file, keys.features, Object.keys(tensors), 'tensor');
  const coords = tensors[keys.coords];
  const thumbs = opts.thumbs === false ? undefined : tensors[keys.thumbs];
  return assembleBag(slideId, file, safetensorsArray(features), coords && safetensorsArray(coords), thumbs && safetensorsArray(thumbs), keys);
}

/** One `.npy` array (C or Fortran order; 2-D Fortran arrays are transposed back to row-major). */
export async function readNpyArray(file: string, slideId: string): Promise<HostArray> {
  await fileSize(file, slideId);
  const bytes = await readFile(file);
  try {
    const parsed = parseNpy(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    const data = parsed.data as unknown as HostArray['data'];
    if (parsed.fortranOrder && parsed.shape.length === 2) {
      const [rows, cols] = parsed.shape as [number, number];
      const src = asFloat32(data);
      const out = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r += 1) for (let c = 0; c < cols; c += 1) out[r * cols + c] = src[c * rows + r] as number;
      return { shape: parsed.shape, data: out };
    }
    return { shape: parsed.shape, data };
  } catch (error) {
    throw unreadable(slideId, file, `cannot parse the .npy file (${error instanceof Error ? error.message : String(error)})`, error);
  }
}

/** One slide from `.npy` files: features, and optional coords / thumbs side files. */
export async function readNpyBag(files: { features: string; coords?: string; thumbs?: string }, slideId: string): Promise<BagData> {
  const features = await readNpyArray(files.features, slideId);
  const coords = files.coords === undefined ? undefined : await readNpyArray(files.coords, slideId);
  const thumbs = files.thumbs === undefined ? undefined : await readNpyArray(files.thumbs, slideId);
  return assembleBag(slideId, files.features, features, coords, thumbs, { features: 'features', coords: 'coords', thumbs: 'thumbs' });
}
