// The TIFF directory structure of a slide file, read and (for the synthetic slides) patched by hand: which
// directories are tiled pyramid levels, their sizes and ImageDescription, and two edits libvips cannot make
// when writing: setting an Aperio-style ImageDescription, and adding untiled associated images
// (thumbnail, label, macro). Reads classic TIFF and BigTIFF in either byte order; edits little-endian classic
// TIFF only (what sharp writes below 4 GiB), always appending, so the original bytes stay where they were.
import { open, type FileHandle } from 'node:fs/promises';

export const TIFF_TAG = {
  newSubfileType: 254,
  imageWidth: 256,
  imageLength: 257,
  bitsPerSample: 258,
  compression: 259,
  photometric: 262,
  imageDescription: 270,
  stripOffsets: 273,
  samplesPerPixel: 277,
  rowsPerStrip: 278,
  stripByteCounts: 279,
  planarConfiguration: 284,
  tileWidth: 322,
  tileLength: 323,
} as const;

/** Field types used here: BYTE, ASCII, SHORT, LONG, RATIONAL, ..., LONG8. */
const TYPE_BYTES: Readonly<Record<number, number>> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8 };

export interface TiffEntry {
  readonly tag: number;
  readonly type: number;
  readonly count: number;
  /** The value bytes (inline or fetched from their offset), in the file's byte order. */
  readonly bytes: Uint8Array;
}

export interface TiffDirectory {
  readonly index: number;
  /** Byte offset of the directory. */
  readonly offset: number;
  readonly width: number;
  readonly height: number;
  /** Tile size, or undefined for a stripped (untiled) directory. */
  readonly tileWidth: number | undefined;
  readonly tileHeight: number | undefined;
  readonly compression: number;
  readonly description: string | undefined;
  readonly subfileType: number;
  readonly entries: readonly TiffEntry[];
}

export interface TiffLayout {
  readonly littleEndian: boolean;
  readonly bigTiff: boolean;
  readonly directories: readonly TiffDirectory[];
}

export class TiffFormatError extends Error {}

async function readAt(handle: FileHandle, offset: number, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  const { bytesRead } = await handle.read(buffer, 0, length, offset);
  if (bytesRead < length) throw new TiffFormatError(`file ends at byte ${offset + bytesRead}, inside a TIFF structure that needs ${length} bytes from ${offset}`);
  return buffer;
}

function numberAt(view: DataView, at: number, width: number, le: boolean): number {
  if (width === 1) return view.getUint8(at);
  if (width === 2) return view.getUint16(at, le);
  if (width === 4) return view.getUint32(at, le);
  const value = view.getBigUint64(at, le);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new TiffFormatError('TIFF offset beyond 2^53');
  return Number(value);
}

/** The first value of an integer entry (SHORT, LONG or LONG8). */
export function entryNumber(entry: TiffEntry | undefined, le: boolean): number | undefined {
  if (entry === undefined) return undefined;
  const width = TYPE_BYTES[entry.type] ?? 0;
  if (width === 0 || entry.bytes.length < width) return undefined;
  return numberAt(new DataView(entry.bytes.buffer, entry.bytes.byteOffset, entry.bytes.byteLength), 0, width, le);
}

function entryText(entry: TiffEntry | undefined): string | undefined {
  if (entry === undefined || entry.type !== 2) return undefined;
  const end = entry.bytes.indexOf(0);
  return new TextDecoder('latin1').decode(end < 0 ? entry.bytes : entry.bytes.subarray(0, end));
}

/** Reads the chain of top-level directories (no pixel data). */
export async function readTiffLayout(file: string): Promise<TiffLayout> {
  const handle = await open(file, 'r');
  try {
    const size = (await handle.stat()).size;
    const head = await readAt(handle, 0, 16).catch(() => {
      throw new TiffFormatError('file is shorter than a TIFF header');
    });
    const order = String.fromCharCode(head[0] as number, head[1] as number);
    if (order !== 'II' && order !== 'MM') throw new TiffFormatError('not a TIFF file (no II/MM byte-order mark)');
    const le = order === 'II';
    const headView = new DataView(head.buffer);
    const magic = headView.getUint16(2, le);
    if (magic !== 42 && magic !== 43) throw new TiffFormatError(`not a TIFF file (magic ${magic}, expected 42 or 43)`);
    const big = magic === 43;
    const offsetWidth = big ? 8 : 4;
    let next = big ? numberAt(headView, 8, 8, le) : numberAt(headView, 4, 4, le);
    const directories: TiffDirectory[] = [];
    const seen = new Set<number>();
    while (next !== 0) {
      if (seen.has(next) || next >= size) throw new TiffFormatError(`directory chain points to byte ${next} (${seen.has(next) ? 'a loop' : 'past the end of the file'})`);
      seen.add(next);
      const countBytes = await readAt(handle, next, big ? 8 : 2);
      const count = numberAt(new DataView(countBytes.buffer), 0, big ? 8 : 2, le);
      const entryWidth = big ? 20 : 12;
      const body = await readAt(handle, next + countBytes.length, count * entryWidth + offsetWidth);
      const view = new DataView(body.buffer);
      const entries: TiffEntry[] = [];
      for (let i = 0; i < count; i += 1) {
        const at = i * entryWidth;
        const tag = view.getUint16(at, le);
        const type = view.getUint16(at + 2, le);
        const n = numberAt(view, at + 4, big ? 8 : 4, le);
        const length = n * (TYPE_BYTES[type] ?? 1);
        const valueAt = at + (big ? 12 : 8);
        const bytes = length <= offsetWidth ? body.slice(valueAt, valueAt + length) : await readAt(handle, numberAt(view, valueAt, offsetWidth, le), length);
        entries.push({ tag, type, count: n, bytes });
      }
      const find = (tag: number): TiffEntry | undefined => entries.find((e) => e.tag === tag);
      directories.push({
        index: directories.length,
        offset: next,
        width: entryNumber(find(TIFF_TAG.imageWidth), le) ?? 0,
        height: entryNumber(find(TIFF_TAG.imageLength), le) ?? 0,
        tileWidth: entryNumber(find(TIFF_TAG.tileWidth), le),
        tileHeight: entryNumber(find(TIFF_TAG.tileLength), le),
        compression: entryNumber(find(TIFF_TAG.compression), le) ?? 1,
        description: entryText(find(TIFF_TAG.imageDescription)),
        subfileType: entryNumber(find(TIFF_TAG.newSubfileType), le) ?? 0,
        entries,
      });
      next = numberAt(view, count * entryWidth, offsetWidth, le);
    }
    return { littleEndian: le, bigTiff: big, directories };
  } finally {
    await handle.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Appending edits (little-endian classic TIFF)

/** A new entry: its type and value bytes (little-endian); counts follow from the type width. */
interface NewEntry {
  readonly tag: number;
  readonly type: number;
  readonly bytes: Uint8Array;
}

function shortEntry(tag: number, values: readonly number[]): NewEntry {
  const bytes = new Uint8Array(values.length * 2);
  values.forEach((v, i) => new DataView(bytes.buffer).setUint16(i * 2, v, true));
  return { tag, type: 3, bytes };
}
function longEntry(tag: number, values: readonly number[]): NewEntry {
  const bytes = new Uint8Array(values.length * 4);
  values.forEach((v, i) => new DataView(bytes.buffer).setUint32(i * 4, v, true));
  return { tag, type: 4, bytes };
}
function asciiEntry(tag: number, text: string): NewEntry {
  const encoded = new TextEncoder().encode(text);
  const bytes = new Uint8Array(encoded.length + 1);
  bytes.set(encoded);
  return { tag, type: 2, bytes };
}

/** Appends `bytes` at the end of the file (word-aligned) and returns their offset. */
async function append(handle: FileHandle, bytes: Uint8Array): Promise<number> {
  let end = (await handle.stat()).size;
  if (end % 2 === 1) {
    await handle.write(new Uint8Array(1), 0, 1, end);
    end += 1;
  }
  if (end + bytes.length > 0xffffffff) throw new TiffFormatError('the edit would grow a classic TIFF past 4 GiB');
  await handle.write(bytes, 0, bytes.length, end);
  return end;
}

/** Writes a directory (entries sorted by tag, long values appended first) and returns its offset. */
async function appendDirectory(handle: FileHandle, entries: readonly NewEntry[], nextOffset: number): Promise<number> {
  const sorted = [...entries].sort((a, b) => a.tag - b.tag);
  const inline: Array<{ entry: NewEntry; value: Uint8Array }> = [];
  for (const entry of sorted) {
    const value = new Uint8Array(4);
    if (entry.bytes.length <= 4) value.set(entry.bytes);
    else new DataView(value.buffer).setUint32(0, await append(handle, entry.bytes), true);
    inline.push({ entry, value });
  }
  const ifd = new Uint8Array(2 + 12 * sorted.length + 4);
  const view = new DataView(ifd.buffer);
  view.setUint16(0, sorted.length, true);
  inline.forEach(({ entry, value }, i) => {
    const at = 2 + 12 * i;
    view.setUint16(at, entry.tag, true);
    view.setUint16(at + 2, entry.type, true);
    view.setUint32(at + 4, entry.bytes.length / (TYPE_BYTES[entry.type] ?? 1), true);
    ifd.set(value, at + 8);
  });
  view.setUint32(2 + 12 * sorted.length, nextOffset, true);
  return append(handle, ifd);
}

/** Byte position of the pointer to directory `index` (the header for 0, else the previous directory's next field). */
function pointerTo(layout: TiffLayout, index: number): number {
  if (index === 0) return 4;
  const previous = layout.directories[index - 1] as TiffDirectory;
  return previous.offset + 2 + 12 * previous.entries.length;
}

async function editableLayout(file: string): Promise<TiffLayout> {
  const layout = await readTiffLayout(file);
  if (!layout.littleEndian || layout.bigTiff) throw new TiffFormatError('only little-endian classic TIFF files can be edited');
  return layout;
}

function existingEntries(directory: TiffDirectory): NewEntry[] {
  return directory.entries.map((e) => ({ tag: e.tag, type: e.type, bytes: e.bytes }));
}

/** Replaces (or adds) the ImageDescription of directory `index` by rewriting that directory at the end of the file. */
export async function setImageDescription(file: string, index: number, description: string): Promise<void> {
  const layout = await editableLayout(file);
  const directory = layout.directories[index];
  if (directory === undefined) throw new TiffFormatError(`no directory ${index} (the file has ${layout.directories.length})`);
  const handle = await open(file, 'r+');
  try {
    const entries = existingEntries(directory).filter((e) => e.tag !== TIFF_TAG.imageDescription);
    entries.push(asciiEntry(TIFF_TAG.imageDescription, description));
    const next = layout.directories[index + 1]?.offset ?? 0;
    const moved = await appendDirectory(handle, entries, next);
    const pointer = new Uint8Array(4);
    new DataView(pointer.buffer).setUint32(0, moved, true);
    await handle.write(pointer, 0, 4, pointerTo(layout, index));
  } finally {
    await handle.close();
  }
}

export interface StripImage {
  readonly width: number;
  readonly height: number;
  /** Interleaved RGB, row-major. */
  readonly rgb: Uint8Array;
  readonly description: string;
}

/** Inserts an uncompressed one-strip RGB directory so that it becomes directory `index` (0 < index ≤ count). */
export async function insertStripImage(file: string, index: number, image: StripImage): Promise<void> {
  const layout = await editableLayout(file);
  if (index < 1 || index > layout.directories.length) throw new TiffFormatError(`cannot insert at directory ${index} (the file has ${layout.directories.length})`);
  if (image.rgb.length !== image.width * image.height * 3) throw new TiffFormatError('strip image: rgb length is not width × height × 3');
  const handle = await open(file, 'r+');
  try {
    const pixels = await append(handle, image.rgb);
    const entries: NewEntry[] = [
      longEntry(TIFF_TAG.newSubfileType, [1]), // reduced-resolution/associated, not the main image
      longEntry(TIFF_TAG.imageWidth, [image.width]),
      longEntry(TIFF_TAG.imageLength, [image.height]),
      shortEntry(TIFF_TAG.bitsPerSample, [8, 8, 8]),
      shortEntry(TIFF_TAG.compression, [1]),
      shortEntry(TIFF_TAG.photometric, [2]),
      asciiEntry(TIFF_TAG.imageDescription, image.description),
      longEntry(TIFF_TAG.stripOffsets, [pixels]),
      shortEntry(TIFF_TAG.samplesPerPixel, [3]),
      longEntry(TIFF_TAG.rowsPerStrip, [image.height]),
      longEntry(TIFF_TAG.stripByteCounts, [image.rgb.length]),
      shortEntry(TIFF_TAG.planarConfiguration, [1]),
    ];
    const next = layout.directories[index]?.offset ?? 0;
    const inserted = await appendDirectory(handle, entries, next);
    const pointer = new Uint8Array(4);
    new DataView(pointer.buffer).setUint32(0, inserted, true);
    await handle.write(pointer, 0, 4, pointerTo(layout, index));
  } finally {
    await handle.close();
  }
}


/**
 * Streams an RGB image into a stripped, deflate-compressed BigTIFF, one strip at a time: `paint` fills rows
 * [y0, y0 + rows) of a reused buffer. Memory is one strip; libvips then reads the file sequentially.
 */
export async function writeStripTiff(file: string, width: number, height: number, rowsPerStrip: number, paint: (y0: number, rows: number, out: Uint8Array) => void | Promise<void>): Promise<void> {
  const { deflateSync, constants } = await import('node:zlib');
  const handle = await open(file, 'w');
  try {
    const header = new Uint8Array(16);
    const hv = new DataView(header.buffer);
    header.set([0x49, 0x49]); // II: little-endian
    hv.setUint16(2, 43, true); // BigTIFF
    hv.setUint16(4, 8, true);
    await handle.write(header, 0, 16, 0);
    let position = 16;
    const offsets: number[] = [];
    const counts: number[] = [];
    const buffer = new Uint8Array(width * rowsPerStrip * 3);
    for (let y0 = 0; y0 < height; y0 += rowsPerStrip) {
      const rows = Math.min(rowsPerStrip, height - y0);
      const pixels = buffer.subarray(0, width * rows * 3);
      await paint(y0, rows, pixels);
      const packed = deflateSync(pixels, { level: constants.Z_BEST_SPEED });
      await handle.write(packed, 0, packed.length, position);
      offsets.push(position);
      counts.push(packed.length);
      position += packed.length + (packed.length % 2);
    }
    const long8 = (values: readonly number[]): Uint8Array => {
      const bytes = new Uint8Array(values.length * 8);
      values.forEach((v, i) => new DataView(bytes.buffer).setBigUint64(i * 8, BigInt(v), true));
      return bytes;
    };
    const short = (values: readonly number[]): Uint8Array => {
      const bytes = new Uint8Array(values.length * 2);
      values.forEach((v, i) => new DataView(bytes.buffer).setUint16(i * 2, v, true));
      return bytes;
    };
    const entries: Array<{ tag: number; type: number; count: number; bytes: Uint8Array }> = [
      { tag: TIFF_TAG.imageWidth, type: 16, count: 1, bytes: long8([width]) },
      { tag: TIFF_TAG.imageLength, type: 16, count: 1, bytes: long8([height]) },
      { tag: TIFF_TAG.bitsPerSample, type: 3, count: 3, bytes: short([8, 8, 8]) },
      { tag: TIFF_TAG.compression, type: 3, count: 1, bytes: short([8]) }, // Adobe deflate
      { tag: TIFF_TAG.photometric, type: 3, count: 1, bytes: short([2]) },
      { tag: TIFF_TAG.stripOffsets, type: 16, count: offsets.length, bytes: long8(offsets) },
      { tag: TIFF_TAG.samplesPerPixel, type: 3, count: 1, bytes: short([3]) },
      { tag: TIFF_TAG.rowsPerStrip, type: 16, count: 1, bytes: long8([rowsPerStrip]) },
      { tag: TIFF_TAG.stripByteCounts, type: 16, count: counts.length, bytes: long8(counts) },
      { tag: TIFF_TAG.planarConfiguration, type: 3, count: 1, bytes: short([1]) },
    ];
    const ifd = new Uint8Array(8 + 20 * entries.length + 8);
    const view = new DataView(ifd.buffer);
    view.setBigUint64(0, BigInt(entries.length), true);
    let extra = position + ifd.length;
    const spill: Uint8Array[] = [];
    entries.forEach((entry, i) => {
      const at = 8 + 20 * i;
      view.setUint16(at, entry.tag, true);
      view.setUint16(at + 2, entry.type, true);
      view.setBigUint64(at + 4, BigInt(entry.count), true);
      if (entry.bytes.length <= 8) ifd.set(entry.bytes, at + 12);
      else {
        view.setBigUint64(at + 12, BigInt(extra), true);
        spill.push(entry.bytes);
        extra += entry.bytes.length;
      }
    });
    await handle.write(ifd, 0, ifd.length, position);
    let spillAt = position + ifd.length;
    for (const bytes of spill) {
      await handle.write(bytes, 0, bytes.length, spillAt);
      spillAt += bytes.length;
    }
    const first = new Uint8Array(8);
    new DataView(first.buffer).setBigUint64(0, BigInt(position), true);
    await handle.write(first, 0, 8, 8);
  } finally {
    await handle.close();
  }
}
