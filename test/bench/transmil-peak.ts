// `node --conditions=milkit-source --import tsx test/bench/transmil-peak.ts N [N ...]` (AGG=name for another aggregator, defaults): peak tensor bytes (tf.profile) of one TransMIL training
// step (forward, CE, gradients; defaults, dropout off) at each N on tfjs-wasm, and bytes per instance between sizes.
// STEPS=k: then k more training steps at the last N (Adam updates, not profiled), printing the wasm heap, tensor
// count and RSS after each, to show memory stays flat. PROFILE=0 skips the profiled step (tf.profile keeps a record
// of every kernel, which costs memory at large N).
// Used for BENCHMARKS.md's TransMIL memory section; a measurement tool, not a timing.
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { builtinManifest } from '../../plugins/index.js';
import { MilModel } from '../../src/core/engine/model.js';
import { profilePeakBytes } from '../../src/core/engine/memory-budget.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { Rng } from '../../src/core/runtime/random.js';
import { Registry } from '../../src/registry/registry.js';

const D = 1024;
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
const registry = new Registry(builtinManifest());
const aggregator = await registry.resolve('aggregator', { name: process.env['AGG'] ?? 'transmil', ...(process.env['AGG'] ? {} : { attnDropout: 0 }) }, { key: 'model.aggregator' });
const classifier = await registry.resolve('classifier', { name: 'linear' }, { key: 'model.classifier' });
const loss = await registry.resolve('loss', { name: 'cross-entropy' }, { key: 'model.losses.bag' });
const model = new MilModel(registry, { aggregator, classifier, losses: { bag: { ...loss, weight: 1 } } as never }, { inputDim: D, numClasses: 2 }, new Rng('peak'), silentLogger);
const rng = new Rng('peak/io');
const steps = Number(process.env['STEPS'] ?? 0);
const profiled = process.env['PROFILE'] !== '0';
const heapBytes = (): number => (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.length ?? 0;
const statusBytes = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
// CPU seconds of the whole process (OpenBLAS threads included): on a shared machine the wall time says little.
const cpuSeconds = (since: NodeJS.CpuUsage): string => {
  const used = process.cpuUsage(since);
  return ((used.user + used.system) / 1e6).toFixed(1);
};
const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
const gradients = (x: tf.Tensor2D, label: string) =>
  tf.variableGrads(() => model.losses(model.forward({ slideId: 'p', features: x, label: 1 }, { training: true, rng: rng.fork(label) }), 1, 2).total, model.trainableVariables());
let previous: { n: number; peak: number } | undefined;
for (const [index, n] of sizes.entries()) {
  const x = tf.randomNormal([n, D], 0, 1, 'float32', 7) as tf.Tensor2D;
  if (profiled) {
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    const peak = await profilePeakBytes(() => {
      const { value, grads } = gradients(x, 's');
      return [value, ...Object.values(grads)];
    });
    const slope = previous ? ` · ${((peak - previous.peak) / (n - previous.n) / 1024).toFixed(1)} KB per instance since N=${previous.n}` : '';
    console.log(`N=${n}: peak ${mb(peak)} MB (${(peak / n / 1024).toFixed(1)} KB/instance overall)${slope}; wasm heap ${mb(heapBytes())} MB; peak RSS ${mb(statusBytes('VmHWM'))} MB; ${((performance.now() - start) / 1000).toFixed(1)} s wall, ${cpuSeconds(cpuStart)} s CPU; tensors ${tf.memory().numTensors}`);
    previous = { n, peak };
  }
  if (index === sizes.length - 1 && steps > 0) {
    const optimizer = tf.train.adam(1e-4);
    for (let step = 1; step <= steps; step += 1) {
      const start = performance.now();
      const cpuStart = process.cpuUsage();
      const { value, grads } = gradients(x, `step-${step}`);
      const loss = value.dataSync()[0] as number;
      optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
      tf.dispose([value, ...Object.values(grads)]);
      console.log(`N=${n} step ${step}: loss ${loss.toFixed(4)}; wasm heap ${mb(heapBytes())} MB; tensors ${tf.memory().numTensors}; RSS ${mb(statusBytes('VmRSS'))} MB (peak ${mb(statusBytes('VmHWM'))} MB); ${((performance.now() - start) / 1000).toFixed(1)} s wall, ${cpuSeconds(cpuStart)} s CPU`);
    }
    optimizer.dispose();
  }
  x.dispose();
}
