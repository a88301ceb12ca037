import { describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../../src/core/logger.js';
import { BLAS_LIBRARY_ENV, loadNativeBlas } from '../../../src/core/runtime/native-blas.js';
import { CBLAS_NO_TRANS, CBLAS_ROW_MAJOR, CBLAS_TRANS } from '../../../src/core/runtime/native-blas.js';

const probe = await loadNativeBlas({ env: {} });

describe('loadNativeBlas', () => {
  it('reports "not available" with one log line when no candidate loads', async () => {
    const logger = new MemoryLogger();
    const result = await loadNativeBlas({ candidates: ['libmilkit-missing-a.so', 'libmilkit-missing-b.so.1'], logger });
    expect(result).toEqual({ available: false, reason: 'no usable BLAS library (not found: libmilkit-missing-a.so, libmilkit-missing-b.so.1)' });
    expect(logger.text()).toBe('info: BLAS: not available (no usable BLAS library (not found: libmilkit-missing-a.so, libmilkit-missing-b.so.1))');
  });

  it('refuses a library without cblas_sgemm', async () => {
    const result = await loadNativeBlas({ candidates: ['libm.so.6'] });
    expect(result).toEqual({ available: false, reason: 'no usable BLAS library (libm.so.6: no cblas_sgemm/cblas_sgemv)' });
  });

  it(`is disabled by ${BLAS_LIBRARY_ENV}=none`, async () => {
    const result = await loadNativeBlas({ env: { [BLAS_LIBRARY_ENV]: 'none' } });
    expect(result).toEqual({ available: false, reason: `disabled by ${BLAS_LIBRARY_ENV}=none` });
  });

  it(`loads exactly the library ${BLAS_LIBRARY_ENV} names`, async () => {
    const result = await loadNativeBlas({ env: { [BLAS_LIBRARY_ENV]: 'libmilkit-missing-c.so' } });
    expect(result).toEqual({ available: false, reason: 'no usable BLAS library (not found: libmilkit-missing-c.so)' });
  });
});

// CI installs libopenblas0-pthread (.ci/run), so this block runs there.
describe.skipIf(!probe.available)('the loaded BLAS', () => {
  const blas = probe.available ? probe.blas : undefined;

  it('names itself', () => {
    expect(blas?.config).toMatch(/^(OpenBLAS \d|BLIS )/);
  });

  it('computes sgemm with every transpose, writing into a subarray view', () => {
    // A = [[1,2,3],[4,5,6]] (2×3), B = [[1,0],[0,1],[1,1]] (3×2): A·B = [[4,5],[10,11]]
    const A = new Float32Array([1, 2, 3, 4, 5, 6]);
    const B = new Float32Array([1, 0, 0, 1, 1, 1]);
    const backing = new Float32Array(8).fill(-1);
    const C = backing.subarray(2, 6);
    blas?.sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_NO_TRANS, 2, 2, 3, 1, A, 3, B, 2, 0, C, 2);
    expect(Array.from(backing)).toEqual([-1, -1, 4, 5, 10, 11, -1, -1]);
    // Aᵀ stored (3×2) and Bᵀ stored (2×3) give the same product.
    const At = new Float32Array([1, 4, 2, 5, 3, 6]);
    const Bt = new Float32Array([1, 0, 1, 0, 1, 1]);
    const D = new Float32Array(4);
    blas?.sgemm(CBLAS_ROW_MAJOR, CBLAS_TRANS, CBLAS_TRANS, 2, 2, 3, 1, At, 2, Bt, 3, 0, D, 2);
    expect(Array.from(D)).toEqual([4, 5, 10, 11]);
  });

  it('computes sgemv Xᵀ·1 (column sums)', () => {
    const X = new Float32Array([1, 2, 3, 4, 5, 6]); // 3×2
    const y = new Float32Array(2);
    blas?.sgemv(CBLAS_ROW_MAJOR, CBLAS_TRANS, 3, 2, 1, X, 2, new Float32Array([1, 1, 1]), 1, 0, y, 1);
    expect(Array.from(y)).toEqual([9, 12]);
  });

  it('sets and reports its thread count', () => {
    expect(blas?.setThreads(1)).toBe(true);
    expect(blas?.threads()).toBe(1);
    expect(blas?.setThreads(2)).toBe(true);
    expect(blas?.threads()).toBe(2);
  });
});
