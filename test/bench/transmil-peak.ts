// `node --conditions=milkit-source --import tsx test/bench/transmil-peak.ts N [N ...]` (AGG=name for another aggregator, defaults): peak tensor bytes (tf.profile) of one TransMIL training
// step (forward, CE, gradients; defaults, dropout off) at each N on tfjs-wasm, and bytes per instance between sizes.
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
let previous: { n: number; peak: number } | undefined;
for (const n of sizes) {
  const x = tf.randomNormal([n, D], 0, 1, 'float32', 7) as tf.Tensor2D;
  const start = performance.now();
  const peak = await profilePeakBytes(() => {
    const { value, grads } = tf.variableGrads(() => model.losses(model.forward({ slideId: 'p', features: x, label: 1 }, { training: true, rng: rng.fork('s') }), 1, 2).total, model.trainableVariables());
    return [value, ...Object.values(grads)];
  });
  const heap = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.length ?? 0;
  const rss = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
  const slope = previous ? ` · ${((peak - previous.peak) / (n - previous.n) / 1024).toFixed(1)} KB per instance since N=${previous.n}` : '';
  console.log(`N=${n}: peak ${(peak / 2 ** 20).toFixed(0)} MB (${(peak / n / 1024).toFixed(1)} KB/instance overall)${slope}; wasm heap ${(heap / 2 ** 20).toFixed(0)} MB; peak RSS ${(rss / 2 ** 20).toFixed(0)} MB; ${((performance.now() - start) / 1000).toFixed(1)} s; tensors ${tf.memory().numTensors}`);
  previous = { n, peak };
  x.dispose();
}
