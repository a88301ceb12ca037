// A bounded content fingerprint of one feature file (docs/reliability.md#identity): its header (dataset or tensor
// names, shapes, dtypes), its attributes (the extractor identity `milkit extract` writes, safetensors metadata) and a
// hash of a deterministic sample of rows (first, last and three more per dataset). Features re-extracted with another
// encoder of the same width keep the file's size, and a copy may keep its modification time; their header,
// attributes or rows differ. Cost: a header and a handful of rows per file, never the whole file.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

export interface FeatureSample {
  /** Names, shapes and dtypes of the datasets/tensors (hash). */
  readonly header: string;
  /** Attributes/metadata (hash): the extractor's name, model hash, input size, normalisation, width. */
  readonly attributes: string;
  /** The sampled rows of every dataset (hash). */
  readonly rows: string;
}

/** Extensions whose files get a sampled fingerprint. */
const SAMPLED = new Set(['.h5', '.hdf5', '.npy', '.safetensors', '.pt', '.pth']);
/** Rows drawn per dataset besides the first and the last. */
const EXTRA_ROWS = 3;
/** Datasets of one h5 file that are sampled (feature files have three: features, coords, thumbs). */
const MAX_DATASETS = 16;
/** Bytes hashed per sampled block where a file has no rows to speak of (legacy .pt). */
const BLOCK_BYTES = 4096;

export function isSampledFeatureFile(file: string): boolean {
  return SAMPLED.has(path.extname(file).toLowerCase());
}

function sha256(...parts: Array<string | Uint8Array>): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

/**
 * The rows sampled out of `n`: 0, n - 1 and EXTRA_ROWS more drawn from a hash of n, so the same file always gives
 * the same rows and two files of the same length are compared row for row.
 */
export function sampleRows(n: number): number[] {
  if (n <= 0) return [];
  const rows = new Set([0, n - 1]);
  for (let i = 0; i < EXTRA_ROWS; i += 1) rows.add(Number.parseInt(sha256(`milkit-rows/${n}/${i}`).slice(0, 12), 16) % n);
  return [...rows].sort((a, b) => a - b);
}

/** JSON that keeps typed arrays and bigints (attribute values) comparable. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return v.toString();
    if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<number | bigint>, (x) => (typeof x === 'bigint' ? x.toString() : x));
    return v;
  });
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(Math.max(0, length));
  const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
  return buffer.subarray(0, bytesRead);
}

/** A file's sampled fingerprint; undefined for other files and for files that do not parse (the dataset reports those). */
export async function sampleFeatureFile(file: string, size: number): Promise<FeatureSample | undefined> {
  const ext = path.extname(file).toLowerCase();
  try {
    if (ext === '.h5' || ext === '.hdf5') return await sampleH5(file);
    const handle = await open(file, 'r');
    try {
      if (ext === '.npy') return await sampleNpy(handle, size);
      if (ext === '.safetensors') return await sampleSafetensors(handle, size);
      if (ext === '.pt' || ext === '.pth') return await samplePt(handle, size);
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
  return undefined;
}

type H5Lib = typeof import('h5wasm/node').default;
let h5Lib: Promise<H5Lib> | undefined;

function h5(): Promise<H5Lib> {
  h5Lib ??= import('h5wasm/node').then(async ({ default: lib }) => {
    await lib.ready;
    return lib;
  });
  return h5Lib;
}

interface H5Node {
  readonly attrs: Record<string, { value: unknown }>;
  keys?(): string[];
  get?(name: string): unknown;
  readonly shape?: number[] | null;
  readonly dtype?: unknown;
  slice?(ranges: Array<[number, number]>): unknown;
  value?: unknown;
}

function attributeValues(node: H5Node): Record<string, unknown> {
  return Object.fromEntries(Object.keys(node.attrs).sort().map((name) => [name, node.attrs[name]?.value]));
}

/** h5 (h5wasm reads lazily: only the header, attributes and the sampled rows are read). */
async function sampleH5(file: string): Promise<FeatureSample> {
  const lib = await h5();
  const f = new lib.File(file, 'r');
  try {
    const header: unknown[] = [];
    const attributes: Record<string, unknown> = { '/': attributeValues(f as unknown as H5Node) };
    const rows = createHash('sha256');
    const datasets: Array<{ name: string; node: H5Node }> = [];
    const walk = (group: H5Node, prefix: string): void => {
      for (const key of (group.keys?.() ?? []).sort()) {
        if (datasets.length >= MAX_DATASETS) return;
        const node = group.get?.(key) as H5Node | null | undefined;
        if (!node) continue;
        const name = `${prefix}${key}`;
        if (node instanceof lib.Group) walk(node, `${name}/`);
        else if (node instanceof lib.Dataset) datasets.push({ name, node });
      }
    };
    walk(f as unknown as H5Node, '');
    for (const { name, node } of datasets) {
      const shape = node.shape ?? [];
      header.push([name, shape, node.dtype]);
      attributes[name] = attributeValues(node);
      rows.update(name);
      if (shape.length === 0) {
        rows.update(stableJson(node.value));
        continue;
      }
      for (const row of sampleRows(shape[0] ?? 0)) {
        const data = node.slice?.([[row, row + 1]]);
        rows.update(ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : stableJson(data));
      }
    }
    return { header: sha256(stableJson(header)), attributes: sha256(stableJson(attributes)), rows: rows.digest('hex') };
  } finally {
    f.close();
  }
}

/** Item size of a numpy dtype string (`<f4`, `|u1`, `<c8`); undefined for object or structured dtypes. */
function npyItemSize(descr: string): number | undefined {
  const match = /^[<>|=]?[biufcSUV](\d+)$/.exec(descr);
  if (!match) return undefined;
  const n = Number(match[1]);
  return descr.includes('U') ? n * 4 : n;
}

/** .npy: the header dict (dtype, order, shape) and the sampled rows of a C-ordered array. */
async function sampleNpy(handle: FileHandle, size: number): Promise<FeatureSample | undefined> {
  const prefix = await readAt(handle, 0, 12);
  if (prefix.subarray(0, 6).toString('latin1') !== '\x93NUMPY') return undefined;
  const major = prefix[6] ?? 1;
  const headerLength = major === 1 ? prefix.readUInt16LE(8) : prefix.readUInt32LE(8);
  const dataStart = (major === 1 ? 10 : 12) + headerLength;
  const dict = (await readAt(handle, major === 1 ? 10 : 12, headerLength)).toString('latin1');
  const descr = /'descr':\s*'([^']*)'/.exec(dict)?.[1] ?? '';
  const fortran = /'fortran_order':\s*True/.test(dict);
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(dict)?.[1] ?? '').split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const header = sha256(stableJson({ descr, fortran, shape }));
  const rows = createHash('sha256');
  const itemSize = npyItemSize(descr);
  const n = shape[0] ?? 1;
  if (itemSize !== undefined && !fortran && shape.length > 0) {
    const rowBytes = itemSize * shape.slice(1).reduce((a, b) => a * b, 1);
    for (const row of sampleRows(n)) rows.update(await readAt(handle, dataStart + row * rowBytes, rowBytes));
  } else {
    await sampleBlocks(handle, dataStart, size, rows);
  }
  return { header, attributes: sha256('{}'), rows: rows.digest('hex') };
}

/** .safetensors: the header (names, dtypes, shapes), its __metadata__, and the sampled rows of each tensor. */
async function sampleSafetensors(handle: FileHandle, size: number): Promise<FeatureSample | undefined> {
  const lengthBytes = await readAt(handle, 0, 8);
  if (lengthBytes.length < 8) return undefined;
  const headerLength = Number(lengthBytes.readBigUInt64LE(0));
  if (headerLength <= 0 || 8 + headerLength > size) return undefined;
  const parsed = JSON.parse((await readAt(handle, 8, headerLength)).toString('utf8')) as Record<string, unknown>;
  const { __metadata__: metadata, ...tensors } = parsed;
  const names = Object.keys(tensors).sort();
  const header = names.map((name) => {
    const t = tensors[name] as { dtype?: string; shape?: number[] };
    return [name, t.dtype, t.shape];
  });
  const rows = createHash('sha256');
  for (const name of names) {
    const t = tensors[name] as { shape?: number[]; data_offsets?: [number, number] };
    const [start, end] = t.data_offsets ?? [0, 0];
    const n = t.shape?.[0] ?? 1;
    const rowBytes = (t.shape?.length ?? 0) > 0 && n > 0 ? (end - start) / n : end - start;
    rows.update(name);
    for (const row of (t.shape?.length ?? 0) > 0 ? sampleRows(n) : [0]) rows.update(await readAt(handle, 8 + headerLength + start + row * rowBytes, rowBytes));
  }
  return { header: sha256(stableJson(header)), attributes: sha256(stableJson(metadata ?? {})), rows: rows.digest('hex') };
}

/**
 * .pt (torch.save's zip): the central directory lists every entry with its CRC-32, so the pickled structure (names,
 * dtypes, shapes) and every tensor's bytes are covered without reading them. A legacy (non-zip) file: its first
 * block as header, seeded blocks as rows.
 */
async function samplePt(handle: FileHandle, size: number): Promise<FeatureSample | undefined> {
  const tailLength = Math.min(size, 65_557);
  const tail = await readAt(handle, size - tailLength, tailLength);
  const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) {
    const rows = createHash('sha256');
    await sampleBlocks(handle, 0, size, rows);
    return { header: sha256(await readAt(handle, 0, BLOCK_BYTES)), attributes: sha256('{}'), rows: rows.digest('hex') };
  }
  const entries = tail.readUInt16LE(eocd + 10);
  const directorySize = tail.readUInt32LE(eocd + 12);
  const directoryOffset = tail.readUInt32LE(eocd + 16);
  const directory = await readAt(handle, directoryOffset, directorySize);
  const structure: unknown[] = [];
  const data: unknown[] = [];
  let at = 0;
  for (let i = 0; i < entries && at + 46 <= directory.length; i += 1) {
    if (directory.readUInt32LE(at) !== 0x02014b50) break;
    const crc = directory.readUInt32LE(at + 16);
    const length = directory.readUInt32LE(at + 24);
    const nameLength = directory.readUInt16LE(at + 28);
    const extraLength = directory.readUInt16LE(at + 30);
    const commentLength = directory.readUInt16LE(at + 32);
    // Entry names carry the archive's folder (`<name>/data/0`); tensor storages live under data/.
    const name = directory.subarray(at + 46, at + 46 + nameLength).toString('utf8').replace(/^[^/]*\//, '');
    (name.startsWith('data/') ? data : structure).push([name, length, crc]);
    at += 46 + nameLength + extraLength + commentLength;
  }
  return { header: sha256(stableJson(structure)), attributes: sha256('{}'), rows: sha256(stableJson(data)) };
}

/** Seeded blocks of a byte range (first, last and a few between) into `hash`. */
async function sampleBlocks(handle: FileHandle, start: number, size: number, hash: ReturnType<typeof createHash>): Promise<void> {
  const blocks = Math.max(1, Math.ceil((size - start) / BLOCK_BYTES));
  for (const block of sampleRows(blocks)) hash.update(await readAt(handle, start + block * BLOCK_BYTES, BLOCK_BYTES));
}
