// Raw OpenBLAS calls through koffi at the narrow shapes of a zoo step (N = 8,000): sgemm against the sgemv/sger form
// the BLAS kernels now use (src/core/runtime/blas-kernels.ts), alternating in one process, CPU and wall time per call
// (min and median over rounds). Hand-run: node --conditions=milkit-source --import tsx test/bench/hotspots-gemm-shapes.ts (BLAS threads: 2, or
// SHAPES_BLAS_THREADS).
import { CBLAS_NO_TRANS as N, CBLAS_ROW_MAJOR as R, CBLAS_TRANS as T, loadNativeBlas } from '../../src/core/runtime/native-blas.js';
import { median } from './shared.js';

const probe = await loadNativeBlas();
if (!probe.available) throw new Error(`no BLAS: ${probe.reason}`);
const blas = probe.blas;
const sger = blas.sger;
if (!sger) throw new Error('this BLAS has no cblas_sger');
blas.setThreads(Number(process.env['SHAPES_BLAS_THREADS'] ?? 2));
const random = (size: number): Float32Array => Float32Array.from({ length: size }, () => Math.random() - 0.5);
const rows = 8000;
const H = random(rows * 1024);
const v = random(rows * 16);
const w = random(1024 * 16);
const C = new Float32Array(rows * 512);
const cases: Array<[string, () => void, () => void]> = [
  ['m = 1: a·H, [1, 8000]·[8000, 512] (attention pooling)',
    () => blas.sgemm(R, N, N, 1, 512, rows, 1, v, rows, H, 512, 0, C, 512),
    () => blas.sgemv(R, T, rows, 512, 1, H, 512, v, 1, 0, C, 1)],
  ['m = 1: dz·Hᵀ, [1, 512]·[8000, 512]ᵀ (its gradient)',
    () => blas.sgemm(R, N, T, 1, rows, 512, 1, w, 512, H, 512, 0, C, rows),
    () => blas.sgemv(R, N, rows, 512, 1, H, 512, w, 1, 0, C, 1)],
  ['n = 2: [8000, 1024]·[1024, 2] (class logits)',
    () => blas.sgemm(R, N, N, rows, 2, 1024, 1, H, 1024, w, 2, 0, C, 2),
    () => { for (let j = 0; j < 2; j += 1) blas.sgemv(R, N, rows, 1024, 1, H, 1024, w.subarray(j), 2, 0, C.subarray(j), 2); }],
  ['m = 2: [8000, 2]ᵀ·[8000, 1024] (their weight gradient)',
    () => blas.sgemm(R, T, N, 2, 1024, rows, 1, v, 2, H, 1024, 0, C, 1024),
    () => { for (let i = 0; i < 2; i += 1) blas.sgemv(R, T, rows, 1024, 1, H, 1024, v.subarray(i), 2, 0, C.subarray(i * 1024), 1); }],
  ['n = 4: [8000, 1024]·[1024, 4]',
    () => blas.sgemm(R, N, N, rows, 4, 1024, 1, H, 1024, w, 4, 0, C, 4),
    () => { for (let j = 0; j < 4; j += 1) blas.sgemv(R, N, rows, 1024, 1, H, 1024, w.subarray(j), 4, 0, C.subarray(j), 4); }],
  ['n = 8: [8000, 1024]·[1024, 8] (stays on sgemm)',
    () => blas.sgemm(R, N, N, rows, 8, 1024, 1, H, 1024, w, 8, 0, C, 8),
    () => { for (let j = 0; j < 8; j += 1) blas.sgemv(R, N, rows, 1024, 1, H, 1024, w.subarray(j), 8, 0, C.subarray(j), 8); }],
  ['k = 1: [8000, 1]·[1, 512] (gradient of a pooled row)',
    () => blas.sgemm(R, T, N, rows, 512, 1, 1, v, rows, w, 512, 0, C, 512),
    () => { C.fill(0, 0, rows * 512); sger(R, rows, 512, 1, v, 1, w, 1, C, 512); }],
];
const rounds = 9;
const results = cases.map(() => ({ sgemm: { cpu: [] as number[], wall: [] as number[] }, narrow: { cpu: [] as number[], wall: [] as number[] } }));
for (let round = 0; round < rounds; round += 1) {
  cases.forEach(([, viaSgemm, viaNarrow], i) => {
    const order: Array<['sgemm' | 'narrow', () => void]> = round % 2 ? [['narrow', viaNarrow], ['sgemm', viaSgemm]] : [['sgemm', viaSgemm], ['narrow', viaNarrow]];
    for (const [label, call] of order) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      call();
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(c0);
      results[i]![label].cpu.push((cpu.user + cpu.system) / 1000);
      results[i]![label].wall.push(wall);
    }
  });
}
const fmt = (values: number[]): string => `${Math.min(...values).toFixed(2)} / ${median(values).toFixed(2)}`;
console.log(`| product | sgemm CPU ms (min / median) | sgemm wall | sgemv/sger CPU | sgemv/sger wall |`);
console.log('|---|---|---|---|---|');
cases.forEach(([label], i) => {
  const r = results[i]!;
  console.log(`| ${label} | ${fmt(r.sgemm.cpu)} | ${fmt(r.sgemm.wall)} | ${fmt(r.narrow.cpu)} | ${fmt(r.narrow.wall)} |`);
});
