// The safetensors file format, read and written by hand: 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets}, __metadata__: {string: string}}, then the raw little-endian tensor bytes.
// Used for checkpoints and for weight exchange with PyTorch (`milkit weights`).

/** Element types of the format (the subset PyTorch checkpoints use). */
export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Host storage per dtype; F16/BF16 keep their raw 16-bit patterns (see `toFloat32`). */
export type TensorData = Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** One tensor as stored: dtype, shape and row-major data. */
export interface TensorRecord {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

export interface SafetensorsFile {
  /** By name, in file order. */
  readonly tensors: Readonly<Record<string, TensorRecord>>;
  /** The free-form `__metadata__` string map (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;
}

const BYTES: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** Thrown for a malformed file; the caller adds the file name. */
export class SafetensorsFormatError extends Error {}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A typed view over `bytes` for `dtype` (copied, so the result is aligned and owns its memory). */
function decode(dtype: SafetensorsDtype, bytes: Uint8Array): TensorData {
  const copy = bytes.slice().buffer; // aligned at 0
  switch (dtype) {
    case 'F64':
      return new Float64Array(copy);
    case 'F32':
      return new Float32Array(copy);
    case 'F16':
    case 'BF16':
      return new Uint16Array(copy);
    case 'I64':
      return new BigInt64Array(copy);
    case 'I32':
      return new Int32Array(copy);
    case 'I16':
      return new Int16Array(copy);
    case 'I8':
      return new Int8Array(copy);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(copy);
  }
}

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(BYTES, value);
}

/** Parses a whole file held in memory. The format is little-endian; so is every platform Node runs on. */
export function readSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (bytes.byteLength < 8) throw new SafetensorsFormatError(`file too short (${bytes.byteLength} bytes) for a safetensors header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.byteLength - 8) throw new SafetensorsFormatError(`header length ${headerLength} exceeds the file size ${bytes.byteLength}`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  } catch (cause) {
    throw new SafetensorsFormatError(`header is not valid JSON (${(cause as Error).message})`);
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.byteLength - dataStart;
  const tensors: Record<string, TensorRecord> = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = Object.fromEntries(Object.entries((entry ?? {}) as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = (entry ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isDtype(dtype)) throw new SafetensorsFormatError(`tensor "${name}": unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(BYTES).join(', ')})`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw new SafetensorsFormatError(`tensor "${name}": invalid shape ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
      throw new SafetensorsFormatError(`tensor "${name}": invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const expected = elementCount(shape as number[]) * BYTES[dtype];
    if (end - begin !== expected || end > dataLength) {
      throw new SafetensorsFormatError(`tensor "${name}": data_offsets [${begin}, ${end}] do not hold ${expected} bytes of ${dtype} [${(shape as number[]).join(', ')}] within ${dataLength} data bytes`);
    }
    tensors[name] = { dtype, shape: shape as number[], data: decode(dtype, bytes.subarray(dataStart + begin, dataStart + end)) };
  }
  return { tensors, metadata };
}

function rawBytes(record: TensorRecord): Uint8Array {
  return new Uint8Array(record.data.buffer, record.data.byteOffset, record.data.byteLength);
}

/**
 * Serialises tensors (in the given order) and string metadata. The header is padded with spaces to a multiple
 * of 8 bytes, as the reference writer does, so every tensor's data starts aligned.
 */
export function writeSafetensors(tensors: Readonly<Record<string, TensorRecord>>, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, record] of Object.entries(tensors)) {
    const expected = elementCount(record.shape) * BYTES[record.dtype];
    if (record.data.byteLength !== expected) {
      throw new SafetensorsFormatError(`tensor "${name}": ${record.data.byteLength} bytes of data for ${record.dtype} [${record.shape.join(', ')}] (expected ${expected})`);
    }
    header[name] = { dtype: record.dtype, shape: [...record.shape], data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  let headerText = JSON.stringify(header);
  const encoder = new TextEncoder();
  const padding = (8 - (encoder.encode(headerText).byteLength % 8)) % 8;
  headerText += ' '.repeat(padding);
  const headerBytes = encoder.encode(headerText);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let cursor = 8 + headerBytes.byteLength;
  for (const record of Object.values(tensors)) {
    out.set(rawBytes(record), cursor);
    cursor += record.data.byteLength;
  }
  return out;
}

/** IEEE half → float. */
function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** Any floating record as float32 values (F64 rounds; F16/BF16 widen exactly). */
export function toFloat32(record: TensorRecord): Float32Array {
  const { dtype, data } = record;
  if (dtype === 'F32') return data as Float32Array;
  if (dtype === 'F64') return Float32Array.from(data as Float64Array);
  if (dtype === 'F16') return Float32Array.from(data as Uint16Array, halfToFloat);
  if (dtype === 'BF16') {
    // bfloat16 is the top half of a float32.
    const widened = new Uint32Array((data as Uint16Array).length);
    (data as Uint16Array).forEach((bits, i) => (widened[i] = bits << 16));
    return new Float32Array(widened.buffer);
  }
  throw new SafetensorsFormatError(`dtype ${dtype} is not a floating type`);
}

/** Any integer record as int32 values; throws when a value does not fit. */
export function toInt32(record: TensorRecord): Int32Array {
  const { dtype, data } = record;
  if (dtype === 'I32') return data as Int32Array;
  if (dtype === 'I64') {
    const out = new Int32Array(data.length);
    (data as BigInt64Array).forEach((value, i) => {
      if (value > 2147483647n || value < -2147483648n) throw new SafetensorsFormatError(`int64 value ${value} does not fit int32`);
      out[i] = Number(value);
    });
    return out;
  }
  if (dtype === 'I16' || dtype === 'I8' || dtype === 'U8' || dtype === 'BOOL') return Int32Array.from(data as Int16Array);
  throw new SafetensorsFormatError(`dtype ${dtype} is not an integer type`);
}

/** Whether `dtype` holds floating-point values. */
export function isFloatDtype(dtype: SafetensorsDtype): boolean {
  return dtype === 'F64' || dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}
