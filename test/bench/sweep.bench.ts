// Sweep throughput with 1 vs 2 local workers (issue 4: goal ≥ 1.8× on 2 cores). Each configuration runs the same
// real `milkit sweep` (quickstart on small synthetic data, every job a fresh worker process that composes, trains
// and evaluates one fold) into fresh state and output folders; rounds alternate the order because the machine's
// speed drifts, and the speedup is taken within each round.
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { BenchContext, BenchResult } from './run.js';

const GOAL = 1.8;

interface Plan {
  readonly rounds: number;
  readonly folds: number;
  readonly epochs: number;
}

const FULL: Plan = { rounds: 2, folds: 4, epochs: 4 };
const QUICK: Plan = { rounds: 1, folds: 2, epochs: 2 };

function sweepArgs(root: string, plan: Plan, workers: number, scratch: string, tag: string): string[] {
  return [
    join(root, 'bin', 'milkit.mjs'), 'sweep', 'experiments/quickstart.yaml',
    'data.dataset.slides=40', 'data.dataset.instances=[50,200]', 'data.dataset.thumbs=false',
    `train.epochs=${plan.epochs}`, `split.folds=${plan.folds}`, 'eval.metrics=[auc,accuracy]',
    'model/aggregator=mean-pool,max-pool', `output.dir=${join(scratch, `runs-${tag}`)}`,
    '--workers', String(workers), '--dir', join(scratch, `state-${tag}`),
  ];
}

async function timedSweep(ctx: BenchContext, plan: Plan, workers: number, scratch: string, tag: string): Promise<number> {
  const started = process.hrtime.bigint();
  const result = await execa(process.execPath, sweepArgs(ctx.root, plan, workers, scratch, tag), { cwd: ctx.root, reject: false, env: { ...process.env, FORCE_COLOR: '0' } });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.exitCode !== 0) throw new Error(`sweep with ${workers} workers failed (exit ${String(result.exitCode)}):\n${String(result.stderr).split('\n').slice(-10).join('\n')}`);
  ctx.log(`${tag}: ${workers} worker${workers === 1 ? '' : 's'}, ${seconds.toFixed(1)} s`);
  return seconds;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const plan = ctx.quick ? QUICK : FULL;
  const jobs = 2 * plan.folds;
  const scratch = mkdtempSync(join(tmpdir(), 'milkit-bench-sweep-'));
  const one: number[] = [];
  const two: number[] = [];
  const ratios: number[] = [];
  const loads: string[] = [];
  try {
    for (let round = 0; round < plan.rounds; round += 1) {
      loads.push(loadavg()[0]?.toFixed(2) ?? '?');
      // Alternate which configuration goes first.
      const order = round % 2 === 0 ? [1, 2] : [2, 1];
      const times: Record<number, number> = {};
      for (const workers of order) times[workers] = await timedSweep(ctx, plan, workers, scratch, `r${round}-w${workers}`);
      one.push(times[1] as number);
      two.push(times[2] as number);
      ratios.push((times[1] as number) / (times[2] as number));
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const speedup = median(ratios);
  const perMinute = (seconds: number): string => ((60 * jobs) / seconds).toFixed(1);
  const markdown = [
    '## Sweep throughput: 1 vs 2 local workers',
    '',
    `One sweep = \`milkit sweep experiments/quickstart.yaml\` with 2 cells (mean-pool, max-pool) × ${plan.folds} folds = ${jobs} jobs on 40 synthetic slides of 50–200 instances, ${plan.epochs} epochs each; every job is its own worker process (tsx start-up, tfjs wasm backend, data synthesis, training, test) with BLAS threads = cores ÷ workers. Fresh state and run folders per sweep; ${plan.rounds} round${plan.rounds === 1 ? '' : 's'}, order alternating. Machine has ${availableParallelism()} cores; 1-minute load average at the start of each round: ${loads.join(', ')} (other work on the machine lowers the speedup).`,
    '',
    '| workers | jobs | wall s (median) | jobs/min | speedup | goal |',
    '|---|---|---|---|---|---|',
    `| 1 | ${jobs} | ${median(one).toFixed(1)} | ${perMinute(median(one))} | 1.00× | |`,
    `| 2 | ${jobs} | ${median(two).toFixed(1)} | ${perMinute(median(two))} | **${speedup.toFixed(2)}×** (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')}) | ≥ ${GOAL}×: ${speedup >= GOAL ? 'met' : 'not met'} |`,
    '',
    'Command: `npm run bench -- sweep` (`BENCH_QUICK=1` for a one-round smoke run).',
  ].join('\n');
  return { markdown };
}
