// One training step of every MIL-zoo aggregator on tfjs-wasm with milkit's runtime (the training configuration)
// against the same step of its PyTorch reference (test/bench/torch_zoo_step.py → test/reference/*.py), interleaved:
// each round runs every cell (torch threads 1, torch threads 2, milkit) once, so a load change on this shared
// machine hits all sides alike; every side of every cell runs in a fresh process (milkit's in
// test/bench/milkit_zoo_step.ts), with a pause before each side; 7 rounds at N = 1,000, 3 at 8,000 and 30,000 and
// 1 at 50,000, D = 1,024. Per cell also the peak RSS of each process, the wasm heap, the measured peak tensor bytes and
// the memory budget's estimate (docs/runtime.md#memory-budget). `--quick` (BENCH_QUICK=1): one round at N = 1,000.
// BENCH_ZOO_ROUNDS=k caps the rounds per size at k (e.g. 1 on a loaded machine, where only the memory columns mean
// anything). BENCH_ZOO_MODELS=abmil,dsmil and BENCH_ZOO_SIZES=1000,8000 keep only those aggregators and bag sizes
// (hand runs of a few cells; the generated section should come from the full set).
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { defaultMemoryLimit, formatBytes } from '../../src/core/engine/memory-budget.js';
import type { BenchContext, BenchResult } from './run.js';
import { CLASSES, D, machineBusySeconds, median, MODELS as ALL_MODELS, ownCpuSeconds, StepProcess, TorchReference } from './shared.js';

interface SizePlan {
  readonly n: number;
  readonly warmup: number;
  readonly steps: number;
  readonly rounds: number;
}

// Steps of 10–60 ms (N = 1,000) move by 1.5–3× from one step to the next on this machine (docs/runtime.md, BLAS
// threads), and whole processes settle at different speeds (DSMIL at 1k: medians of 9 to 13 ms in six identical
// fresh processes, on both sides), so small bags get more steps and more rounds (each round is a new process per
// side); three warm-up steps let the allocator and the JIT settle.
const FULL: SizePlan[] = [
  { n: 1000, warmup: 3, steps: 10, rounds: 7 },
  { n: 8000, warmup: 1, steps: 4, rounds: 3 },
  { n: 30000, warmup: 1, steps: 1, rounds: 3 },
  { n: 50000, warmup: 1, steps: 1, rounds: 1 },
];
const QUICK: SizePlan[] = [{ n: 1000, warmup: 1, steps: 1, rounds: 1 }];
/**
 * Each process also warms up for at least this long (both sides): milkit's steps at N = 1,000 keep getting faster for
 * about 30 steps (V8 optimising the tfjs engine's JavaScript; DSMIL: 10-30 ms over the first 10 steps, 6-9 ms from
 * step 30), so a fixed count of warm-up steps measured the JIT's warm-up instead of the step.
 */
const WARMUP_MS = 1000;
const TORCH_THREADS = [1, 2] as const;
const PROFILE_N = 8000;
/**
 * Pause before each side's turn. An OpenBLAS worker thread spins for a while after its last call before it sleeps
 * (THREAD_TIMEOUT, about 2^28 cycles), so without the pause the side that just ran keeps one of the two cores busy
 * through the first steps of the next side.
 */
const SETTLE_MS = 300;
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

type Side = (typeof TORCH_THREADS)[number] | 'milkit';
const SIDES: readonly Side[] = [...TORCH_THREADS, 'milkit'];

/** The runtime the milkit step process reports in its hello (milkit_zoo_step.ts). */
interface MilkitHello {
  readonly tfjsVersion: string;
  readonly backend: string;
  readonly simd: boolean;
  readonly wasmThreads: number;
  readonly blas: { readonly library?: string; readonly threads?: number; readonly reason?: string };
  readonly kernelOverrides: readonly string[];
  readonly matmulGrad: string;
}

interface MilkitReply {
  readonly ms?: number[];
  readonly params?: number;
  readonly peakRss?: number;
  readonly wasmHeap?: number;
  readonly estimate?: number;
  readonly measuredPeak?: number;
  readonly profile?: { readonly kernels: ReadonlyArray<{ name: string; ms: number; calls: number }>; readonly calls: number };
  readonly error?: string;
}

function topKernels(profile: NonNullable<MilkitReply['profile']>): string {
  const shares = [...profile.kernels].sort((a, b) => b.ms - a.ms);
  const total = shares.reduce((sum, kernel) => sum + kernel.ms, 0);
  return `${total.toFixed(0)} ms in ${profile.calls} kernel calls; top: ${shares.slice(0, 6).map((k) => `${k.name} ${k.ms.toFixed(0)} ms (${((100 * k.ms) / total).toFixed(0)}%, ×${k.calls})`).join(', ')}`;
}

interface Cell {
  torch: Record<number, { ms: number[]; peakRss: number; error?: string }>;
  milkit: number[];
  /** milkit's median ÷ the faster torch median, per round: the spread the table prints next to the pooled ratio. */
  roundRatios: number[];
  milkitError?: string;
  peakRss: number;
  wasmHeap: number;
  measuredPeak?: number;
  estimate?: number;
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const roundCap = Number(process.env['BENCH_ZOO_ROUNDS'] ?? Infinity);
  const sizeFilter = listFilter(process.env['BENCH_ZOO_SIZES']);
  const modelFilter = listFilter(process.env['BENCH_ZOO_MODELS']);
  const plans = (ctx.quick ? QUICK : FULL)
    .filter((p) => !sizeFilter || sizeFilter.has(String(p.n)))
    .map((p) => ({ ...p, rounds: Math.max(1, Math.min(p.rounds, roundCap)) }));
  const selected = ALL_MODELS.filter((zoo) => !modelFilter || modelFilter.has(zoo.name));
  if (plans.length === 0 || selected.length === 0) throw new Error('BENCH_ZOO_SIZES / BENCH_ZOO_MODELS left no cell to run');
  const loadStart = loadavg()[0] ?? 0;
  const torchScript = join(ctx.root, 'test', 'bench', 'torch_zoo_step.py');
  const milkitScript = join(ctx.root, 'test', 'bench', 'milkit_zoo_step.ts');
  // Every cell runs in a fresh process on both sides (started before the pause, stopped after its reply). A
  // long-lived torch process that has run the other models and sizes was measured up to 2× slower on TransMIL at 8k
  // (fragmented allocator); a long-lived milkit process keeps the wasm heap the 50k bags grew (2.2 GB) and its later
  // steps were slower too (DSMIL at 50k: 1.07× there, 0.99× alone). Each side is measured at its best, and the
  // peak RSS and wasm heap columns are the cell's own.
  const start = async (side: Side): Promise<StepProcess> => {
    const proc = side === 'milkit'
      ? new StepProcess(process.execPath, ['--conditions=milkit-source', '--import', 'tsx', milkitScript], 'milkit')
      : new TorchReference(ctx.python, torchScript, [String(side)]);
    await proc.ready();
    return proc;
  };
  const hellos = await (async () => {
    const torch = await start(1);
    await torch.stop();
    const milkit = await start('milkit');
    await milkit.stop();
    return { torch: String(torch.hello['torch'] ?? ''), milkit: milkit.hello['milkit'] as MilkitHello };
  })();
  // What other processes took from the machine during the run: its busy CPU time minus this process's and its
  // step processes' (all exited by then). A share of a few per cent is this session's shell; more means the times
  // are not an idle machine's.
  const busyAtStart = machineBusySeconds();
  const ownAtStart = ownCpuSeconds();
  const wallAtStart = performance.now();
  const limit = defaultMemoryLimit('wasm');
  const params = new Map<string, number>();
  const cells = new Map<string, Cell>();
  const maxRounds = Math.max(...plans.map((p) => p.rounds));
  for (let round = 0; round < maxRounds; round += 1) {
    for (const plan of plans.filter((p) => p.rounds > round)) {
      // Alternate the order of the models, and of the sides within a cell, between rounds.
      const order = round % 2 === 0 ? selected : [...selected].reverse();
      for (const zoo of order) {
        const key = `${zoo.name}/${plan.n}`;
        const cell = cells.get(key) ?? { torch: {}, milkit: [], roundRatios: [], peakRss: 0, wasmHeap: 0 };
        cells.set(key, cell);
        const torchThisRound: number[] = [];
        let milkitThisRound: number[] = [];
        for (const side of round % 2 === 0 ? SIDES : [...SIDES].reverse()) {
          if (side === 'milkit' && cell.milkitError) continue;
          const proc = await start(side);
          await settle();
          const request = { model: zoo.name, n: plan.n, warmup: plan.warmup, steps: plan.steps, warmupMs: ctx.quick ? 0 : WARMUP_MS };
          if (side === 'milkit') {
            // Round 0 also asks for the budget's estimate (before anything runs at N) and the measured peak.
            const answer = await proc.request<MilkitReply>({ ...request, estimate: round === 0, measurePeak: round === 0 }).catch((error: Error) => ({ error: error.message } as MilkitReply));
            await proc.stop();
            if (answer.params !== undefined) params.set(zoo.name, answer.params);
            if (answer.estimate !== undefined) cell.estimate = answer.estimate;
            if (answer.measuredPeak !== undefined) cell.measuredPeak = answer.measuredPeak;
            cell.peakRss = Math.max(cell.peakRss, answer.peakRss ?? 0);
            cell.wasmHeap = Math.max(cell.wasmHeap, answer.wasmHeap ?? 0);
            if (answer.error) cell.milkitError = answer.error.startsWith('not run') ? answer.error : `failed: ${answer.error.slice(0, 80)}`;
            milkitThisRound = answer.ms ?? [];
            cell.milkit.push(...milkitThisRound);
          } else {
            const reply = await proc.request<{ ms?: number[]; error?: string; peakRss?: number }>(request);
            await proc.stop();
            const torchSide = cell.torch[side] ?? { ms: [], peakRss: 0 };
            torchSide.ms.push(...(reply.ms ?? []));
            if (reply.ms?.length) torchThisRound.push(median(reply.ms));
            torchSide.peakRss = Math.max(torchSide.peakRss, reply.peakRss ?? 0);
            if (reply.error) torchSide.error = reply.error;
            cell.torch[side] = torchSide;
          }
        }
        if (milkitThisRound.length && torchThisRound.length) cell.roundRatios.push(median(milkitThisRound) / Math.min(...torchThisRound));
        const torchLine = TORCH_THREADS.map((t) => `torch/${t} ${cell.torch[t]?.ms.length ? median(cell.torch[t]!.ms).toFixed(0) : cell.torch[t]?.error ?? '-'}`).join(', ');
        ctx.log(`round ${round + 1} ${zoo.name} N=${plan.n}: ${torchLine}, milkit ${cell.milkit.length ? median(cell.milkit).toFixed(0) : cell.milkitError} ms`);
      }
    }
  }

  // Over the timed rounds only.
  const cores = availableParallelism();
  const othersShare = Math.max(0, machineBusySeconds() - busyAtStart - (ownCpuSeconds() - ownAtStart)) / (((performance.now() - wallAtStart) / 1000) * cores);

  const profiles: string[] = [];
  if (!ctx.quick) {
    for (const zoo of selected) {
      const proc = await start('milkit');
      const answer = await proc.request<MilkitReply>({ model: zoo.name, n: PROFILE_N, steps: 0, profileN: PROFILE_N, warmup: 2, warmupMs: WARMUP_MS }).catch((error: Error) => ({ error: error.message } as MilkitReply));
      await proc.stop();
      profiles.push(answer.profile ? `- **${zoo.name}** (N=${PROFILE_N}): ${topKernels(answer.profile)}` : `- **${zoo.name}**: profile failed (${(answer.error ?? 'no reply').slice(0, 80)})`);
    }
  }
  const info = hellos.milkit;

  const mb = (bytes: number): string => (bytes > 0 ? formatBytes(bytes) : '-');
  const rows: string[] = [];
  for (const zoo of selected) {
    for (const plan of plans) {
      const cell = cells.get(`${zoo.name}/${plan.n}`);
      if (!cell) continue;
      const torchMs = TORCH_THREADS.map((t) => (cell.torch[t]?.ms.length ? median(cell.torch[t]!.ms) : undefined));
      const finite = torchMs.filter((v): v is number => v !== undefined);
      const reference = finite.length ? Math.min(...finite) : undefined;
      const referenceThreads = reference === undefined ? undefined : TORCH_THREADS[torchMs.indexOf(reference)];
      const milkitMs = cell.milkit.length ? median(cell.milkit) : undefined;
      const torchCells = TORCH_THREADS.map((t, i) => (torchMs[i] !== undefined ? torchMs[i]!.toFixed(0) : `failed: ${(cell.torch[t]?.error ?? 'no reply').slice(0, 60)}`));
      const torchRss = referenceThreads === undefined ? '-' : mb(cell.torch[referenceThreads]?.peakRss ?? 0);
      const spread = cell.roundRatios.length > 1 ? ` (${Math.min(...cell.roundRatios).toFixed(2)}–${Math.max(...cell.roundRatios).toFixed(2)})` : '';
      const ratio = milkitMs !== undefined && reference !== undefined ? `**${(milkitMs / reference).toFixed(2)}×**${spread}` : 'n/a';
      const measured = cell.measuredPeak ? mb(cell.measuredPeak) : '-';
      // The estimate's error against the measured peak: positive when the budget expects more than the step took.
      const estimate = cell.estimate === undefined ? '-' : cell.measuredPeak ? `${formatBytes(cell.estimate)} (${(((cell.estimate - cell.measuredPeak) / cell.measuredPeak) * 100).toFixed(0)} %)` : formatBytes(cell.estimate);
      rows.push(`| ${zoo.name} | ${paramsOf(params, zoo.name)} | ${plan.n.toLocaleString('en-US')} | ${plan.rounds}×(${plan.warmup}+${plan.steps}) | ${torchCells.join(' | ')} | ${milkitMs !== undefined ? milkitMs.toFixed(0) : cell.milkitError ?? '-'} | ${ratio} | ${goalOf(zoo.name, plan.n, milkitMs, reference)} | ${torchRss} | ${mb(cell.peakRss)} | ${mb(cell.wasmHeap)} | ${measured} | ${estimate} |`);
    }
  }

  const noisy = loadStart > cores || othersShare > 0.1;
  const markdown = [
    '## MIL zoo: one training step per aggregator, tfjs-wasm vs PyTorch, interleaved',
    '',
    `One step = forward, the method's weighted losses, backward and Adam (lr 1e-4, no weight decay) on one bag [N, ${D}] with label 1, C = ${CLASSES}, ` +
      'default (paper) sizes with dropout off on both sides; `loss.dataSync()` inside the timing. milkit\'s step is the trainer\'s: `tf.variableGrads`, then the engine\'s optimizer (train.optimizer, fused Adam); torch\'s `torch.optim.Adam`. ' +
      `Each process first warms up for at least the listed warm-up steps and ${WARMUP_MS / 1000} s. Rounds are interleaved (every cell once per round, the order reversed every other round, a ${SETTLE_MS} ms pause before each side so the previous side's BLAS threads have stopped spinning); times are medians over rounds and steps, and the range in brackets after a ratio is its spread over the rounds (each round's milkit median ÷ that round's faster torch median). ` +
      `PyTorch: the parity references of test/reference/ (Debian torch ${hellos.torch}, float32, \`test/bench/torch_zoo_step.py\`), run twice, torch threads 1 and 2 (OpenBLAS default threads), the ratio is against the faster. Every cell runs in a fresh process on every side, once per round (sides in reversed order every other round). ` +
      `milkit (\`test/bench/milkit_zoo_step.ts\`): tfjs ${info.tfjsVersion} ${info.backend}${info.backend === 'wasm' ? ` (SIMD ${info.simd ? 'on' : 'off'}, ${info.wasmThreads} thread)` : ''}, ` +
      `BLAS ${info.blas.library ? `on (${info.blas.library}, ${info.blas.threads} threads; kernels ${info.kernelOverrides.join(', ')})` : `off (${info.blas.reason})`}, matMul gradient ${info.matmulGrad}. ` +
      'Losses: abmil/transmil/pooling CE; clam 0.7·CE + 0.3·instance (SVM, k = 8); dsmil 0.5·BCE + 0.5·max-instance BCE; dtfd-mil (AFS, G = 4) tier-1 + tier-2 CE; dmin (CKA classifier, K = 12) 0.7·CE + 0.3·clustering + 0.5·MSE + 0.5·KL + 2·rate. ' +
      'Goal: milkit ≤ 1.3× the faster torch at N = 1,000 and ≤ 1.0× from 8,000 (mean/max pooling: or within 2 ms). ' +
      'Peak RSS: each process\'s high-water RSS during the cell (VmHWM after a reset); wasm heap: the module\'s memory size after the cell (it never shrinks); measured peak: `tf.profile` peak tensor bytes of one step; estimate: the memory budget (probes at two cuts of the bag, extrapolated linearly) and its error against the measured peak.',
    '',
    `Other processes used ${(100 * othersShare).toFixed(1)} % of the machine's ${cores} cores during the run (its busy CPU time minus this process's and the torch references'); 1-minute load average ${loadStart.toFixed(2)} at the start.`,
    '',
    ...(noisy ? ['**Noisy run:** other processes shared the machine; times and ratios are not meaningful, memory columns are.', ''] : []),
    '| aggregator | parameters | N | rounds×(warmup+steps) | torch/1 ms | torch/2 ms | milkit ms | milkit ÷ faster torch | goal | torch peak RSS | milkit peak RSS | wasm heap | measured peak tensors | budget estimate (error) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    ...(profiles.length ? ['Where the milkit step goes (one `tf.profile`d step, kernel time summed per kernel):', ...profiles, ''] : []),
  ].join('\n');
  return { markdown };
}

/**
 * The target a cell is judged against: at most torch's step at N ≥ 8,000 and at most 1.3× it at 1,000; the pooling
 * models, whose steps take milliseconds, also pass within 2 ms of torch.
 */
function goalOf(model: string, n: number, milkitMs: number | undefined, torchMs: number | undefined): string {
  if (milkitMs === undefined || torchMs === undefined) return '-';
  const bound = n < 8000 ? 1.3 : 1.0;
  const target = n < 8000 ? '≤ 1.3×' : '≤ 1.0×';
  const met = milkitMs <= bound * torchMs || (POOLING.has(model) && milkitMs - torchMs <= 2);
  return `${target}: ${met ? 'met' : '**not met**'}`;
}
const POOLING = new Set(['mean-pool', 'max-pool']);

/** A comma list from the environment as a set, or undefined when unset (no filter). */
function listFilter(value: string | undefined): Set<string> | undefined {
  const items = (value ?? '').split(',').map((item) => item.trim()).filter(Boolean);
  return items.length ? new Set(items) : undefined;
}

function paramsOf(params: Map<string, number>, name: string): string {
  return (params.get(name) ?? 0).toLocaleString('en-US');
}
