// One process's share of the hot-spot micro-bench (test/bench/hotspots-interleave.ts): times milkit train steps
// (forward, weighted losses, gradients, milkit's Adam) of mean-pool, max-pool (raw and with a 512-wide
// projection), dmin+cka and dsmil on one bag
// [N, 1024] at N = 1,000 and 8,000, and prints one JSON line {"<model>@<N>": [ms, ...]} on stdout. It uses
// only APIs that exist before and after the hot-spot changes, so the driver can run it from both trees.
// Environment: HOTSPOTS_STEPS (timed steps per cell, default 3), HOTSPOTS_SIZES ("1000,8000"),
// HOTSPOTS_MODELS (comma list), HOTSPOTS_FUSED=1 (fused Adam; only where the option exists),
// HOTSPOTS_PROFILE=<model>@<N> (print a per-kernel profile of one step instead of timings; HOTSPOTS_PROFILE_TOP kernels,
// default 10; HOTSPOTS_PROFILE_DETAIL=1 also lists the slowest single calls with their shapes on stderr),
// HOTSPOTS_TAIL=<model>@<N> (every step profiled; for the six slowest, the kernels holding their extra time against the
// median step), HOTSPOTS_BLAS_THREADS (runtime.blasThreads; default cores ÷ workers).
import * as tf from '@tensorflow/tfjs';
import { builtinManifest } from '../../plugins/index.js';
import type { MilModel } from '../../src/core/engine/model.js';
import { createOptimizer, type Optimizer } from '../../src/core/engine/optim/index.js';
import { OptimizerSection } from '../../src/core/engine/schema.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { Rng } from '../../src/core/runtime/random.js';
import { Registry } from '../../src/registry/registry.js';
import { buildHotspotModel, CLASSES, HOTSPOT_MODELS, LABEL } from './hotspots-models.js';
import { kernelTotals } from './shared.js';

const D = 1024;

function trainStep(model: MilModel, optimizer: Optimizer, params: tf.Variable[], x: tf.Tensor2D, rng: Rng): void {
  const { value, grads } = tf.variableGrads(
    () => model.losses(model.forward({ slideId: 'bench', features: x, label: LABEL }, { training: true, rng: rng.fork('step') }), LABEL, CLASSES).total,
    params,
  );
  // A parameter the loss does not reach (e.g. the other class's instance classifier) gets no gradient.
  const ordered = params.map((p) => grads[p.name] ?? tf.zerosLike(p));
  optimizer.step(ordered, 1e-4);
  tf.dispose(ordered.filter((g, i) => g !== grads[(params[i] as tf.Variable).name]));
  value.dataSync();
  value.dispose();
  tf.dispose(grads);
}

async function main(): Promise<void> {
  await initRuntime(RuntimeSection.parse({ backend: 'wasm', ...(process.env.HOTSPOTS_BLAS_THREADS ? { blasThreads: Number(process.env.HOTSPOTS_BLAS_THREADS) } : {}) }), { logger: silentLogger });
  const registry = new Registry(builtinManifest());
  const steps = Number(process.env.HOTSPOTS_STEPS ?? 3);
  const sizes = (process.env.HOTSPOTS_SIZES ?? '1000,8000').split(',').map(Number);
  const names = (process.env.HOTSPOTS_MODELS ?? Object.keys(HOTSPOT_MODELS).join(',')).split(',');
  const profile = process.env.HOTSPOTS_PROFILE;
  const section = OptimizerSection.parse({ name: 'adam', ...(process.env.HOTSPOTS_FUSED === '1' ? { fused: true } : {}) });
  const rng = new Rng('hotspots');
  const result: Record<string, number[]> = {};
  for (const name of names) {
    const model = await buildHotspotModel(registry, name, D);
    const named = model.namedTrainable();
    const params = named.map(([, v]) => v);
    const optimizer = createOptimizer(section, named);
    for (const n of sizes) {
      const x = tf.tidy(() => tf.randomNormal([n, D], 0, 1, 'float32', 7) as tf.Tensor2D);
      trainStep(model, optimizer, params, x, rng); // warm-up: kernel set-up, first allocations
      if (profile === `${name}@${n}`) {
        const info = await tf.profile(() => trainStep(model, optimizer, params, x, rng));
        const byKernel = kernelTotals(info);
        const total = [...byKernel.values()].reduce((s, k) => s + k.ms, 0);
        const top = [...byKernel].sort(([, a], [, b]) => b.ms - a.ms).slice(0, Number(process.env.HOTSPOTS_PROFILE_TOP ?? 10));
        if (process.env.HOTSPOTS_PROFILE_DETAIL === '1') {
          // The slowest single kernel calls with their shapes, to tell a [N, D] kernel from a parameter-sized one.
          const slowest = [...info.kernels].sort((a, b) => Number(b.kernelTimeMs) - Number(a.kernelTimeMs)).slice(0, 40);
          for (const k of slowest) process.stderr.write(`${k.name} ${Number(k.kernelTimeMs).toFixed(2)} ms in ${JSON.stringify(k.inputShapes)} out ${JSON.stringify(k.outputShapes)}\n`);
        }
        process.stdout.write(`${JSON.stringify({ profile: profile, totalMs: Number(total.toFixed(1)), calls: info.kernels.length, top: top.map(([k, v]) => `${k} ${v.ms.toFixed(1)} ms ×${v.calls}`) })}\n`);
      } else if (process.env.HOTSPOTS_TAIL === `${name}@${n}`) {
        // Every step profiled: which kernels the slow steps spend their extra time in, against the median step.
        const runs: Array<{ wall: number; kernels: Map<string, { ms: number; calls: number }> }> = [];
        for (let i = 0; i < steps; i += 1) {
          const start = performance.now();
          const info = await tf.profile(() => trainStep(model, optimizer, params, x, rng));
          runs.push({ wall: performance.now() - start, kernels: kernelTotals(info) });
        }
        const sorted = [...runs].sort((a, b) => a.wall - b.wall);
        const typical = sorted[Math.floor(sorted.length / 2)]!;
        for (const slow of sorted.slice(-6)) {
          const extra = [...slow.kernels].map(([k, v]) => [k, v.ms - (typical.kernels.get(k)?.ms ?? 0)] as const).sort((a, b) => b[1] - a[1]).slice(0, 4);
          const kernelSum = (r: typeof slow): number => [...r.kernels.values()].reduce((t, v) => t + v.ms, 0);
          process.stdout.write(`slow ${slow.wall.toFixed(1)} vs median ${typical.wall.toFixed(1)} ms; kernels ${kernelSum(slow).toFixed(1)} vs ${kernelSum(typical).toFixed(1)}; extra in ${extra.map(([k, v]) => `${k} +${v.toFixed(1)}`).join(', ')}\n`);
        }
      } else if (profile === undefined) {
        const times: number[] = [];
        for (let i = 0; i < steps; i += 1) {
          const start = performance.now();
          trainStep(model, optimizer, params, x, rng);
          times.push(Number((performance.now() - start).toFixed(1)));
        }
        result[`${name}@${n}`] = times;
      }
      x.dispose();
    }
    optimizer.dispose();
    model.dispose();
  }
  if (profile === undefined) process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
