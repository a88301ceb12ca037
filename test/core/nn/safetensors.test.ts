import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors, SafetensorsFormatError, toFloat32, toInt32, writeSafetensors } from '../../../src/core/nn/safetensors.js';
import { FIXTURES } from '../../helpers/zoo.js';

describe('nn/safetensors', () => {
  it('round-trips float, int64 and int32 tensors with metadata, in order', () => {
    const bytes = writeSafetensors(
      {
        w: { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6.5]) },
        labels: { dtype: 'I64', shape: [2], data: BigInt64Array.from([0n, 1n]) },
        step: { dtype: 'I32', shape: [], data: Int32Array.from([7]) },
      },
      { format: 'pt' },
    );
    const header = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(header % 8).toBe(0); // data starts 8-byte aligned, as the reference writer pads
    const { tensors, metadata } = readSafetensors(bytes);
    expect(metadata).toEqual({ format: 'pt' });
    expect(Object.keys(tensors)).toEqual(['w', 'labels', 'step']);
    expect(Array.from(toFloat32(tensors.w!))).toEqual([1, 2, 3, 4, 5, 6.5]);
    expect(tensors.labels?.dtype).toBe('I64');
    expect(Array.from(toInt32(tensors.labels!))).toEqual([0, 1]);
    expect(tensors.step?.shape).toEqual([]);
  });

  it('reads files written by the independent Python writer', () => {
    const { tensors } = readSafetensors(new Uint8Array(readFileSync(join(FIXTURES, 'clam-sb.weights.safetensors'))));
    expect(tensors['attention_net.0.weight']?.shape).toEqual([10, 12]);
    expect(tensors['instance_loss_fn.labels']?.dtype).toBe('I64');
    expect(Array.from(toInt32(tensors['instance_loss_fn.labels']!))).toEqual([0, 1]);
  });

  it('widens float16 and bfloat16 exactly', () => {
    // 1.5 = 0x3e00 (half), -2 = 0xc000 (half); 1.5 = 0x3fc0 (bfloat16)
    expect(Array.from(toFloat32({ dtype: 'F16', shape: [2], data: Uint16Array.from([0x3e00, 0xc000]) }))).toEqual([1.5, -2]);
    expect(Array.from(toFloat32({ dtype: 'BF16', shape: [1], data: Uint16Array.from([0x3fc0]) }))).toEqual([1.5]);
  });

  it.each([
    ['a truncated file', new Uint8Array([1, 2, 3]), /too short/],
    ['a header longer than the file', (() => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 100n, true); return b; })(), /exceeds the file size/],
    ['offsets that do not match the shape', writeHeader({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 12), /do not hold 12 bytes/],
    ['an unknown dtype', writeHeader({ t: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, 8), /unsupported dtype "C64"/],
  ])('rejects %s', (_, bytes, message) => {
    expect(() => readSafetensors(bytes)).toThrow(SafetensorsFormatError);
    expect(() => readSafetensors(bytes)).toThrow(message);
  });
});

function writeHeader(header: Record<string, unknown>, dataBytes: number): Uint8Array {
  const text = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + text.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  return out;
}
