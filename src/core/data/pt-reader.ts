// PyTorch `.pt` files (the zip format `torch.save` writes since 1.6) holding tensors only, read without
// Python and without executing anything: a restricted unpickler that knows the handful of opcodes torch
// uses for tensors, tuples, lists and (Ordered)dicts, and accepts exactly three kinds of global:
// torch._utils._rebuild_tensor_v2, the typed storage classes and collections.OrderedDict. Every other
// global (os.system, builtins.eval, a model class...) is refused with a DataError naming the file.
import { readFile } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import { DataError } from '../errors.js';
import type { BagData } from '../../registry/contracts/data.js';
import { isFloatDtype, toFloat32, type SafetensorsDtype, type TensorData, type TensorRecord } from '../nn/safetensors.js';
import { assembleBag, CLAM_KEYS, type BagKeys, type HostArray } from './readers.js';

/** What a `.pt` file may hold: tensors in (nested) dicts, tuples and lists, plus plain scalars and strings. */
export type PtValue = TensorRecord | PtDict | readonly PtValue[] | string | number | bigint | boolean | null | Uint8Array;

/** A (possibly ordered) dict; keys are kept in insertion order, as Python does. */
export class PtDict {
  constructor(readonly entries: ReadonlyMap<string | number, PtValue>) {}
  get(key: string): PtValue | undefined {
    return this.entries.get(key);
  }
}

/** Thrown for a malformed or refused file; `readPt` turns it into a DataError naming the file. */
class PtFormatError extends Error {
  constructor(
    message: string,
    readonly code: 'unreadable-file' | 'unsafe-pickle' | 'legacy-pt-format' = 'unreadable-file',
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Zip container (stored or deflated entries; zip64 sizes and offsets)

interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
}

const ZIP_LOCAL = 0x04034b50;
const ZIP_CENTRAL = 0x02014b50;
const ZIP_END = 0x06054b50;
const ZIP64_END = 0x06064b50;
const ZIP64_LOCATOR = 0x07064b50;
const U32_MAX = 0xffffffff;

function u64(view: DataView, at: number): number {
  const value = view.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new PtFormatError('zip field exceeds 2^53');
  return Number(value);
}

function zipEntries(bytes: Uint8Array): Map<string, ZipEntry> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = -1;
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - 0xffff); at -= 1) {
    if (view.getUint32(at, true) === ZIP_END) {
      end = at;
      break;
    }
  }
  if (end < 0) throw new PtFormatError('not a zip archive (no end-of-central-directory record)');
  let count = view.getUint16(end + 10, true);
  let directoryAt = view.getUint32(end + 16, true);
  if ((directoryAt === U32_MAX || count === 0xffff) && end >= 20 && view.getUint32(end - 20, true) === ZIP64_LOCATOR) {
    const end64 = u64(view, end - 12);
    if (end64 + 56 > bytes.length || view.getUint32(end64, true) !== ZIP64_END) throw new PtFormatError('broken zip64 end record');
    count = u64(view, end64 + 32);
    directoryAt = u64(view, end64 + 48);
  }
  const entries = new Map<string, ZipEntry>();
  let at = directoryAt;
  for (let i = 0; i < count; i += 1) {
    if (at + 46 > bytes.length || view.getUint32(at, true) !== ZIP_CENTRAL) throw new PtFormatError('truncated zip central directory');
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLength));
    let compressedSize = view.getUint32(at + 20, true);
    let size = view.getUint32(at + 24, true);
    let localHeaderOffset = view.getUint32(at + 42, true);
    // Zip64 extra field (id 1): 8-byte values for exactly those fields saturated in the fixed header.
    for (let x = at + 46 + nameLength; x + 4 <= at + 46 + nameLength + extraLength; ) {
      const id = view.getUint16(x, true);
      const length = view.getUint16(x + 2, true);
      if (id === 1) {
        let y = x + 4;
        if (size === U32_MAX) (size = u64(view, y)), (y += 8);
        if (compressedSize === U32_MAX) (compressedSize = u64(view, y)), (y += 8);
        if (localHeaderOffset === U32_MAX) localHeaderOffset = u64(view, y);
      }
      x += 4 + length;
    }
    entries.set(name, { name, method: view.getUint16(at + 10, true), compressedSize, size, localHeaderOffset });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

function zipRead(bytes: Uint8Array, entry: ZipEntry): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = entry.localHeaderOffset;
  if (at + 30 > bytes.length || view.getUint32(at, true) !== ZIP_LOCAL) throw new PtFormatError(`broken zip local header for "${entry.name}"`);
  const start = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
  if (start + entry.compressedSize > bytes.length) throw new PtFormatError(`zip entry "${entry.name}" runs past the end of the file (truncated copy?)`);
  const raw = bytes.subarray(start, start + entry.compressedSize);
  if (entry.method === 0) return raw;
  if (entry.method === 8) return new Uint8Array(inflateRawSync(raw));
  throw new PtFormatError(`zip entry "${entry.name}" uses compression method ${entry.method} (only stored and deflate are read)`);
}

// ---------------------------------------------------------------------------------------------------------
// Restricted unpickler

/** Storage class → element type; the only classes a persistent id may name. */
const STORAGE_DTYPES: Readonly<Record<string, SafetensorsDtype>> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};
/** Largest tensor materialised (2^30 elements: 4 GiB of float32). */
const MAX_TENSOR_ELEMENTS = 2 ** 30;
const ELEMENT_BYTES: Readonly<Record<SafetensorsDtype, number>> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** A global the unpickler agreed to resolve. */
type AllowedGlobal = { readonly global: 'rebuild-tensor' } | { readonly global: 'ordered-dict' } | { readonly global: 'storage'; readonly dtype: SafetensorsDtype };

function resolveGlobal(module: string, name: string): AllowedGlobal {
  if (module === 'torch._utils' && name === '_rebuild_tensor_v2') return { global: 'rebuild-tensor' };
  if (module === 'collections' && name === 'OrderedDict') return { global: 'ordered-dict' };
  const dtype = module === 'torch' ? STORAGE_DTYPES[name] : undefined;
  if (dtype !== undefined) return { global: 'storage', dtype };
  throw new PtFormatError(
    `refused global "${module}.${name}": a tensors-only .pt file references torch._utils._rebuild_tensor_v2, torch.*Storage and collections.OrderedDict only, and milkit never runs other code from a pickle`,
    'unsafe-pickle',
  );
}

class Tuple {
  constructor(readonly items: readonly Item[]) {}
}
class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: SafetensorsDtype,
    readonly numel: number,
  ) {}
}
class Mark {}
/** Values on the unpickler's stack (containers are mutable until the pickle completes). */
type Item = AllowedGlobal | Tuple | StorageRef | Mark | Item[] | Map<string | number, Item> | TensorRecord | string | number | bigint | boolean | null | Uint8Array;

const MARK = new Mark();

function isGlobal(item: Item): item is AllowedGlobal {
  return typeof item === 'object' && item !== null && 'global' in item;
}

function isTensor(item: unknown): item is TensorRecord {
  return typeof item === 'object' && item !== null && 'dtype' in item && 'shape' in item && 'data' in item;
}

/** Decodes each storage once (views of one storage share it), in the file's little-endian byte order. */
class StorageLoader {
  private readonly decoded = new Map<string, TensorData>();
  constructor(
    private readonly bytes: Uint8Array,
    private readonly entries: Map<string, ZipEntry>,
    private readonly prefix: string,
  ) {}

  load(ref: StorageRef): TensorData {
    const cached = this.decoded.get(ref.key);
    if (cached !== undefined) return cached;
    const entry = this.entries.get(`${this.prefix}data/${ref.key}`);
    if (entry === undefined) throw new PtFormatError(`storage "${ref.key}" is referenced by the pickle but ${this.prefix}data/${ref.key} is missing from the archive`);
    const raw = zipRead(this.bytes, entry);
    const width = ELEMENT_BYTES[ref.dtype];
    if (raw.length < ref.numel * width) throw new PtFormatError(`storage "${ref.key}" holds ${raw.length} bytes, fewer than its ${ref.numel} × ${width}-byte elements`);
    const copy = raw.slice(0, ref.numel * width).buffer; // aligned at 0
    const data = typedArray(ref.dtype, copy);
    this.decoded.set(ref.key, data);
    return data;
  }
}

function typedArray(dtype: SafetensorsDtype, buffer: ArrayBuffer): TensorData {
  switch (dtype) {
    case 'F64':
      return new Float64Array(buffer);
    case 'F32':
      return new Float32Array(buffer);
    case 'F16':
    case 'BF16':
      return new Uint16Array(buffer);
    case 'I64':
      return new BigInt64Array(buffer);
    case 'I32':
      return new Int32Array(buffer);
    case 'I16':
      return new Int16Array(buffer);
    case 'I8':
      return new Int8Array(buffer);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buffer);
  }
}

function intTuple(item: Item, what: string): number[] {
  if (!(item instanceof Tuple) || !item.items.every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 0)) throw new PtFormatError(`_rebuild_tensor_v2: ${what} is not a tuple of non-negative integers`);
  return item.items as number[];
}

/** torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) → a contiguous row-major copy. */
function rebuildTensor(args: Item, storages: StorageLoader): TensorRecord {
  if (!(args instanceof Tuple) || args.items.length < 4) throw new PtFormatError('_rebuild_tensor_v2 called without (storage, offset, size, stride)');
  const [storage, offset, sizeItem, strideItem] = args.items as [Item, Item, Item, Item];
  if (!(storage instanceof StorageRef)) throw new PtFormatError('_rebuild_tensor_v2: first argument is not a storage');
  if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0) throw new PtFormatError('_rebuild_tensor_v2: storage offset is not a non-negative integer');
  const shape = intTuple(sizeItem, 'size');
  const stride = intTuple(strideItem, 'stride');
  if (shape.length !== stride.length) throw new PtFormatError(`_rebuild_tensor_v2: size has ${shape.length} dims but stride ${stride.length}`);
  const source = storages.load(storage);
  const count = shape.reduce((a, b) => a * b, 1);
  // Stride-0 views (torch expand) may describe far more elements than the storage holds; bound the copy.
  if (count > MAX_TENSOR_ELEMENTS) throw new PtFormatError(`_rebuild_tensor_v2: a tensor of ${count} elements exceeds the ${MAX_TENSOR_ELEMENTS} this reader materialises`);
  const last = count === 0 ? offset : offset + shape.reduce((acc, s, d) => acc + (s - 1) * (stride[d] as number), 0);
  if (last >= source.length && count > 0) throw new PtFormatError(`_rebuild_tensor_v2: the view reaches element ${last} of a storage of ${source.length}`);
  const contiguous = shape.every((_, d) => (stride[d] as number) === shape.slice(d + 1).reduce((a, b) => a * b, 1) || (shape[d] as number) <= 1);
  if (contiguous) return { dtype: storage.dtype, shape, data: source.slice(offset, offset + count) as TensorData };
  const out = typedArray(storage.dtype, new ArrayBuffer(count * ELEMENT_BYTES[storage.dtype]));
  const index = new Array<number>(shape.length).fill(0);
  let from = offset;
  for (let i = 0; i < count; i += 1) {
    (out as unknown as { [k: number]: number | bigint })[i] = (source as unknown as { [k: number]: number | bigint })[from] as number | bigint;
    // Odometer over the view's indices, moving the storage position by each dim's stride.
    for (let d = shape.length - 1; d >= 0; d -= 1) {
      index[d] = (index[d] as number) + 1;
      from += stride[d] as number;
      if ((index[d] as number) < (shape[d] as number)) break;
      from -= (shape[d] as number) * (stride[d] as number);
      index[d] = 0;
    }
  }
  return { dtype: storage.dtype, shape, data: out };
}

function dictKey(item: Item): string | number {
  if (typeof item === 'string' || typeof item === 'number') return item;
  throw new PtFormatError('dict key is not a string or an integer');
}

/** Runs the pickle program; only data-building opcodes exist here, so nothing in the file can run code. */
function unpickle(program: Uint8Array, storages: StorageLoader): Item {
  const view = new DataView(program.buffer, program.byteOffset, program.byteLength);
  const decoder = new TextDecoder();
  const stack: Item[] = [];
  const marks: number[] = [];
  const memo = new Map<number, Item>();
  let at = 0;
  const need = (n: number): number => {
    if (at + n > program.length) throw new PtFormatError('pickle ends early (truncated data.pkl)');
    const start = at;
    at += n;
    return start;
  };
  const pop = (): Item => {
    if (stack.length === 0) throw new PtFormatError('pickle pops an empty stack');
    return stack.pop() as Item;
  };
  const popMark = (): Item[] => {
    const start = marks.pop();
    if (start === undefined) throw new PtFormatError('pickle has no MARK to pop to');
    return stack.splice(start);
  };
  const top = (): Item => {
    if (stack.length === 0) throw new PtFormatError('pickle reads an empty stack');
    return stack[stack.length - 1] as Item;
  };
  const line = (): string => {
    const end = program.indexOf(0x0a, at);
    if (end < 0) throw new PtFormatError('pickle ends inside a GLOBAL name');
    const text = decoder.decode(program.subarray(at, end));
    at = end + 1;
    return text;
  };
  const text = (n: number): string => decoder.decode(program.subarray(need(n), at));
  const setItems = (target: Item, items: Item[]): void => {
    if (!(target instanceof Map)) throw new PtFormatError('SETITEM(S) on something that is not a dict');
    for (let i = 0; i + 1 < items.length; i += 2) target.set(dictKey(items[i] as Item), items[i + 1] as Item);
  };
  const append = (target: Item, items: Item[]): void => {
    if (!Array.isArray(target)) throw new PtFormatError('APPEND(S) on something that is not a list');
    target.push(...items);
  };

  for (;;) {
    const op = program[need(1)] as number;
    switch (op) {
      case 0x80: // PROTO
        need(1);
        break;
      case 0x95: // FRAME: a length prefix for buffering, no meaning for the value
        need(8);
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        stack.push(resolveGlobal(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new PtFormatError('STACK_GLOBAL without module and name strings');
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x51: {
        // BINPERSID: ('storage', StorageClass, key, location, numel)
        const pid = pop();
        const items = pid instanceof Tuple ? pid.items : [];
        const [tag, storageClass, key, , numel] = items;
        if (tag !== 'storage' || storageClass === undefined || !isGlobal(storageClass) || storageClass.global !== 'storage' || typeof key !== 'string' || typeof numel !== 'number') {
          throw new PtFormatError('persistent id is not a (storage, torch.*Storage, key, location, numel) tuple');
        }
        stack.push(new StorageRef(key, storageClass.dtype, numel));
        break;
      }
      case 0x52: {
        // REDUCE: only the allowed constructors, never an arbitrary callable from the stack
        const args = pop();
        const callable = pop();
        if (!isGlobal(callable) || callable.global === 'storage') throw new PtFormatError('REDUCE of something other than _rebuild_tensor_v2 or OrderedDict (refused: the file asks to call an object)', 'unsafe-pickle');
        if (callable.global === 'ordered-dict') {
          if (!(args instanceof Tuple) || args.items.length !== 0) throw new PtFormatError('OrderedDict(...) called with arguments (torch writes OrderedDict() then SETITEMS)', 'unsafe-pickle');
          stack.push(new Map());
        } else stack.push(rebuildTensor(args, storages));
        break;
      }
      case 0x62: {
        // BUILD: tensors and dicts carry no state of their own; an empty state is the only one accepted
        const state = pop();
        const emptyState = state === null || (state instanceof Map && state.size === 0) || (state instanceof Tuple && state.items.length === 0);
        if (!emptyState) throw new PtFormatError('BUILD with object state (refused: only tensors and containers are read)', 'unsafe-pickle');
        top();
        break;
      }
      case 0x29: // EMPTY_TUPLE
        stack.push(new Tuple([]));
        break;
      case 0x85: // TUPLE1
        stack.push(new Tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push(new Tuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(new Tuple([pop(), b, c]));
        break;
      }
      case 0x74: // TUPLE
        stack.push(new Tuple(popMark()));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x61: {
        // APPEND
        const item = pop();
        append(top(), [item]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const map = new Map<string | number, Item>();
        setItems(map, popMark());
        stack.push(map);
        break;
      }
      case 0x73: {
        // SETITEM
        const value = pop();
        const key = pop();
        setItems(top(), [key, value]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x71: // BINPUT
        memo.set(program[need(1)] as number, top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(view.getUint32(need(4), true), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68:
      case 0x6a: {
        // BINGET, LONG_BINGET
        const index = op === 0x68 ? (program[need(1)] as number) : view.getUint32(need(4), true);
        if (!memo.has(index)) throw new PtFormatError(`pickle reads memo slot ${index} before writing it`);
        stack.push(memo.get(index) as Item);
        break;
      }
      case 0x4a: // BININT
        stack.push(view.getInt32(need(4), true));
        break;
      case 0x4b: // BININT1
        stack.push(program[need(1)] as number);
        break;
      case 0x4d: // BININT2
        stack.push(view.getUint16(need(2), true));
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement of n bytes
        const n = program[need(1)] as number;
        const start = need(n);
        let value = 0n;
        for (let i = n - 1; i >= 0; i -= 1) value = (value << 8n) | BigInt(program[start + i] as number);
        if (n > 0 && ((program[start + n - 1] as number) & 0x80) !== 0) value -= 1n << BigInt(8 * n);
        stack.push(value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        stack.push(view.getFloat64(need(8), false));
        break;
      case 0x58: // BINUNICODE
        stack.push(text(view.getUint32(need(4), true)));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(program[need(1)] as number));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(text(u64(view, need(8))));
        break;
      case 0x55: // SHORT_BINSTRING (protocol-2 str)
        stack.push(text(program[need(1)] as number));
        break;
      case 0x54: // BINSTRING
        stack.push(text(view.getInt32(need(4), true)));
        break;
      case 0x43: {
        // SHORT_BINBYTES
        const n = program[need(1)] as number;
        stack.push(program.slice(need(n), at));
        break;
      }
      case 0x42: {
        // BINBYTES
        const n = view.getUint32(need(4), true);
        stack.push(program.slice(need(n), at));
        break;
      }
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x30: // POP
        if (marks.length > 0 && marks[marks.length - 1] === stack.length) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x69: // INST
      case 0x6f: // OBJ
      case 0x81: // NEWOBJ
      case 0x92: // NEWOBJ_EX
      case 0x50: // PERSID (text form)
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: // EXT4
        throw new PtFormatError(`refused pickle opcode 0x${op.toString(16)} (object construction is never performed)`, 'unsafe-pickle');
      default:
        throw new PtFormatError(`unsupported pickle opcode 0x${op.toString(16)} at byte ${at - 1} (not one torch.save uses for tensors)`);
    }
  }
}

function freeze(item: Item): PtValue {
  if (item instanceof Tuple) return item.items.map(freeze);
  if (Array.isArray(item)) return item.map(freeze);
  if (item instanceof Map) return new PtDict(new Map([...item.entries()].map(([k, v]) => [k, freeze(v)])));
  if (item instanceof StorageRef || item instanceof Mark || isGlobal(item)) throw new PtFormatError('the pickle leaves a bare storage or global in its result');
  return item;
}

/** Parses a `torch.save` zip archive in memory. Errors name `file` (and the slide, when given). */
export function parsePt(bytes: Uint8Array, file: string, slideId?: string): PtValue {
  try {
    if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] !== undefined && bytes[1] <= 5) {
      throw new PtFormatError('legacy (pre-1.6, non-zip) torch.save format', 'legacy-pt-format');
    }
    const entries = zipEntries(bytes);
    const pickleName = [...entries.keys()].find((name) => name.endsWith('data.pkl') && name.split('/').length === 2);
    if (pickleName === undefined) throw new PtFormatError('zip archive without <name>/data.pkl (not a torch.save file)');
    const prefix = pickleName.slice(0, -'data.pkl'.length);
    const byteorder = entries.get(`${prefix}byteorder`);
    if (byteorder !== undefined && new TextDecoder().decode(zipRead(bytes, byteorder)).trim() !== 'little') throw new PtFormatError('big-endian tensor storages are not supported');
    const root = unpickle(zipRead(bytes, entries.get(pickleName) as ZipEntry), new StorageLoader(bytes, entries, prefix));
    return freeze(root);
  } catch (error) {
    if (!(error instanceof PtFormatError)) throw error;
    const hints: Record<PtFormatError['code'], string> = {
      'unsafe-pickle': 'Save plain tensors (torch.save(tensor) or a dict of tensors); to convert a file you trust, load it in Python and re-save its tensors.',
      'legacy-pt-format': 'Re-save it with a current PyTorch: torch.save(torch.load(path), path).',
      'unreadable-file': 'Re-export the file (it may be truncated by an interrupted copy).',
    };
    const subject = slideId === undefined ? '' : `slide "${slideId}": `;
    throw new DataError(error.code, `${subject}cannot read the .pt file: ${error.message}.`, { where: { file }, hint: hints[error.code] });
  }
}

/** Reads and parses a `.pt` file; a missing file is a DataError `missing-file`. */
export async function readPt(file: string, slideId?: string): Promise<PtValue> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (error) {
    const subject = slideId === undefined ? '' : `slide "${slideId}": `;
    throw new DataError('missing-file', `${subject}.pt file not found.`, { where: { file }, hint: 'Check the folder and that the file is named <slide_id>.pt (CLAM: pt_files/), or set data.onBadSlide: skip.', cause: error });
  }
  return parsePt(bytes, file, slideId);
}

/** Whether a parsed value is a tensor. */
export function isPtTensor(value: PtValue | undefined): value is TensorRecord {
  return isTensor(value);
}

/** A tensor as a reader array: floating dtypes as float32 (F16/BF16 widened exactly), integers unchanged. */
export function ptHostArray(tensor: TensorRecord): HostArray {
  return { shape: tensor.shape, data: isFloatDtype(tensor.dtype) ? toFloat32(tensor) : (tensor.data as HostArray['data']) };
}

/**
 * One slide from a `.pt` file: a bare [N, D] tensor (CLAM pt_files/) or a dict holding the features under
 * `keys.features` and optionally coords and thumbnails.
 */
export async function readPtBag(file: string, slideId: string, keys: BagKeys = CLAM_KEYS, opts: { thumbs?: boolean } = {}): Promise<BagData> {
  const value = await readPt(file, slideId);
  if (isPtTensor(value)) return assembleBag(slideId, file, ptHostArray(value), undefined, undefined, keys);
  if (!(value instanceof PtDict)) {
    throw new DataError('missing-dataset', `slide "${slideId}": the .pt file holds ${Array.isArray(value) ? 'a tuple/list' : typeof value}, expected a tensor [N, D] or a dict with "${keys.features}".`, {
      where: { file },
      hint: 'Save torch.save(features) or torch.save({"features": features, "coords": coords}).',
    });
  }
  const tensorAt = (name: string): TensorRecord | undefined => {
    const item = value.get(name);
    return isPtTensor(item) ? item : undefined;
  };
  const features = tensorAt(keys.features);
  if (features === undefined) {
    const names = [...value.entries.keys()].filter((k) => isPtTensor(value.entries.get(k))).map(String);
    throw new DataError('missing-dataset', `slide "${slideId}": tensor "${keys.features}" not found (file has: ${names.length > 0 ? names.join(', ') : 'no tensors'}).`, {
      where: { file },
      hint: 'Set data.dataset.featuresKey to the dict key of the [N, D] features.',
    });
  }
  const coords = tensorAt(keys.coords);
  const thumbs = opts.thumbs === false ? undefined : tensorAt(keys.thumbs);
  return assembleBag(slideId, file, ptHostArray(features), coords && ptHostArray(coords), thumbs && ptHostArray(thumbs), keys);
}

/** One array of a `.pt` file: the bare tensor, or the tensor under `key` of a dict (thumbnail side files). */
export async function readPtArray(file: string, slideId: string, key: string): Promise<HostArray> {
  const value = await readPt(file, slideId);
  const item = value instanceof PtDict ? value.get(key) : value;
  if (!isPtTensor(item)) {
    throw new DataError('missing-dataset', `slide "${slideId}": the .pt file holds no tensor${value instanceof PtDict ? ` under "${key}"` : ''}.`, { where: { file }, hint: 'Save the array with torch.save(tensor).' });
  }
  return ptHostArray(item);
}
