// Flat memory at N = 50,000: per aggregator of the MIL zoo (the zoo bench's training configurations, test/bench/shared.ts),
// training steps on one random bag [50,000, 1,024] in a fresh process each (test/bench/flat-memory-steps.ts; the wasm
// heap never shrinks, so one aggregator's high water must not be charged to the next), recording after every step the
// wasm heap, tf.memory()'s tensor count and bytes, and the RSS. 10 steps, 30 for dmin and transmil.
//
// Verdict, per aggregator, from step 2 on (step 1 creates Adam's moments and warms the allocator):
//   flat        the wasm heap, the tensor count and the tensor bytes after the last step equal those after step 2.
//               The heap grows in steps of up to 96 MB (Emscripten grows to min(1.2 × size, request + 96 MB)), so
//               "equal" means no growth event at all; a growth of the allocator's page granularity would show too.
//   levels off  the tensors are flat, the heap grew after step 2 but not during the last half of the steps.
//   growing     anything else (the growth and the last step that grew are given).
// RSS is reported, not judged: it also moves with first touches of already-grown wasm pages and with V8's own heap.
//
// Environment: FLAT_MEMORY_N (default 50,000), FLAT_MEMORY_ONLY (comma-separated aggregators, run in that order), FLAT_MEMORY_STEPS
// (cap on steps per aggregator), FLAT_MEMORY_UNTIL (ISO time: workers still running then are stopped and their partial
// curves reported as cut). `--quick`: N = 2,000, 3 steps each.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { formatBytes } from '../../src/core/engine/memory-budget.js';
import type { StepReading } from './flat-memory-steps.js';
import type { BenchContext, BenchResult } from './run.js';
import { MODELS } from './shared.js';

const LONG_RUNS = new Set(['dmin', 'transmil']);

/**
 * Why DMIN's heap grew (2.09 → 2.38 GB over 18 steps at 50,000 instances, tensor count flat) and what fixed it, measured
 * with test/bench/heap-trace.ts at N = 8,000 (byte-level, minutes instead of hours); kept with the table it explains.
 */
const DMIN_NOTE = [
  "**DMIN's heap growth: cause and fix.** `test/bench/heap-trace.ts` wraps the wasm backend's malloc/free (every tensor buffer) and reports the highest address any block reached, " +
    'byte-exact where the heap itself only grows in steps of up to 96 MB. DMIN at N = 8,000: from step 2 on every step asks for the same buffers in the same order (1,326 allocations, 480.5 MB with the engine\'s Adam) — ' +
    "the gate's kept count changes values, never shapes (the student pools with the 0/1 mask over all N rows) — and without the optimizer update (`TRACE_NO_UPDATE=1`) the high water is 340.4 MB at every step: the step itself is flat. " +
    "The growth came from the update: replacing each parameter's and moment's buffer with the new value's (`variable.assign`) puts the blocks that outlive the step wherever the allocator finds room, " +
    "often high in the heap the step's activations had just filled, and the next step's activations must go around them. " +
    "With tfjs's own Adam (`TRACE_OPTIMIZER=tfjs`, which swaps buffers as the engine's optimizers did) the long-lived blocks reach 167 MB into the heap and the high water climbs 338.9 → 370.2 (step 3) → 378.0 MB (step 8), the heap 380 → 456 MB at step 8; " +
    "the engine's Adam before the fix (commit 9078a59): long-lived blocks up to 362 MB, high water 346.7 → 362.3 (step 2) → 369.9 MB (step 7). " +
    "The engine's Adam, AdamW, RAdam, fused Adam and SGD now copy the new values into the variable's own buffer on wasm (`src/core/nn/in-place.ts`; kernels' caches of a weight are dropped, a buffer shared with a snapshot is never written): " +
    "the long-lived blocks stay below 41.3 MB and the high water stays at 346.7 MB over 16 steps. At N = 50,000 the table's DMIN row is the result.",
].join('');

export interface Curve {
  readonly name: string;
  readonly planned: number;
  readonly readings: StepReading[];
  refused?: string;
  failed?: string;
  cut?: boolean;
}

function runWorker(ctx: BenchContext, name: string, steps: number, n: number, until: number | undefined): Promise<Curve> {
  const curve: Curve = { name, planned: steps, readings: [] };
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--conditions=milkit-source', '--import', 'tsx', join(ctx.root, 'test', 'bench', 'flat-memory-steps.ts'), name, String(steps), String(n)], {
      cwd: ctx.root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2000);
    });
    const timer = until === undefined ? undefined : setTimeout(() => {
      curve.cut = true;
      child.kill('SIGTERM');
    }, Math.max(0, until - Date.now()));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const message = JSON.parse(line) as StepReading | { refused: string };
      if ('refused' in message) {
        curve.refused = message.refused;
        return;
      }
      curve.readings.push(message);
      ctx.log(`${name} step ${message.step}/${steps}: heap ${formatBytes(message.wasmHeap)}, ${message.numTensors} tensors (${formatBytes(message.numBytes)}), RSS ${formatBytes(message.rss)}, ${(message.ms / 1000).toFixed(1)} s`);
    });
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (curve.readings.length >= steps) curve.cut = false; // the deadline fell between the last step and the exit
      if (code !== 0 && !curve.cut) curve.failed = `exit ${code ?? signal}: ${stderr.trim().split('\n').slice(-2).join(' ').slice(0, 160)}`;
      resolve(curve);
    });
  });
}

const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MB`;
const signed = (bytes: number): string => `${bytes >= 0 ? '+' : '−'}${mb(Math.abs(bytes))}`;

/** The verdict of a curve (see the module comment). */
export function verdict(readings: readonly StepReading[]): string {
  if (readings.length < 3) return 'too few steps to judge';
  const base = readings[1]!;
  const last = readings[readings.length - 1]!;
  const tensorsFlat = readings.slice(1).every((r) => r.numTensors === base.numTensors && r.numBytes === base.numBytes);
  if (!tensorsFlat) return `**growing**: tensors ${base.numTensors} → ${last.numTensors}, bytes ${signed(last.numBytes - base.numBytes)}`;
  const growth = last.wasmHeap - base.wasmHeap;
  if (growth === 0) return '**flat**';
  let lastGrowth = 0;
  for (let i = 2; i < readings.length; i += 1) if (readings[i]!.wasmHeap > readings[i - 1]!.wasmHeap) lastGrowth = readings[i]!.step;
  const half = readings[Math.floor(readings.length / 2)]!.step;
  return lastGrowth <= half ? `**levels off**: heap ${signed(growth)} after step 2, none after step ${lastGrowth}` : `**growing**: heap ${signed(growth)} after step 2, last at step ${lastGrowth}`;
}

/** The heap after each step, in MB, run-length compressed ("2090 ×5, 2186 ×3"). */
function heapCurve(readings: readonly StepReading[]): string {
  const runs: Array<{ value: number; count: number }> = [];
  for (const r of readings) {
    const value = Math.round(r.wasmHeap / 2 ** 20);
    const previous = runs[runs.length - 1];
    if (previous && previous.value === value) previous.count += 1;
    else runs.push({ value, count: 1 });
  }
  return runs.map(({ value, count }) => (count > 1 ? `${value} ×${count}` : `${value}`)).join(', ');
}

/** The table row of one aggregator's curve. */
export function rowOf(c: Curve): string {
  const readings = c.readings;
  const first = readings[0];
  const second = readings[1];
  const last = readings[readings.length - 1];
  const done = `${readings.length}/${c.planned}${c.cut ? ' (cut)' : ''}`;
  if (c.refused) return `| ${c.name} | 0/${c.planned} | refused by the memory budget: ${c.refused.replace(/\|/g, '/').slice(0, 220)} | | | | |`;
  if (!first || !last) return `| ${c.name} | ${done} | ${c.failed ?? 'not run (out of time)'} | | | | |`;
  const median = [...readings.map((r) => r.ms)].sort((a, b) => a - b)[Math.floor(readings.length / 2)]!;
  return (
    `| ${c.name} | ${done} | ${c.failed ? `failed after ${readings.length} steps: ${c.failed} — ` : ''}${verdict(readings)} | ${heapCurve(readings)} | ` +
    `${first.numTensors} → ${last.numTensors} (${mb(first.numBytes)} → ${mb(last.numBytes)}) | ` +
    `${mb(first.rss)} → ${second ? `${mb(second.rss)} → ` : ''}${mb(last.rss)} | ${(median / 1000).toFixed(1)} s |`
  );
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const n = ctx.quick ? 2000 : Number(process.env['FLAT_MEMORY_N'] ?? 50_000);
  const only = process.env['FLAT_MEMORY_ONLY']?.split(',').map((s) => s.trim()).filter(Boolean);
  const cap = process.env['FLAT_MEMORY_STEPS'] ? Number(process.env['FLAT_MEMORY_STEPS']) : undefined;
  const until = process.env['FLAT_MEMORY_UNTIL'] ? Date.parse(process.env['FLAT_MEMORY_UNTIL']) : undefined;
  const curves: Curve[] = [];
  const chosen = only ? only.map((name) => MODELS.find((m) => m.name === name)).filter((m) => m !== undefined) : MODELS;
  for (const zoo of chosen) {
    const planned = ctx.quick ? 3 : LONG_RUNS.has(zoo.name) ? 30 : 10;
    const steps = cap === undefined ? planned : Math.min(planned, cap);
    if (until !== undefined && Date.now() >= until) {
      curves.push({ name: zoo.name, planned: steps, readings: [], cut: true });
      continue;
    }
    ctx.log(`${zoo.name}: ${steps} steps at N = ${n} in a fresh process`);
    curves.push(await runWorker(ctx, zoo.name, steps, n, until));
  }

  const rows = curves.map(rowOf);
  const markdown = [
    `## Flat memory at N = ${n.toLocaleString('en-US')}: wasm heap, tensors and RSS over training steps`,
    '',
    `Per aggregator (the zoo bench's training configurations, dropout off), training steps as the trainer takes them (forward, weighted losses, backward, the engine's Adam with \`train.optimizer\` defaults, lr 1e-4) on one random bag [${n.toLocaleString('en-US')}, 1,024] ` +
      'in a fresh process each (`test/bench/flat-memory-steps.ts`; the wasm heap never shrinks), after the memory budget\'s check (docs/runtime.md#memory-budget). ' +
      'Read after every step: the wasm heap (module memory size), `tf.memory()` tensors and bytes, RSS. ' +
      '**Flat**: heap, tensor count and tensor bytes after the last step equal those after step 2 (step 1 creates Adam\'s moments); the heap grows in steps of up to 96 MB, so any growth event shows. ' +
      '**Levels off**: tensors flat, the heap grew after step 2 but not in the last half of the steps. RSS is reported, not judged (first touches of grown wasm pages, V8\'s heap). ' +
      'Steps run under `nice -n 10` on a shared machine, so the step times say nothing about speed.',
    '',
    '| aggregator | steps | verdict | wasm heap after each step (MB) | tensors (bytes), step 1 → last | RSS, step 1 → 2 → last | median step |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
    DMIN_NOTE,
  ].join('\n');
  return { markdown };
}
