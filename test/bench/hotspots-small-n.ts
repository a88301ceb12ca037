// The zoo bench's training step (test/bench/shared.ts trainStep: forward, weighted losses, gradients, tf.train.adam)
// at a small N, taken apart: kernel calls and kernel time per kernel name from one tf.profile'd step, the step's wall
// and process CPU time, and how much of the wall time is outside the kernels (tfjs dispatch, tape, JS). With
// SMALL_N_AB=1 the step is also timed A/B inside this one process: rounds alternate the runtime's kernel overrides as
// installed (B) and the same install without the small-N overrides (A), order rotated, min and median reported, so
// load changes hit both sides alike. Then the step's two phases apart (CPU time, kernel calls): forward + losses +
// backward, tf.train.adam's update, and milkit's fused Adam (train.optimizer.fused) on the same gradients.
// Environment: SMALL_N_MODELS (default clam-sb,clam-mb,dsmil,transmil), SMALL_N (default 1000), SMALL_N_ROUNDS
// (default 9), SMALL_N_SEQUENCE=1 (every kernel call of the profiled step with shapes and time, on stderr).
import * as tf from '@tensorflow/tfjs';
import { builtinManifest } from '../../plugins/index.js';
import { makeSlots } from '../../src/core/engine/optim/base.js';
import { FusedAdamOptimizer } from '../../src/core/engine/optim/fused-adam.js';
import { OptimizerSection } from '../../src/core/engine/schema.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { Rng } from '../../src/core/runtime/random.js';
import { installSmallNKernels, restoreSmallNKernels } from '../../src/core/runtime/small-n-kernels.js';
import { Registry } from '../../src/registry/registry.js';
import { buildModel, CLASSES, D, kernelTotals, LABEL, median, MODELS, trainStep } from './shared.js';

const named = (grads: tf.NamedTensorMap): Array<{ name: string; tensor: tf.Tensor }> => Object.entries(grads).map(([name, tensor]) => ({ name, tensor }));

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
const n = Number(process.env['SMALL_N'] ?? 1000);
const rounds = Number(process.env['SMALL_N_ROUNDS'] ?? 9);
const names = (process.env['SMALL_N_MODELS'] ?? 'clam-sb,clam-mb,dsmil,transmil').split(',');
const ab = process.env['SMALL_N_AB'] === '1';
const rng = new Rng('hotspots-small-n');
const x = tf.tidy(() => tf.randomNormal([n, D], 0, 1, 'float32', 7) as tf.Tensor2D);

async function profileStep(step: () => void, label: string): Promise<string> {
  step(); // warm-up
  const t = timed(step);
  const info = await tf.profile(step);
  const totals = [...kernelTotals(info)].sort(([, a], [, b]) => b.ms - a.ms);
  const kernelMs = totals.reduce((s, [, k]) => s + k.ms, 0);
  if (process.env['SMALL_N_SEQUENCE'] === '1') {
    for (const k of info.kernels) process.stderr.write(`${label} ${k.name} ${JSON.stringify(k.inputShapes)} -> ${JSON.stringify(k.outputShapes)} ${typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs.toFixed(3) : '?'} ms\n`);
  }
  return [
    `${label}: ${info.kernels.length} kernel calls, kernel time ${kernelMs.toFixed(1)} ms; unprofiled step wall ${t.wall.toFixed(1)} ms, cpu ${t.cpu.toFixed(1)} ms`,
    `  ${totals.map(([name, k]) => `${name} ${k.ms.toFixed(2)}ms×${k.calls}`).join(', ')}`,
  ].join('\n');
}

for (const name of names) {
  const zoo = MODELS.find((m) => m.name === name);
  if (!zoo) throw new Error(`unknown zoo model "${name}"`);
  const model = await buildModel(registry, zoo);
  const optimizer = tf.train.adam(1e-4);
  const step = (): void => trainStep(model, optimizer, x, rng);
  const lines: string[] = [];
  if (ab) {
    restoreSmallNKernels();
    lines.push(await profileStep(step, `${name}@${n} A (without small-N kernels)`));
    installSmallNKernels();
  }
  lines.push(await profileStep(step, `${name}@${n}${ab ? ' B (with small-N kernels)' : ''}`));
  if (ab) {
    const times: Record<'A' | 'B', Array<{ wall: number; cpu: number }>> = { A: [], B: [] };
    for (let r = 0; r < rounds; r += 1) {
      for (const side of (r % 2 === 0 ? ['A', 'B'] : ['B', 'A']) as Array<'A' | 'B'>) {
        if (side === 'A') restoreSmallNKernels();
        else installSmallNKernels();
        step(); // one untimed step after each switch
        times[side].push(timed(step));
      }
    }
    installSmallNKernels();
    for (const side of ['A', 'B'] as const) {
      const wall = times[side].map((t) => t.wall);
      const cpu = times[side].map((t) => t.cpu);
      lines.push(`  ${side}: wall min ${Math.min(...wall).toFixed(2)} / median ${median(wall).toFixed(2)} ms; cpu min ${Math.min(...cpu).toFixed(2)} / median ${median(cpu).toFixed(2)} ms`);
    }
  }
  // The step split in its two phases (same process, alternating): forward + losses + backward, then tf.train.adam's
  // update; the bench's step uses tfjs' Adam (many small kernels per variable), not milkit's phaseOptimizer.
  const variables = model.trainableVariables();
  // A fresh Adam: tfjs' Adam keys its moments by the position of each gradient in the map it is given.
  const phaseOptimizer = tf.train.adam(1e-4);
  const lossOf = (): tf.Scalar => model.losses(model.forward({ slideId: 'bench', features: x, label: LABEL }, { training: true, rng: rng.fork('step') }), LABEL, CLASSES).total as tf.Scalar;
  const phases: Record<'gradients' | 'adam' | 'fused', number[]> = { gradients: [], adam: [], fused: [] };
  const section = OptimizerSection.parse({ name: 'adam' });
  const fused = new FusedAdamOptimizer(makeSlots(section, model.namedTrainable()), { betas: section.betas, eps: section.eps, decoupledWeightDecay: false });
  const kernelsOf = { gradients: 0, adam: 0 };
  for (let r = 0; r < rounds; r += 1) {
    let computed: { value: tf.Scalar; grads: tf.NamedTensorMap } | undefined;
    phases.gradients.push(timed(() => {
      computed = phaseOptimizer.computeGradients(lossOf, variables);
      computed.value.dataSync();
    }).cpu);
    phases.adam.push(timed(() => {
      phaseOptimizer.applyGradients(named(computed!.grads));
      variables[0]!.dataSync();
    }).cpu);
    // milkit's fused Adam (train.optimizer.fused) on the same gradients, for comparison with tf.train.adam.
    const ordered = named(computed!.grads);
    const byVariable = variables.map((v) => ordered.find((e) => e.name === v.name)?.tensor ?? tf.zerosLike(v));
    phases.fused.push(timed(() => {
      fused.step(byVariable, 1e-4);
      variables[0]!.dataSync();
    }).cpu);
    tf.dispose(byVariable.filter((t) => !ordered.some((e) => e.tensor === t)));
    tf.dispose(computed!.value);
    tf.dispose(Object.values(computed!.grads));
  }
  const g = await tf.profile(() => {
    const computed = phaseOptimizer.computeGradients(lossOf, variables);
    tf.dispose(computed.value);
    return Object.values(computed.grads) as tf.Tensor[];
  });
  kernelsOf.gradients = g.kernels.length;
  tf.dispose(g.result as unknown as tf.Tensor[]);
  const grads = phaseOptimizer.computeGradients(lossOf, variables);
  kernelsOf.adam = (await tf.profile(() => phaseOptimizer.applyGradients(named(grads.grads)))).kernels.length;
  tf.dispose(grads.value);
  tf.dispose(Object.values(grads.grads));
  lines.push(`  phases (cpu min / median ms, kernel calls): gradients ${Math.min(...phases.gradients).toFixed(1)} / ${median(phases.gradients).toFixed(1)} (${kernelsOf.gradients}); tf.train.adam ${Math.min(...phases.adam).toFixed(1)} / ${median(phases.adam).toFixed(1)} (${kernelsOf.adam}) over ${variables.length} variables; milkit fused Adam ${Math.min(...phases.fused).toFixed(1)} / ${median(phases.fused).toFixed(1)}`);
  phaseOptimizer.dispose();
  fused.dispose();
  process.stdout.write(`${lines.join('\n')}\n`);
  optimizer.dispose();
  model.dispose();
}
x.dispose();
