// `node --conditions=milkit-source --import tsx test/bench/heap-trace.ts <aggregator> <steps> [N]`: where a flat tensor
// count still grows the wasm heap. Wraps the wasm backend's malloc/free (every tensor buffer goes through them) and
// prints, per training step of the zoo configuration (test/bench/shared.ts): the allocations' count, total bytes and a
// hash of their size sequence (equal hashes = the step asked for the same buffers in the same order), and the highest
// end address any live block reached so far (the heap the allocator needs, at byte granularity, long before the heap
// grows by a 96 MB step). TRACE_NO_UPDATE=1: gradients only, no optimizer update. A measurement tool for BENCHMARKS.md's flat-memory section, not a timing.
import * as tf from '@tensorflow/tfjs';
import { builtinManifest } from '../../plugins/index.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { Rng } from '../../src/core/runtime/random.js';
import { Registry } from '../../src/registry/registry.js';
import { buildModel, CLASSES, D, engineOptimizer, engineStep, LABEL, MODELS, trainStep, wasmHeapBytes } from './shared.js';

interface WasmAllocator {
  _malloc(bytes: number): number;
  _free(pointer: number): void;
}

const [name, stepsArg, nArg] = process.argv.slice(2);
const zoo = MODELS.find((m) => m.name === name);
if (!zoo || !stepsArg) {
  process.stderr.write(`usage: heap-trace.ts <${MODELS.map((m) => m.name).join('|')}> <steps> [N]\n`);
  process.exit(2);
}
const n = Number(nArg ?? 8000);
await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
const wasm = (tf.backend() as unknown as { wasm: WasmAllocator }).wasm;
const sizes = new Map<number, number>();
let highWater = 0;
let stepSizes: number[] = [];
// Emscripten's exports replace themselves with the raw function on first call: call both once before wrapping.
wasm._free(wasm._malloc(8));
const malloc = wasm._malloc.bind(wasm);
const free = wasm._free.bind(wasm);
wasm._malloc = (bytes: number): number => {
  const pointer = malloc(bytes) >>> 0;
  sizes.set(pointer, bytes);
  highWater = Math.max(highWater, pointer + bytes);
  stepSizes.push(bytes);
  return pointer;
};
wasm._free = (pointer: number): void => {
  sizes.delete(pointer >>> 0);
  free(pointer);
};

const registry = new Registry(builtinManifest());
const rng = new Rng(`bench/heap-trace/${zoo.name}`);
const model = await buildModel(registry, zoo);
const x = tf.tidy(() => tf.randomNormal([n, D], 0, 1, 'float32', rng.fork('bag').seed()) as tf.Tensor2D);
// TRACE_OPTIMIZER=tfjs: tfjs's own Adam, whose update swaps every parameter's and moment's buffer (the engine's
// optimizers before they updated in place); default: the engine's optimizer.
const tfjsOptimizer = process.env['TRACE_OPTIMIZER'] === 'tfjs' ? tf.train.adam(1e-4) : undefined;
const optimizer = engineOptimizer(model);
const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
for (let step = 1; step <= Number(stepsArg); step += 1) {
  stepSizes = [];
  if (process.env['TRACE_NO_UPDATE'] === '1') {
    // Gradients without the optimizer: separates the step's own buffers from the parameters Adam reallocates.
    const { value, grads } = tf.variableGrads(() => model.losses(model.forward({ slideId: 'trace', features: x, label: LABEL }, { training: true, rng: rng.fork('step') }), LABEL, CLASSES).total, model.trainableVariables());
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  } else if (tfjsOptimizer) {
    trainStep(model, tfjsOptimizer, x, rng);
  } else {
    engineStep(model, optimizer, x, rng);
  }
  let hash = 0;
  for (const bytes of stepSizes) hash = (Math.imul(hash, 31) + bytes) >>> 0;
  const live = [...sizes.values()].reduce((s, b) => s + b, 0);
  // Where the blocks that outlive the step sit: long-lived blocks placed high split the free space below them.
  const liveTop = Math.max(0, ...[...sizes].map(([pointer, bytes]) => pointer + bytes));
  console.log(
    `step ${step}: ${stepSizes.length} mallocs, ${mb(stepSizes.reduce((s, b) => s + b, 0))} MB asked, size sequence #${hash.toString(16)}; ` +
      `live ${mb(live)} MB in ${sizes.size} blocks; highest live block ends at ${mb(liveTop)} MB; high-water address ${mb(highWater)} MB; wasm heap ${mb(wasmHeapBytes())} MB; tensors ${tf.memory().numTensors}`,
  );
}
