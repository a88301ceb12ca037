// `node --conditions=milkit-source --import tsx test/bench/transmil-step.ts N [N ...]`: TransMIL training-step time
// (forward, CE, gradients, milkit's Adam; defaults with attention dropout off, as the zoo bench) on tfjs-wasm, hand-run.
//   PROFILE=1       one profiled step per N (and side) after a warm-up: per-kernel time and calls, total kernel calls,
//                   CPU ms; SHAPES=k adds the k costliest (kernel, shapes) pairs.
//   BASE=<dir>      A/B in this one process: <dir> is another checkout of the repository (e.g. `git archive` of the
//                   commit before a change, with node_modules linked to this one's), whose model runs interleaved
//                   with this tree's on the same bag: rounds alternate the order, medians over rounds and steps.
//   TORCH=1,2       also time the PyTorch reference (test/bench/torch_zoo_step.py) with those intra-op thread
//                   counts, interleaved in the same rounds (separate processes, requests one after another).
//   ROUNDS (3), STEPS (2 timed steps per cell and round), TRANSMIL (JSON of extra options).
// Times are wall ms; CPU s (the process's user+system, OpenBLAS threads included) is printed beside them, since on
// a shared machine the load inflates wall time far more than CPU time.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { silentLogger } from '../../src/core/logger.js';
import { kernelTotals } from './shared.js';

const D = 1024;
const here = dirname(fileURLToPath(import.meta.url));
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const rounds = Number(process.env['ROUNDS'] ?? 3);
const steps = Number(process.env['STEPS'] ?? 2);
const extra = JSON.parse(process.env['TRANSMIL'] ?? '{}') as Record<string, unknown>;

interface Side {
  readonly label: string;
  step(x: tf.Tensor2D): void;
  dispose(): void;
}

/** A model built from the repository rooted at `root` (its own registry, model, optimizer). */
async function milkitSide(label: string, root: string): Promise<Side> {
  const mod = async (path: string): Promise<Record<string, unknown>> => (await import(pathToFileURL(join(root, path)).href)) as Record<string, unknown>;
  const { builtinManifest } = (await mod('plugins/index.ts')) as { builtinManifest: () => unknown };
  const { MilModel } = (await mod('src/core/engine/model.ts')) as { MilModel: new (...args: unknown[]) => { namedTrainable(): Array<[string, tf.Variable]>; forward(bag: unknown, io: unknown): unknown; losses(out: unknown, label: number, classes: number): { total: tf.Scalar }; dispose(): void } };
  const { createOptimizer } = (await mod('src/core/engine/optim/index.ts')) as { createOptimizer: (section: unknown, named: Array<[string, tf.Variable]>) => { step(grads: tf.Tensor[], lr: number): void; dispose(): void } };
  const { OptimizerSection } = (await mod('src/core/engine/schema.ts')) as { OptimizerSection: { parse(v: unknown): unknown } };
  const { Rng } = (await mod('src/core/runtime/random.ts')) as { Rng: new (label: string) => { fork(label: string): unknown } };
  const { Registry } = (await mod('src/registry/registry.ts')) as { Registry: new (manifest: unknown) => { resolve(kind: string, ref: unknown, at: unknown): Promise<unknown> } };
  const registry = new Registry(builtinManifest());
  const aggregator = await registry.resolve('aggregator', { name: 'transmil', attnDropout: 0, ...extra }, { key: 'model.aggregator' });
  const classifier = await registry.resolve('classifier', { name: 'linear' }, { key: 'model.classifier' });
  const loss = (await registry.resolve('loss', { name: 'cross-entropy' }, { key: 'model.losses.bag' })) as object;
  const model = new MilModel(registry, { aggregator, classifier, losses: { bag: { ...loss, weight: 1 } } }, { inputDim: D, numClasses: 2 }, new Rng(`transmil-step/${label}`), silentLogger);
  const named = model.namedTrainable();
  const params = named.map(([, v]) => v);
  const optimizer = createOptimizer(OptimizerSection.parse({ name: 'adam' }), named);
  const rng = new Rng('transmil-step/io');
  return {
    label,
    step: (x) => {
      const { value, grads } = tf.variableGrads(() => model.losses(model.forward({ slideId: 'bench', features: x, label: 1 }, { training: true, rng: rng.fork('step') }), 1, 2).total, params);
      const ordered = params.map((p) => grads[p.name] ?? tf.zerosLike(p));
      optimizer.step(ordered, 1e-4);
      tf.dispose(ordered.filter((g, i) => g !== grads[params[i]!.name]));
      value.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
    },
    dispose: () => {
      optimizer.dispose();
      model.dispose();
    },
  };
}

/** One torch_zoo_step.py process; `time(n)` returns its step times (ms). */
async function torchSide(threads: number): Promise<{ label: string; time(n: number): Promise<number[]>; close(): void }> {
  const child: ChildProcessWithoutNullStreams = spawn('/usr/bin/python3', [join(here, 'torch_zoo_step.py'), String(threads)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => JSON.parse(((await lines.next()).value as string | undefined) ?? '{"error":"torch exited"}') as Record<string, unknown>;
  await next(); // {"ready": true, ...}
  return {
    label: `torch-t${threads}`,
    time: async (n) => {
      child.stdin.write(`${JSON.stringify({ model: 'transmil', n, warmup: 1, steps })}\n`);
      const reply = await next();
      if (!Array.isArray(reply['ms'])) throw new Error(`torch: ${JSON.stringify(reply)}`);
      return reply['ms'] as number[];
    },
    close: () => child.stdin.end(),
  };
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const cpuMs = (): number => {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1000;
};

await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
const current = await milkitSide('this tree', resolve(here, '../..'));
const base = process.env['BASE'] ? await milkitSide('base', resolve(process.env['BASE'])) : undefined;
const torches = await Promise.all((process.env['TORCH'] ?? '').split(',').filter(Boolean).map((t) => torchSide(Number(t))));

for (const n of sizes) {
  const x = tf.tidy(() => tf.randomNormal([n, D], 0, 1, 'float32', 7) as tf.Tensor2D);
  const sides = [current, ...(base ? [base] : [])];
  for (const side of sides) side.step(x); // warm-up
  if (process.env['PROFILE'] === '1') for (const side of sides) {
    const cpu = cpuMs();
    const start = performance.now();
    const info = await tf.profile(() => side.step(x));
    const byKernel = kernelTotals(info);
    console.log(`N=${n} ${side.label}, profiled step: ${(performance.now() - start).toFixed(0)} ms wall, ${(cpuMs() - cpu).toFixed(0)} ms CPU, ${info.kernels.length} kernel calls, peak ${(info.peakBytes / 2 ** 20).toFixed(0)} MB`);
    for (const [name, { ms, calls }] of [...byKernel].sort(([, a], [, b]) => b.ms - a.ms)) console.log(`  ${name.padEnd(28)} ${ms.toFixed(1).padStart(9)} ms  ×${calls}`);
    if (process.env['SHAPES']) {
      // The costliest (kernel, input shapes) pairs: which call sites the time goes to.
      const bySite = new Map<string, { ms: number; calls: number }>();
      for (const kernel of info.kernels) {
        const key = `${kernel.name} ${JSON.stringify(kernel.inputShapes)} → ${JSON.stringify(kernel.outputShapes)}`;
        const entry = bySite.get(key) ?? { ms: 0, calls: 0 };
        entry.ms += typeof kernel.kernelTimeMs === 'number' ? kernel.kernelTimeMs : 0;
        entry.calls += 1;
        bySite.set(key, entry);
      }
      for (const [key, { ms, calls }] of [...bySite].sort(([, a], [, b]) => b.ms - a.ms).slice(0, Number(process.env['SHAPES']))) console.log(`  ${ms.toFixed(1).padStart(9)} ms ×${calls}  ${key}`);
    }
  }
  if (process.env['PROFILE'] === '1') {
    x.dispose();
    continue;
  }
  const wall = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  const record = (label: string, ms: number, cpuUsed?: number): void => {
    wall.set(label, [...(wall.get(label) ?? []), ms]);
    if (cpuUsed !== undefined) cpu.set(label, [...(cpu.get(label) ?? []), cpuUsed]);
  };
  for (const t of torches) await t.time(Math.min(n, 1000)); // torch warm-up
  for (let round = 0; round < rounds; round += 1) {
    const cells: Array<() => Promise<void>> = [
      ...sides.map((side) => async () => {
        for (let s = 0; s < steps; s += 1) {
          const c = cpuMs();
          const start = performance.now();
          side.step(x);
          record(side.label, performance.now() - start, cpuMs() - c);
        }
      }),
      ...torches.map((t) => async () => {
        for (const ms of await t.time(n)) record(t.label, ms);
      }),
    ];
    if (round % 2 === 1) cells.reverse();
    for (const cell of cells) await cell();
  }
  const fastestTorch = torches.length ? Math.min(...torches.map((t) => median(wall.get(t.label) ?? [Infinity]))) : undefined;
  for (const [label, times] of wall) {
    const ratio = fastestTorch && !label.startsWith('torch') ? ` (${(median(times) / fastestTorch).toFixed(2)}× faster torch)` : '';
    const cpuPart = cpu.has(label) ? `, CPU median ${median(cpu.get(label)!).toFixed(0)} ms` : '';
    console.log(`N=${n} ${label}: wall median ${median(times).toFixed(0)} ms${ratio}${cpuPart}  [${times.map((t) => t.toFixed(0)).join(' ')}]`);
  }
  x.dispose();
}
for (const t of torches) t.close();
current.dispose();
base?.dispose();
