// One process's share of the hot-spot micro-bench (test/bench/hotspots-interleave.ts): times milkit train steps
// (forward, weighted losses, gradients, milkit's Adam) of mean-pool, max-pool (raw and with a 512-wide
// projection), dmin+cka and dsmil on one bag
// [N, 1024] at N = 1,000 and 8,000, and prints one JSON line {"<model>@<N>": [ms, ...]} on stdout. It uses
// only APIs that exist before and after the hot-spot changes, so the driver can run it from both trees.
// Environment: HOTSPOTS_STEPS (timed steps per cell, default 3), HOTSPOTS_SIZES ("1000,8000"),
// HOTSPOTS_MODELS (comma list), HOTSPOTS_FUSED=1 (fused Adam; only where the option exists),
// HOTSPOTS_PROFILE=<model>@<N> (print a per-kernel profile of one step instead of timings).
import 'reflect-metadata'; // plugins import the registry's public API, which loads tsyringe
import * as tf from '@tensorflow/tfjs';
import { builtinManifest } from '../../plugins/index.js';
import { MilModel } from '../../src/core/engine/model.js';
import { createOptimizer, type Optimizer } from '../../src/core/engine/optim/index.js';
import { OptimizerSection } from '../../src/core/engine/schema.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { Rng } from '../../src/core/runtime/random.js';
import { Registry } from '../../src/registry/registry.js';

const D = 1024;
const CLASSES = 2;
const LABEL = 1;

interface BenchModel {
  readonly aggregator: Record<string, unknown>;
  readonly classifier: string;
  readonly losses: Record<string, { name: string; weight: number; [k: string]: unknown }>;
}

const MODELS: Record<string, BenchModel> = {
  'mean-pool': { aggregator: { name: 'mean-pool' }, classifier: 'linear', losses: { bag: { name: 'cross-entropy', weight: 1 } } },
  'max-pool': { aggregator: { name: 'max-pool' }, classifier: 'linear', losses: { bag: { name: 'cross-entropy', weight: 1 } } },
  // With a ReLU projection (E = 512) the gradient flows back through the pooling.
  'mean-pool-proj': { aggregator: { name: 'mean-pool', projectDim: 512 }, classifier: 'linear', losses: { bag: { name: 'cross-entropy', weight: 1 } } },
  'max-pool-proj': { aggregator: { name: 'max-pool', projectDim: 512 }, classifier: 'linear', losses: { bag: { name: 'cross-entropy', weight: 1 } } },
  // HDMIL stage 1 as hdmil.bench.ts trains it, dropout off so both trees draw the same masks (none).
  'dmin-cka': {
    aggregator: { name: 'dmin', dropout: 0 },
    classifier: 'cka',
    losses: {
      ce: { name: 'cross-entropy', weight: 0.7 },
      clu: { name: 'clam-instance', weight: 0.3 },
      mse: { name: 'embedding-mse', weight: 0.5 },
      kl: { name: 'logit-kl', weight: 0.5 },
      rate: { name: 'keep-rate', target: 0.6, weight: 2 },
    },
  },
  dsmil: { aggregator: { name: 'dsmil' }, classifier: 'linear', losses: { bag: { name: 'binary-cross-entropy', weight: 0.5 }, max: { name: 'dsmil-max-instance', weight: 0.5 } } },
};

async function buildModel(registry: Registry, name: string, spec: BenchModel): Promise<MilModel> {
  const aggregator = await registry.resolve('aggregator', spec.aggregator, { key: 'model.aggregator' });
  const classifier = await registry.resolve('classifier', { name: spec.classifier }, { key: 'model.classifier' });
  const losses: Record<string, Awaited<ReturnType<Registry['resolve']>> & { weight: number }> = {};
  for (const [slot, { weight, ...ref }] of Object.entries(spec.losses)) losses[slot] = { ...(await registry.resolve('loss', ref, { key: `model.losses.${slot}` })), weight };
  return new MilModel(registry, { aggregator, classifier, losses: losses as never }, { inputDim: D, numClasses: CLASSES }, new Rng(`hotspots/${name}`), silentLogger);
}

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
  await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
  const registry = new Registry(builtinManifest());
  const steps = Number(process.env.HOTSPOTS_STEPS ?? 3);
  const sizes = (process.env.HOTSPOTS_SIZES ?? '1000,8000').split(',').map(Number);
  const names = (process.env.HOTSPOTS_MODELS ?? Object.keys(MODELS).join(',')).split(',');
  const profile = process.env.HOTSPOTS_PROFILE;
  const section = OptimizerSection.parse({ name: 'adam', ...(process.env.HOTSPOTS_FUSED === '1' ? { fused: true } : {}) });
  const rng = new Rng('hotspots');
  const result: Record<string, number[]> = {};
  for (const name of names) {
    const spec = MODELS[name];
    if (spec === undefined) throw new Error(`unknown bench model "${name}"`);
    const model = await buildModel(registry, name, spec);
    const named = model.namedTrainable();
    const params = named.map(([, v]) => v);
    const optimizer = createOptimizer(section, named);
    for (const n of sizes) {
      const x = tf.tidy(() => tf.randomNormal([n, D], 0, 1, 'float32', 7) as tf.Tensor2D);
      trainStep(model, optimizer, params, x, rng); // warm-up: kernel set-up, first allocations
      if (profile === `${name}@${n}`) {
        const info = await tf.profile(() => trainStep(model, optimizer, params, x, rng));
        const byKernel = new Map<string, { ms: number; calls: number }>();
        for (const kernel of info.kernels) {
          const entry = byKernel.get(kernel.name) ?? { ms: 0, calls: 0 };
          entry.ms += typeof kernel.kernelTimeMs === 'number' ? kernel.kernelTimeMs : 0;
          entry.calls += 1;
          byKernel.set(kernel.name, entry);
        }
        const total = [...byKernel.values()].reduce((s, k) => s + k.ms, 0);
        const top = [...byKernel].sort(([, a], [, b]) => b.ms - a.ms).slice(0, 10);
        process.stdout.write(`${JSON.stringify({ profile: profile, totalMs: Number(total.toFixed(1)), calls: info.kernels.length, top: top.map(([k, v]) => `${k} ${v.ms.toFixed(1)} ms ×${v.calls}`) })}\n`);
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
