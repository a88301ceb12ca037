// The milkit side of the zoo bench (zoo.bench.ts) as a process of its own, speaking the same line protocol as the
// torch side (test/bench/torch_zoo_step.py): a hello with the runtime first, then one JSON request per line on stdin
// and one JSON reply per line on stdout. The bench starts one of these per cell and round, as it does for torch, so
// both sides are measured in a fresh process: one long-lived process carries the wasm heap grown by every earlier
// cell (2.2 GB after the 50k bags, never returned), and its later steps were measured slower than the same step in
// a fresh process (BENCHMARKS.md, the MIL zoo section).
//   request: {model, n, warmup, steps, warmupMs?, estimate?, measurePeak?, profileN?} (at least `warmup` warm-up
//            steps and, with warmupMs, warm-up steps until that many ms have passed)
//   reply:   {ms, peakRss, wasmHeap, params, estimate?, measuredPeak?, profile?, error?}
// `estimate` runs the memory budget before anything runs at N (a cell over the wasm limit is "not run" instead of
// aborting the process); `measurePeak` adds tf.profile's peak tensor bytes of one step; `profileN` adds one
// profiled step on a bag of that size (kernel time per kernel).
// Hand-run: node --conditions=milkit-source --import tsx test/bench/milkit_zoo_step.ts, then type a request. Without
// the milkit-source condition the plugins' `milkit/nn` imports resolve to the compiled dist/ (a second, possibly
// stale copy of core beside the sources this script imports), so shared.ts refuses to start.
import { createInterface } from 'node:readline';
import * as tf from '@tensorflow/tfjs';
import { builtinManifest } from '../../plugins/index.js';
import { defaultMemoryLimit, formatBytes, MemoryBudget, modelStepProbe, profilePeakBytes } from '../../src/core/engine/memory-budget.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { Rng } from '../../src/core/runtime/random.js';
import { Registry } from '../../src/registry/registry.js';
import { buildModel, CLASSES, D, engineOptimizer, engineStep, kernelTotals, LABEL, MODELS, peakRss, resetPeakRss, wasmHeapBytes } from './shared.js';

interface Request {
  readonly model: string;
  readonly n: number;
  readonly warmup: number;
  readonly steps: number;
  readonly warmupMs?: number;
  readonly estimate?: boolean;
  readonly measurePeak?: boolean;
  readonly profileN?: number;
}

const info = await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
const registry = new Registry(builtinManifest());
const reply = (message: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(message)}\n`);
};
reply({
  milkit: {
    tfjsVersion: info.tfjsVersion, backend: info.backend, simd: info.wasm?.simd ?? false, wasmThreads: info.wasm?.threads ?? 1,
    blas: info.blas.active ? { library: info.blas.library, threads: info.blas.threads } : { reason: info.blas.reason },
    kernelOverrides: info.kernelOverrides, matmulGrad: info.matmulGrad,
  },
});

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const request = JSON.parse(line) as Request;
  try {
    reply(await runCell(request));
  } catch (error) {
    reply({ error: (error as Error).message.slice(0, 200), peakRss: peakRss(), wasmHeap: wasmHeapBytes() });
  }
}

async function runCell(request: Request): Promise<Record<string, unknown>> {
  const zoo = MODELS.find((candidate) => candidate.name === request.model);
  if (!zoo) throw new Error(`unknown model ${request.model}`);
  // The bag is drawn from a seed fixed per N (the values do not change a step's cost), as the torch side does.
  const rng = new Rng(`bench/zoo/${request.n}`);
  const features = tf.tidy(() => tf.randomNormal([request.n, D], 0, 1, 'float32', rng.fork('bag').seed()) as tf.Tensor2D);
  const model = await buildModel(registry, zoo);
  const optimizer = engineOptimizer(model, { weightDecay: 0 });
  try {
    const params = model.trainableVariables().reduce((sum, variable) => sum + variable.size, 0);
    const out: Record<string, unknown> = { params };
    const limit = defaultMemoryLimit('wasm');
    if (request.estimate) {
      // The budget's estimate (two probes on cuts of this bag, extrapolated) before anything runs at N.
      const probe = modelStepProbe({ model, label: LABEL, numClasses: CLASSES, views: [], variables: model.trainableVariables(), rng: rng.fork('probe') });
      const budget = new MemoryBudget({ limit, model: zoo.name, probe, checkFrom: 0 });
      const bag = { slideId: 'bench', n: request.n, d: D, features: features.dataSync() as Float32Array };
      const estimate = await budget.estimate(bag, 'train', request.n);
      out['estimate'] = estimate;
      if (estimate > limit.bytes) return { ...out, error: `not run: estimated ${formatBytes(estimate)} > limit ${formatBytes(limit.bytes)}` };
    }
    resetPeakRss();
    const warmFrom = performance.now();
    for (let warmed = 0; warmed < request.warmup || performance.now() - warmFrom < (request.warmupMs ?? 0); warmed += 1) engineStep(model, optimizer, features, rng);
    const ms: number[] = [];
    for (let i = 0; i < request.steps; i += 1) {
      const start = performance.now();
      engineStep(model, optimizer, features, rng);
      ms.push(performance.now() - start);
    }
    out['ms'] = ms;
    out['peakRss'] = peakRss();
    out['wasmHeap'] = wasmHeapBytes();
    if (request.measurePeak) {
      out['measuredPeak'] = await profilePeakBytes(() => {
        const { value, grads } = tf.variableGrads(() => model.losses(model.forward({ slideId: 'bench', features, label: LABEL }, { training: true, rng: rng.fork('peak') }), LABEL, CLASSES).total, model.trainableVariables());
        return [value, ...Object.values(grads)];
      });
    }
    if (request.profileN) {
      const x = tf.tidy(() => tf.randomNormal([request.profileN!, D], 0, 1, 'float32', rng.fork('profile').seed()) as tf.Tensor2D);
      try {
        const profiled = await tf.profile(() => engineStep(model, optimizer, x, rng));
        const totals = [...kernelTotals(profiled)].map(([name, { ms: kernelMs, calls }]) => ({ name, ms: kernelMs, calls }));
        out['profile'] = { kernels: totals, calls: profiled.kernels.length };
      } finally {
        x.dispose();
      }
    }
    return out;
  } finally {
    optimizer.dispose();
    model.dispose();
    features.dispose();
  }
}
