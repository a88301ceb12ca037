// Fused vs unfused Adam update alone, alternating in one process: optimizer.step over the parameters of each
// hot-spot bench model (test/bench/hotspots-step.ts builds the same models) with fixed random gradients.
// Prints {"<model>": {"unfused": [ms...], "fused": [ms...]}}. Environment: HOTSPOTS_STEPS (default 9).
import * as tf from '@tensorflow/tfjs';
import { builtinManifest } from '../../plugins/index.js';
import { MilModel } from '../../src/core/engine/model.js';
import { createOptimizer } from '../../src/core/engine/optim/index.js';
import { OptimizerSection } from '../../src/core/engine/schema.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { Rng } from '../../src/core/runtime/random.js';
import { Registry } from '../../src/registry/registry.js';

const MODELS: Record<string, { aggregator: Record<string, unknown>; classifier: string }> = {
  'mean-pool-proj': { aggregator: { name: 'mean-pool', projectDim: 512 }, classifier: 'linear' },
  'dmin-cka': { aggregator: { name: 'dmin', dropout: 0 }, classifier: 'cka' },
  dsmil: { aggregator: { name: 'dsmil' }, classifier: 'linear' },
  abmil: { aggregator: { name: 'abmil' }, classifier: 'linear' },
};

await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
const registry = new Registry(builtinManifest());
const steps = Number(process.env.HOTSPOTS_STEPS ?? 9);
const out: Record<string, { tensors: number; parameters: number; unfused: number[]; fused: number[] }> = {};
for (const [name, spec] of Object.entries(MODELS)) {
  const aggregator = await registry.resolve('aggregator', spec.aggregator, { key: 'model.aggregator' });
  const classifier = await registry.resolve('classifier', { name: spec.classifier }, { key: 'model.classifier' });
  const loss = { ...(await registry.resolve('loss', { name: 'cross-entropy' }, { key: 'model.losses.bag' })), weight: 1 };
  const model = new MilModel(registry, { aggregator, classifier, losses: { bag: loss } as never }, { inputDim: 1024, numClasses: 2 }, new Rng(`optim/${name}`), silentLogger);
  const named = model.namedTrainable();
  const grads = named.map(([, v], i) => tf.randomNormal(v.shape, 0, 1e-2, 'float32', i));
  const optimizers = { unfused: createOptimizer(OptimizerSection.parse({ name: 'adam' }), named), fused: createOptimizer(OptimizerSection.parse({ name: 'adam', fused: true }), named) };
  const times = { unfused: [] as number[], fused: [] as number[] };
  for (let i = 0; i <= steps; i += 1) {
    for (const kind of (i % 2 ? ['fused', 'unfused'] : ['unfused', 'fused']) as Array<'fused' | 'unfused'>) {
      const start = performance.now();
      optimizers[kind].step(grads, 1e-4);
      named[0]?.[1].dataSync(); // wait for the update
      if (i > 0) times[kind].push(Number((performance.now() - start).toFixed(2)));
    }
  }
  out[name] = { tensors: named.length, parameters: named.reduce((s, [, v]) => s + v.size, 0), ...times };
  Object.values(optimizers).forEach((o) => o.dispose());
  tf.dispose(grads);
  model.dispose();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
