// `node --conditions=milkit-source --import tsx test/bench/flat-memory-steps.ts <aggregator> <steps> [N]`: the
// process flat-memory.bench.ts starts once per aggregator (the wasm heap never shrinks, so every aggregator needs a
// fresh one). Builds the zoo's training configuration of the aggregator (test/bench/shared.ts), checks the bag against
// the memory budget (docs/runtime.md#memory-budget) and runs `steps` training steps (forward, losses, backward, Adam)
// with the training engine's optimizer (train.optimizer defaults) on one random bag [N, 1024], printing one JSON line per step on stdout: wasm heap, tf.memory() tensors and bytes,
// RSS and the step's time. A refusal by the budget prints `{"refused": message}` and exits 0.
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { builtinManifest } from '../../plugins/index.js';
import { defaultMemoryLimit, MemoryBudget, modelStepProbe } from '../../src/core/engine/memory-budget.js';
import { BackendError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { Rng } from '../../src/core/runtime/random.js';
import { Registry } from '../../src/registry/registry.js';
import { buildModel, CLASSES, D, engineOptimizer, engineStep, LABEL, MODELS, wasmHeapBytes } from './shared.js';

/** One step's memory readings, after the step (its tensors disposed). */
export interface StepReading {
  readonly step: number;
  readonly ms: number;
  readonly wasmHeap: number;
  readonly numTensors: number;
  readonly numBytes: number;
  readonly rss: number;
}

function currentRss(): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

const [name, stepsArg, nArg] = process.argv.slice(2);
const zoo = MODELS.find((m) => m.name === name);
if (!zoo || !stepsArg) {
  process.stderr.write(`usage: flat-memory-steps.ts <${MODELS.map((m) => m.name).join('|')}> <steps> [N]\n`);
  process.exit(2);
}
const steps = Number(stepsArg);
const n = Number(nArg ?? 50_000);

await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
const registry = new Registry(builtinManifest());
const rng = new Rng(`bench/flat-memory/${zoo.name}`);
const model = await buildModel(registry, zoo);
// Not through tf.tidy: tidy walks what its function returns, and a typed array of more than 2^24 values overflows its Set.
const draw = tf.randomNormal([n, D], 0, 1, 'float32', rng.fork('bag').seed());
const features = draw.dataSync() as Float32Array;
draw.dispose();
const budget = new MemoryBudget({
  limit: defaultMemoryLimit('wasm'),
  model: zoo.name,
  // As the trainer does (src/core/engine/stages.ts): the aggregator's measured floor raises the line.
  floor: (count, mode) => model.aggregator.minimumPeakBytes?.(count, mode),
  probe: modelStepProbe({ model, label: LABEL, numClasses: CLASSES, views: [], variables: model.trainableVariables(), rng: rng.fork('probe') }),
});
try {
  await budget.check({ slideId: 'bench', n, d: D, features }, 'train', `bag [${n}, ${D}]`);
} catch (error) {
  if (!(error instanceof BackendError)) throw error;
  process.stdout.write(`${JSON.stringify({ refused: error.message })}\n`);
  process.exit(0);
}
const fit = budget.estimateFor('train');
const estimate = await budget.estimate({ slideId: 'bench', n, d: D, features }, 'train');
// The estimate next to the heap the steps then reach, on stderr (stdout carries only the step readings the bench parses).
process.stderr.write(`${JSON.stringify({ budget: { n, estimate, line: fit ? fit.fixed + fit.perInstance * n : undefined, fixed: fit?.fixed, perInstance: fit?.perInstance, floor: model.aggregator.minimumPeakBytes?.(n, 'train') } })}\n`);
process.stderr.write(`${zoo.name}: budget check passed at N = ${n}\n`);
process.on('exit', (code) => process.stderr.write(`${zoo.name}: exit ${code}\n`));
const x = tf.tensor2d(features, [n, D]);
const optimizer = engineOptimizer(model);
for (let step = 1; step <= steps; step += 1) {
  const start = performance.now();
  engineStep(model, optimizer, x, rng);
  const ms = performance.now() - start;
  const { numTensors, numBytes } = tf.memory();
  const reading: StepReading = { step, ms, wasmHeap: wasmHeapBytes(), numTensors, numBytes, rss: currentRss() };
  process.stdout.write(`${JSON.stringify(reading)}\n`);
}
x.dispose();
optimizer.dispose();
model.dispose();
