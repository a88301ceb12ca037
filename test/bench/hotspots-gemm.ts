// Every sgemm/sgemv of one milkit zoo training step, with its shape, transposes and time, next to the step's CPU
// time and its kernel totals; the torch side of the same comparison is `torch_zoo_step.py --profile`. Hand-run:
//   GEMM_MODELS=abmil,dsmil GEMM_N=8000 node --conditions=milkit-source --import tsx test/bench/hotspots-gemm.ts
// GEMM_BLAS_THREADS=1 (default 2) makes the CPU time comparable on a loaded machine: idle OpenBLAS threads spin, and
// the spinning counts as CPU time when other processes keep the cores busy. GEMM_AB=1: steps alternate between the
// narrow-product BLAS paths on and off (setNarrowBlasProducts) in this one process; per setting, the CPU time and the
// traced BLAS time of each step.
import * as tf from '@tensorflow/tfjs';
import { builtinManifest } from '../../plugins/index.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { setNarrowBlasProducts } from '../../src/core/runtime/blas-kernels.js';
import { loadNativeBlas, type NativeBlas, type Sgemm, type Sgemv } from '../../src/core/runtime/native-blas.js';
import { Rng } from '../../src/core/runtime/random.js';
import { Registry } from '../../src/registry/registry.js';
import { restoreHeapKernels } from '../../src/core/runtime/heap-kernels.js';
import { buildModel, D, engineOptimizer, engineStep, kernelTotals, median, MODELS } from './shared.js';

interface Call {
  readonly what: string;
  ms: number;
  calls: number;
}

const names = (process.env['GEMM_MODELS'] ?? 'abmil').split(',');
const n = Number(process.env['GEMM_N'] ?? 8000);
const steps = Number(process.env['GEMM_STEPS'] ?? 3);

await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: Number(process.env['GEMM_BLAS_THREADS'] ?? 2) }), { logger: silentLogger });
const probe = await loadNativeBlas();
if (!probe.available) throw new Error(`no BLAS: ${probe.reason}`);
const blas = probe.blas as { -readonly [K in keyof NativeBlas]: NativeBlas[K] };
const calls = new Map<string, Call>();
let recording = false;
const record = (what: string, ms: number): void => {
  if (!recording) return;
  const entry = calls.get(what) ?? { what, ms: 0, calls: 0 };
  entry.ms += ms;
  entry.calls += 1;
  calls.set(what, entry);
};
const sgemm: Sgemm = blas.sgemm;
const sgemv: Sgemv = blas.sgemv;
const T = (op: number): string => (op === 112 ? 'T' : 'N');
blas.sgemm = (order, ta, tb, m, nn, k, alpha, a, lda, b, ldb, beta, c, ldc) => {
  const start = performance.now();
  sgemm(order, ta, tb, m, nn, k, alpha, a, lda, b, ldb, beta, c, ldc);
  record(`sgemm ${T(ta)}${T(tb)} m=${m} n=${nn} k=${k}`, performance.now() - start);
};
blas.sgemv = (order, t, m, nn, alpha, a, lda, x, incx, beta, y, incy) => {
  const start = performance.now();
  sgemv(order, t, m, nn, alpha, a, lda, x, incx, beta, y, incy);
  record(`sgemv ${T(t)} m=${m} n=${nn}`, performance.now() - start);
};

// GEMM_UNFUSED=1: tfjs's own activation-gradient chains and the unfused Adam (before the heap kernels).
const unfused = process.env['GEMM_UNFUSED'] === '1';
if (unfused) restoreHeapKernels();
const registry = new Registry(builtinManifest());
const rng = new Rng('bench/gemm');
const x = tf.tidy(() => tf.randomNormal([n, D], 0, 1, 'float32', rng.seed()) as tf.Tensor2D);
for (const name of names) {
  const zoo = MODELS.find((m) => m.name === name);
  if (!zoo) throw new Error(`unknown zoo model ${name}`);
  const model = await buildModel(registry, zoo);
  const optimizer = engineOptimizer(model, { weightDecay: 0, fused: !unfused });
  engineStep(model, optimizer, x, rng);
  if (process.env['GEMM_AB'] === '1') {
    const ab: Record<'on' | 'off', { cpu: number[]; blas: number[] }> = { on: { cpu: [], blas: [] }, off: { cpu: [], blas: [] } };
    for (let i = 0; i < 2 * steps; i += 1) {
      const setting = i % 4 === 0 || i % 4 === 3 ? 'on' : 'off'; // on, off, off, on, ...
      setNarrowBlasProducts(setting === 'on');
      calls.clear();
      recording = true;
      const c0 = process.cpuUsage();
      engineStep(model, optimizer, x, rng);
      const c = process.cpuUsage(c0);
      recording = false;
      ab[setting].cpu.push((c.user + c.system) / 1000);
      ab[setting].blas.push([...calls.values()].reduce((sum, entry) => sum + entry.ms, 0));
    }
    setNarrowBlasProducts(true);
    const fmt = (values: number[]): string => `min ${Math.min(...values).toFixed(1)} med ${median(values).toFixed(1)}`;
    console.log(`== A/B ${name} N=${n}: narrow on: cpu ${fmt(ab.on.cpu)}, BLAS ${fmt(ab.on.blas)} ms | off: cpu ${fmt(ab.off.cpu)}, BLAS ${fmt(ab.off.blas)} ms`);
  }
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < steps; i += 1) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    engineStep(model, optimizer, x, rng);
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  calls.clear();
  recording = true;
  const t0 = performance.now();
  engineStep(model, optimizer, x, rng);
  const traced = performance.now() - t0;
  recording = false;
  const info = await tf.profile(() => engineStep(model, optimizer, x, rng));
  const totals = [...kernelTotals(info)].sort(([, a], [, b]) => b.ms - a.ms);
  const blasMs = [...calls.values()].reduce((s, c) => s + c.ms, 0);
  console.log(`== ${name} N=${n}: cpu min ${Math.min(...cpu).toFixed(0)} ms; wall ${wall.map((v) => v.toFixed(0)).join('/')} ms, cpu ${cpu.map((v) => v.toFixed(0)).join('/')} ms; traced step ${traced.toFixed(0)} ms, BLAS ${blasMs.toFixed(0)} ms`);
  for (const c of [...calls.values()].sort((a, b) => b.ms - a.ms)) {
    const [, , mm, nn, kk] = /m=(\d+) n=(\d+) k=(\d+)/.exec(c.what) ?? [];
    const gflops = mm ? (2 * Number(mm) * Number(nn) * Number(kk) * c.calls) / (c.ms * 1e6) : 0;
    console.log(`  ${c.what.padEnd(40)} ×${c.calls} ${c.ms.toFixed(2)} ms${gflops ? ` (${gflops.toFixed(0)} GFLOP/s)` : ''}`);
  }
  console.log(`  kernels: ${info.kernels.length} calls; ${totals.slice(0, 12).map(([k, v]) => `${k} ${v.ms.toFixed(1)}×${v.calls}`).join(', ')}`);
  optimizer.dispose();
  model.dispose();
}
x.dispose();
