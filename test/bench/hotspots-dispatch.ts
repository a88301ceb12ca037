// Where a small-N training step's dispatches go, and in-process A/B of optimizer updates. For each model of
// test/bench/hotspots-step.ts at one N: kernel calls per phase (forward + losses + gradients; the optimizer update
// per variant), then rounds that alternate the variants (order rotated) timing (a) the gradient phase and (b) each
// optimizer variant on the same gradients, reporting wall and process CPU time (min and median over rounds). On a
// loaded machine the min is the closest to an idle time; A/B inside one process sees the same load on both sides.
// Environment: HOTSPOTS_MODELS, HOTSPOTS_N (default 1000), HOTSPOTS_ROUNDS (default 15), HOTSPOTS_SEQUENCE=1 (every
// kernel call of the gradient phase with its shapes, on stderr).
import * as tf from '@tensorflow/tfjs';
import { builtinManifest } from '../../plugins/index.js';
import { AdamOptimizer } from '../../src/core/engine/optim/adam.js';
import { makeSlots, type Optimizer } from '../../src/core/engine/optim/base.js';
import { FusedAdamOptimizer } from '../../src/core/engine/optim/fused-adam.js';
import { OptimizerSection } from '../../src/core/engine/schema.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { Rng } from '../../src/core/runtime/random.js';
import { Registry } from '../../src/registry/registry.js';
import { buildHotspotModel, HOTSPOT_MODELS, CLASSES, LABEL } from './hotspots-models.js';
import { median } from './shared.js';

const D = 1024;

function kernelCounts(kernels: ReadonlyArray<{ name: string }>): string {
  const counts = new Map<string, number>();
  for (const k of kernels) counts.set(k.name, (counts.get(k.name) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([name, n]) => `${name}×${n}`).join(' ');
}

function timed(fn: () => void): { wall: number; cpu: number } {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  fn();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { wall, cpu: (cpu.user + cpu.system) / 1000 };
}

await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
const registry = new Registry(builtinManifest());
const n = Number(process.env.HOTSPOTS_N ?? 1000);
const rounds = Number(process.env.HOTSPOTS_ROUNDS ?? 15);
const names = (process.env.HOTSPOTS_MODELS ?? Object.keys(HOTSPOT_MODELS).join(',')).split(',');
const rng = new Rng('hotspots-dispatch');
const x = tf.tidy(() => tf.randomNormal([n, D], 0, 1, 'float32', 7) as tf.Tensor2D);
for (const name of names) {
  const model = await buildHotspotModel(registry, name, D);
  const named = model.namedTrainable();
  const params = named.map(([, v]) => v);
  const section = OptimizerSection.parse({ name: 'adam' });
  const settings = { betas: section.betas, eps: section.eps, decoupledWeightDecay: false };
  const slots = makeSlots(section, named);
  const variants: Record<string, Optimizer> = {
    unfused: new AdamOptimizer(slots, settings),
    'fused-host': new FusedAdamOptimizer(slots, settings),
  };
  const gradients = (): tf.Tensor[] => {
    const { value, grads } = tf.variableGrads(() => model.losses(model.forward({ slideId: 'bench', features: x, label: LABEL }, { training: true, rng: rng.fork('step') }), LABEL, CLASSES).total, params);
    value.dataSync();
    value.dispose();
    return params.map((p) => grads[p.name] ?? tf.zerosLike(p));
  };
  let grads = gradients(); // warm-up
  const gradProfile = await tf.profile(() => tf.dispose(gradients()));
  if (process.env.HOTSPOTS_SEQUENCE === '1') {
    for (const k of gradProfile.kernels) process.stderr.write(`${name} ${k.name} ${JSON.stringify(k.inputShapes)} -> ${JSON.stringify(k.outputShapes)}\n`);
  }
  const lines = [`${name}@${n}: ${params.length} tensors, ${params.reduce((s, p) => s + p.size, 0)} values; gradients ${gradProfile.kernels.length} kernels (${kernelCounts(gradProfile.kernels)})`];
  for (const [label, optimizer] of Object.entries(variants)) {
    optimizer.step(grads, 1e-4); // warm-up
    const info = await tf.profile(() => optimizer.step(grads, 1e-4));
    lines.push(`  ${label}: ${info.kernels.length} kernels (${kernelCounts(info.kernels)}), ${info.newTensors} new tensors`);
  }
  const times: Record<string, Array<{ wall: number; cpu: number }>> = { gradients: [] };
  for (let r = 0; r < rounds; r += 1) {
    tf.dispose(grads);
    times.gradients!.push(timed(() => { grads = gradients(); }));
    const order = Object.keys(variants);
    for (let i = 0; i < order.length; i += 1) {
      const label = order[(i + r) % order.length] as string;
      (times[label] ??= []).push(timed(() => {
        variants[label]!.step(grads, 1e-4);
        params[0]!.dataSync(); // the update has finished
      }));
    }
  }
  for (const [label, list] of Object.entries(times)) {
    const wall = list.map((t) => t.wall);
    const cpu = list.map((t) => t.cpu);
    lines.push(`  ${label}: wall min ${Math.min(...wall).toFixed(2)} / median ${median(wall).toFixed(2)} ms; cpu min ${Math.min(...cpu).toFixed(2)} / median ${median(cpu).toFixed(2)} ms`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  tf.dispose(grads);
  Object.values(variants).forEach((o) => o.dispose());
  model.dispose();
}
x.dispose();
