// The flat-memory bench's verdict on a heap/tensor curve (the bench itself runs at 50,000 instances, not here).
import { describe, expect, it } from 'vitest';
import { rowOf, verdict } from './flat-memory.bench.js';
import type { StepReading } from './flat-memory-steps.js';

const MB = 2 ** 20;

function curve(heapsMb: readonly number[], tensors: readonly number[] = heapsMb.map(() => 38)): StepReading[] {
  return heapsMb.map((heap, i) => ({ step: i + 1, ms: 1000, wasmHeap: heap * MB, numTensors: tensors[i] ?? 38, numBytes: (tensors[i] ?? 38) * MB, rss: (heap + 300) * MB }));
}

describe('bench/flat-memory verdict', () => {
  it('is flat when nothing changes after step 2, whatever step 1 did', () => {
    expect(verdict(curve([1900, 2000, 2000, 2000, 2000]))).toBe('**flat**');
  });

  it('levels off when the heap grew only in the first half of the steps', () => {
    expect(verdict(curve([2000, 2000, 2096, 2096, 2096, 2096, 2096, 2096, 2096, 2096]))).toBe('**levels off**: heap +96 MB after step 2, none after step 3');
  });

  it('is growing when the heap grew in the second half', () => {
    expect(verdict(curve([2000, 2000, 2000, 2000, 2000, 2000, 2000, 2000, 2096, 2192]))).toBe('**growing**: heap +192 MB after step 2, last at step 10');
  });

  it('is growing when the tensors are, even on a flat heap', () => {
    expect(verdict(curve([2000, 2000, 2000, 2000], [38, 38, 39, 40]))).toBe('**growing**: tensors 38 → 40, bytes +2 MB');
  });

  it('does not judge fewer than three steps', () => {
    expect(verdict(curve([2000, 2000]))).toBe('too few steps to judge');
  });
});

describe('bench/flat-memory rows', () => {
  it('has the header\'s seven cells in every kind of row', () => {
    const cells = (row: string): number => row.split('|').length - 2;
    expect(cells(rowOf({ name: 'abmil', planned: 10, readings: curve([2000, 2000, 2000]) }))).toBe(7);
    expect(cells(rowOf({ name: 'transmil', planned: 30, readings: [], refused: 'needs 9 GB' }))).toBe(7);
    expect(cells(rowOf({ name: 'dsmil', planned: 10, readings: [], cut: true }))).toBe(7);
  });

  it('compresses the heap curve and gives the verdict', () => {
    const row = rowOf({ name: 'dmin', planned: 30, readings: curve([2000, 2048, 2048, 2048]) });
    expect(row).toContain('| dmin | 4/30 | **flat** | 2000, 2048 ×3 |');
  });
});
