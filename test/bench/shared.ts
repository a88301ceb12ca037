// Helpers the benchmark modules share: a line-protocol client for the step processes of test/bench (the PyTorch
// reference scripts and the zoo bench's milkit side: one JSON request per line on stdin, one JSON reply per line on
// stdout, a hello first, `{torch: version}` from torch),
// the median the tables report, the MIL zoo's training configurations with their model builder and step, and
// the process's memory readings (high-water RSS, wasm heap).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import * as tf from '@tensorflow/tfjs';
import { MilModel } from '../../src/core/engine/model.js';
import { createOptimizer, type Optimizer } from '../../src/core/engine/optim/index.js';
import { OptimizerSection } from '../../src/core/engine/schema.js';
import { silentLogger } from '../../src/core/logger.js';
import { Rng } from '../../src/core/runtime/random.js';
import type { Registry } from '../../src/registry/registry.js';

// The benches import src/ directly. The plugins they build import `milkit` and `milkit/nn`, which resolve to the
// same sources only under the `milkit-source` condition; without it they reach the compiled dist/, a second and
// possibly stale copy of core whose kernels and registries are not the ones this process set up (a TransMIL step
// measured 4.9 s that way instead of 3.2 s). Refuse to measure that.
if (typeof import.meta.resolve === 'function' && import.meta.resolve('milkit/nn').includes('/dist/')) {
  throw new Error('run the benches with node --conditions=milkit-source (npm run bench does): without it the plugins import the compiled dist/ instead of src/');
}

export const D = 1024;
export const CLASSES = 2;
export const LABEL = 1;

/** A step process: `command args…`, its hello read by ready(), then one request and one reply at a time. */
export class StepProcess {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly pending: Array<{ resolve: (line: string) => void; reject: (error: Error) => void }> = [];
  private readonly early: string[] = [];
  /** The parsed hello line (after ready()). */
  hello: Record<string, unknown> = {};

  constructor(command: string, args: readonly string[], label: string) {
    this.child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (chunk: Buffer) => process.stderr.write(`[${label}] ${chunk.toString()}`));
    this.lines = createInterface({ input: this.child.stdout });
    // A line that arrives before anyone waits for it (the hello of a second process started alongside) is kept.
    this.lines.on('line', (line) => {
      const waiter = this.pending.shift();
      if (waiter) waiter.resolve(line);
      else this.early.push(line);
    });
    this.child.once('exit', (code) => this.pending.splice(0).forEach(({ reject }) => reject(new Error(`${label} process exited with ${code}`))));
  }

  private next(): Promise<string> {
    const line = this.early.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }

  /** Waits for the process's hello and keeps it. */
  async ready(): Promise<void> {
    this.hello = JSON.parse(await this.next()) as Record<string, unknown>;
  }

  /** Sends one request and returns the parsed reply. */
  async request<T>(message: Readonly<Record<string, unknown>>): Promise<T> {
    const reply = this.next();
    this.child.stdin.write(`${JSON.stringify(message)}\n`);
    return JSON.parse(await reply) as T;
  }

  /** The process's id, for reading its CPU time (cpuSecondsOf). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  close(): void {
    this.child.stdin.end();
    this.lines.close();
  }

  /** Closes stdin and waits until the process has exited (its CPU time is then in this process's children's). */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.close();
    await exited;
  }
}

/** A PyTorch reference script of test/bench run by `python` (its hello carries the torch version). */
export class TorchReference extends StepProcess {
  constructor(python: string, script: string, args: readonly string[] = []) {
    super(python, [script, ...args], 'torch');
  }

  get version(): string {
    return String(this.hello['torch'] ?? '');
  }
}

/** Kernel time (ms) and call count per kernel name, from one `tf.profile` result. */
export function kernelTotals(info: Awaited<ReturnType<typeof tf.profile>>): Map<string, { ms: number; calls: number }> {
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const kernel of info.kernels) {
    const entry = byKernel.get(kernel.name) ?? { ms: 0, calls: 0 };
    entry.ms += typeof kernel.kernelTimeMs === 'number' ? kernel.kernelTimeMs : 0;
    entry.calls += 1;
    byKernel.set(kernel.name, entry);
  }
  return byKernel;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

export interface ZooModel {
  readonly name: string;
  readonly classifier?: Record<string, unknown>;
  /** Options that make the milkit network the reference network (dropout off on both sides). */
  readonly aggregator: Record<string, unknown>;
  readonly losses: Record<string, { name: string; weight: number; [k: string]: unknown }>;
}

export const MODELS: readonly ZooModel[] = [
  { name: 'abmil', aggregator: { dropout: 0 }, losses: { bag: { name: 'cross-entropy', weight: 1 } } },
  { name: 'clam-sb', aggregator: { dropout: 0, attnDropout: 0 }, losses: { bag: { name: 'cross-entropy', weight: 0.7 }, instance: { name: 'clam-instance', weight: 0.3 } } },
  { name: 'clam-mb', aggregator: { dropout: 0, attnDropout: 0 }, losses: { bag: { name: 'cross-entropy', weight: 0.7 }, instance: { name: 'clam-instance', weight: 0.3 } } },
  { name: 'dsmil', aggregator: {}, losses: { bag: { name: 'binary-cross-entropy', weight: 0.5 }, max: { name: 'dsmil-max-instance', weight: 0.5 } } },
  { name: 'dtfd-mil', aggregator: {}, losses: { bag: { name: 'cross-entropy', weight: 1 }, tier1: { name: 'dtfd-tier1', weight: 1 } } },
  { name: 'mean-pool', aggregator: { projectDim: 512, dropout: 0 }, losses: { bag: { name: 'cross-entropy', weight: 1 } } },
  { name: 'max-pool', aggregator: { projectDim: 512, dropout: 0 }, losses: { bag: { name: 'cross-entropy', weight: 1 } } },
  {
    name: 'dmin', aggregator: { dropout: 0 }, classifier: { name: 'cka' },
    losses: { ce: { name: 'cross-entropy', weight: 0.7 }, clu: { name: 'clam-instance', weight: 0.3 }, mse: { name: 'embedding-mse', weight: 0.5 }, kl: { name: 'logit-kl', weight: 0.5 }, rate: { name: 'keep-rate', weight: 2 } },
  },
  // Last, as the heaviest. Cells whose budget estimate exceeds the wasm limit are not run (a wasm abort would end
  // the process): the chunked layers free as they go, and about 47 KB of wasm heap per instance remain at 50k
  // (TransMIL's declared floor, docs/runtime.md#memory-budget).
  { name: 'transmil', aggregator: { attnDropout: 0 }, losses: { bag: { name: 'cross-entropy', weight: 1 } } },
];

export async function buildModel(registry: Registry, zoo: ZooModel): Promise<MilModel> {
  const aggregator = await registry.resolve('aggregator', { name: zoo.name, ...zoo.aggregator }, { key: 'model.aggregator' });
  const classifier = await registry.resolve('classifier', zoo.classifier ?? { name: 'linear' }, { key: 'model.classifier' });
  const losses: Record<string, Awaited<ReturnType<Registry['resolve']>> & { weight: number }> = {};
  for (const [slot, { weight, ...ref }] of Object.entries(zoo.losses)) losses[slot] = { ...(await registry.resolve('loss', ref, { key: `model.losses.${slot}` })), weight };
  return new MilModel(registry, { aggregator, classifier, losses: losses as never }, { inputDim: D, numClasses: CLASSES }, new Rng(`bench/${zoo.name}`), silentLogger);
}

/** Forward, weighted losses, gradients and an Adam step; the loss read back is the one host sync. */
export function trainStep(model: MilModel, optimizer: tf.Optimizer, x: tf.Tensor2D, rng: Rng): void {
  const loss = optimizer.minimize(() => model.losses(model.forward({ slideId: 'bench', features: x, label: LABEL }, { training: true, rng: rng.fork('step') }), LABEL, CLASSES).total, true, model.trainableVariables());
  loss?.dataSync();
  loss?.dispose();
}

/** High-water RSS of this process since the last reset (Linux; 0 elsewhere). */
export function resetPeakRss(): void {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // not Linux: the column reads the process-lifetime peak
  }
}
/**
 * CPU seconds (user + system) of this process and of its children that have exited and been waited for (Linux /proc;
 * 0 elsewhere): what the bench itself and its finished reference processes took from the machine.
 */
export function ownCpuSeconds(): number {
  try {
    // Fields after the parenthesised command name: utime, stime, cutime, cstime are the 14th–17th of the line.
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}
/** CPU seconds the whole machine has spent busy (not idle, not waiting on I/O) since boot, summed over cores. */
export function machineBusySeconds(): number {
  try {
    const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}
/** USER_HZ: the unit of /proc's CPU times, 100 on every Linux build that matters here (getconf CLK_TCK). */
const CLOCK_TICKS = 100;

export function peakRss(): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
/**
 * The training engine's optimizer over the model's trainable variables: train.optimizer's defaults (Adam, weight decay
 * 1e-5, fused) with `overrides` (the zoo bench sets weight decay 0, as its torch side's `torch.optim.Adam(lr=1e-4)`).
 */
export function engineOptimizer(model: MilModel, overrides: Record<string, unknown> = {}): Optimizer {
  return createOptimizer(OptimizerSection.parse(overrides), model.namedTrainable());
}

/** One step as the trainer takes it: gradients of the weighted losses, the loss read back, then the optimizer's update. */
export function engineStep(model: MilModel, optimizer: Optimizer, x: tf.Tensor2D, rng: Rng, lr = 1e-4): void {
  const variables = model.namedTrainable().map(([, variable]) => variable);
  const { value, grads } = tf.variableGrads(() => model.losses(model.forward({ slideId: 'bench', features: x, label: LABEL }, { training: true, rng: rng.fork('step') }), LABEL, CLASSES).total, variables);
  value.dataSync();
  value.dispose();
  // A parameter the loss did not reach this step (another class's instance classifier) gets a zero gradient, as in the trainer.
  const ordered = variables.map((variable) => grads[variable.name] ?? tf.zerosLike(variable));
  optimizer.step(ordered, lr);
  tf.dispose(ordered);
}

export function wasmHeapBytes(): number {
  return (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.length ?? 0;
}
