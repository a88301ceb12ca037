// Sweep throughput with 1 vs 2 local workers (goal: ≥ 1.8× on 2 cores). Each configuration runs the same
// real `milkit sweep` (long-lived worker processes that compose, train and evaluate one fold per job) into fresh
// state and output folders. Two workloads: a training-bound one (ABMIL, jobs of several seconds, the shape of a real
// sweep) and an overhead-bound one (tiny jobs of under a second). A control measures what this machine allows at
// all: the same training run alone vs two copies side by side, each on one core — no sweep involved.
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { BenchContext, BenchResult } from './run.js';
import { median } from './shared.js';

const GOAL = 1.8;

interface Workload {
  readonly name: string;
  readonly describe: string;
  /** Overrides shared by the sweep (with the swept axis) and the control run (with `single` instead). */
  readonly common: readonly string[];
  readonly swept: string;
  readonly single: string;
  readonly jobs: number;
}

function workloads(quick: boolean): { train: Workload; short: Workload } {
  const folds = quick ? 2 : 5;
  const train: Workload = {
    name: 'training-bound',
    describe: `ABMIL (D = 512, 60 slides of 200–800 instances, ${quick ? 2 : 6} epochs, no early stop), lr ∈ {1e-3, 2e-3} × ${folds} folds`,
    common: [
      'model/aggregator=abmil', 'data.dataset.featureDim=512', 'data.dataset.slides=60', 'data.dataset.instances=[200,800]',
      'data.dataset.thumbs=false', `train.epochs=${quick ? 2 : 6}`, 'train.earlyStopping.patience=100', `split.folds=${folds}`,
      'eval.metrics=[auc,accuracy]',
    ],
    swept: 'train.optimizer.lr=0.001,0.002',
    single: 'train.optimizer.lr=0.001',
    jobs: 2 * folds,
  };
  const short: Workload = {
    name: 'overhead-bound',
    describe: 'mean-pool and max-pool (D = 64, 40 slides of 50–200 instances, 4 epochs) × 4 folds',
    common: ['data.dataset.slides=40', 'data.dataset.instances=[50,200]', 'data.dataset.thumbs=false', 'train.epochs=4', 'split.folds=4', 'eval.metrics=[auc,accuracy]'],
    swept: 'model/aggregator=mean-pool,max-pool',
    single: 'model/aggregator=mean-pool',
    jobs: 8,
  };
  return { train, short };
}

async function timed(ctx: BenchContext, args: readonly string[], label: string): Promise<number> {
  const started = process.hrtime.bigint();
  const result = await execa(process.execPath, args, { cwd: ctx.root, reject: false, env: { ...process.env, FORCE_COLOR: '0' } });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.exitCode !== 0) throw new Error(`${label} failed (exit ${String(result.exitCode)}):\n${String(result.stderr).split('\n').slice(-10).join('\n')}`);
  ctx.log(`${label}: ${seconds.toFixed(1)} s`);
  return seconds;
}

function sweepArgs(ctx: BenchContext, work: Workload, workers: number, scratch: string, tag: string, extra: readonly string[] = []): string[] {
  return [
    join(ctx.root, 'bin', 'milkit.mjs'), 'sweep', 'experiments/quickstart.yaml', ...work.common, work.swept,
    `output.dir=${join(scratch, `runs-${tag}`)}`, '--workers', String(workers), '--dir', join(scratch, `state-${tag}`), ...extra,
  ];
}

/** One `milkit run` of one cell: one core (1 BLAS thread), GC on the main thread, as a sweep worker runs. */
function controlArgs(ctx: BenchContext, work: Workload, scratch: string, tag: string): string[] {
  return ['--single-threaded-gc', join(ctx.root, 'bin', 'milkit.mjs'), 'run', 'experiments/quickstart.yaml', ...work.common, work.single, 'runtime.blasThreads=1', `output.dir=${join(scratch, `control-${tag}`)}`];
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const rounds = ctx.quick ? 1 : 2;
  const { train, short } = workloads(ctx.quick);
  const scratch = mkdtempSync(join(tmpdir(), 'milkit-bench-sweep-'));
  const times: Record<string, number[]> = {};
  const record = (key: string, seconds: number): void => {
    (times[key] ??= []).push(seconds);
  };
  const loads: string[] = [];
  try {
    for (let round = 0; round < rounds; round += 1) {
      loads.push(loadavg()[0]?.toFixed(2) ?? '?');
      // Alternate which configuration goes first: the machine's speed drifts.
      const order = round % 2 === 0 ? [1, 2] : [2, 1];
      for (const workers of order) record(`train-w${workers}`, await timed(ctx, sweepArgs(ctx, train, workers, scratch, `r${round}-train-w${workers}`), `${train.name}, ${workers} worker(s)`));
      record('train-w1-blas1', await timed(ctx, sweepArgs(ctx, train, 1, scratch, `r${round}-train-w1b1`, ['--executor-option', 'blasThreads=1']), `${train.name}, 1 worker, 1 BLAS thread`));
      for (const workers of order) record(`short-w${workers}`, await timed(ctx, sweepArgs(ctx, short, workers, scratch, `r${round}-short-w${workers}`), `${short.name}, ${workers} worker(s)`));
      // Control: the same single-cell training run alone, then two copies at once.
      record('control-alone', await timed(ctx, controlArgs(ctx, train, scratch, `r${round}-alone`), 'control, alone'));
      const started = process.hrtime.bigint();
      await Promise.all([0, 1].map((copy) => timed(ctx, controlArgs(ctx, train, scratch, `r${round}-pair${copy}`), `control, copy ${copy} of a pair`)));
      record('control-pair', Number(process.hrtime.bigint() - started) / 1e9);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const m = (key: string): number => median(times[key] ?? []);
  const perMinute = (jobs: number, seconds: number): string => ((60 * jobs) / seconds).toFixed(1);
  const ratios = (a: string, b: string): string => (times[a] ?? []).map((t, i) => (t / (times[b]?.[i] ?? Number.NaN)).toFixed(2)).join(', ');
  const speedup = m('train-w1') / m('train-w2');
  const oneCore = m('train-w1-blas1') / m('train-w2');
  const ceiling = (2 * m('control-alone')) / m('control-pair');
  const row = (work: Workload, config: string, key: string, base: string): string =>
    `| ${work.name} | ${config} | ${work.jobs} | ${m(key).toFixed(1)} | ${perMinute(work.jobs, m(key))} | ${key === base ? '1.00×' : `**${(m(base) / m(key)).toFixed(2)}×** (rounds: ${ratios(base, key)})`} |`;
  const markdown = [
    '## Sweep throughput: 1 vs 2 local workers',
    '',
    `Each cell of the table is one real \`milkit sweep experiments/quickstart.yaml\` (fresh state and run folders): long-lived worker processes (\`milkit worker --serve\`, V8 GC on the main thread) each compose, train and test one fold per job, keep the dataset open between jobs, and get cores ÷ workers BLAS threads. Training-bound: ${train.describe} = ${train.jobs} jobs. Overhead-bound: ${short.describe} = ${short.jobs} jobs. Wall time of the whole command (start-up, composing every cell, the jobs, the table), median of ${rounds} round${rounds === 1 ? '' : 's'} with alternating order. Machine: ${availableParallelism()} cores; 1-minute load average at the start of each round: ${loads.join(', ')}.`,
    '',
    '| workload | workers | jobs | wall s | jobs/min | speedup vs 1 worker |',
    '|---|---|---|---|---|---|',
    row(train, '1 (2 BLAS threads, the default)', 'train-w1', 'train-w1'),
    row(train, '2 (1 BLAS thread each)', 'train-w2', 'train-w1'),
    `| ${train.name} | 1 (1 BLAS thread: one core per worker) | ${train.jobs} | ${m('train-w1-blas1').toFixed(1)} | ${perMinute(train.jobs, m('train-w1-blas1'))} | 2 workers are **${oneCore.toFixed(2)}×** faster (rounds: ${ratios('train-w1-blas1', 'train-w2')}) |`,
    row(short, '1', 'short-w1', 'short-w1'),
    row(short, '2', 'short-w2', 'short-w1'),
    '',
    `**Goal ≥ ${GOAL}× (training-bound, default settings): ${speedup >= GOAL ? 'met' : 'not met'} — ${speedup.toFixed(2)}×.**`,
    '',
    `Control — what this machine allows: one cell of the training-bound workload as a single \`milkit run\` (${train.jobs / 2} folds, 1 BLAS thread, GC on the main thread) took ${m('control-alone').toFixed(1)} s alone and ${m('control-pair').toFixed(1)} s for two copies side by side, so two processes on two cores give at most **${ceiling.toFixed(2)}×** the throughput of one (rounds: ${(times['control-alone'] ?? []).map((t, i) => ((2 * t) / (times['control-pair']?.[i] ?? Number.NaN)).toFixed(2)).join(', ')}). A process alone also uses part of the second core (V8 and tsx helper threads, I/O), and two paired processes contend for the shared caches and memory bus.`,
    '',
    'Where the rest goes: each worker pays its start-up (tsx, module graph, tfjs/wasm: ~2 s) and generates the synthetic dataset once (seconds for 60 slides × 500 × 512), so those costs are paid twice with 2 workers; composing the cells and writing the table happen once in the parent. With one worker, OpenBLAS also uses the second core for ABMIL\'s matrix products, which makes the 1-worker baseline faster than a one-core worker.',
    '',
    'Command: `npm run bench -- sweep` (`BENCH_QUICK=1` for a one-round smoke run with fewer folds and epochs).',
  ].join('\n');
  return { markdown };
}
