// One training step of every MIL-zoo aggregator on tfjs-wasm with milkit's runtime (the training configuration)
// against the same step of its PyTorch reference (test/bench/torch_zoo_step.py → test/reference/*.py), interleaved:
// each round runs every cell (torch threads 1, torch threads 2, milkit) once, so a load change on this shared
// machine hits all sides alike, every torch cell in a fresh process, with a pause before each side; 3 rounds at N = 1,000 / 8,000 / 30,000 and 1 at 50,000, D = 1,024. Per cell also
// the peak RSS of each process, the wasm heap, the measured peak tensor bytes and the memory budget's estimate
// (docs/runtime.md#memory-budget). `--quick` (BENCH_QUICK=1): one round at N = 1,000. BENCH_ZOO_ROUNDS=k caps the
// rounds per size at k (e.g. 1 on a loaded machine, where only the memory columns mean anything).
// BENCH_ZOO_MODELS=abmil,dsmil and BENCH_ZOO_SIZES=1000,8000 keep only those aggregators and bag sizes (hand runs of a
// few cells; the generated section should come from the full set).
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { builtinManifest } from '../../plugins/index.js';
import { MilModel } from '../../src/core/engine/model.js';
import { defaultMemoryLimit, formatBytes, MemoryBudget, modelStepProbe, profilePeakBytes } from '../../src/core/engine/memory-budget.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection, type RuntimeInfo } from '../../src/core/runtime/index.js';
import { Rng } from '../../src/core/runtime/random.js';
import { Registry } from '../../src/registry/registry.js';
import type { BenchContext, BenchResult } from './run.js';
import type { Optimizer } from '../../src/core/engine/optim/index.js';
import { buildModel, CLASSES, D, engineOptimizer, engineStep, kernelTotals, LABEL, machineBusySeconds, median, MODELS as ALL_MODELS, ownCpuSeconds, peakRss, resetPeakRss, TorchReference, wasmHeapBytes } from './shared.js';

interface SizePlan {
  readonly n: number;
  readonly warmup: number;
  readonly steps: number;
  readonly rounds: number;
}

// Steps of 10–60 ms (N = 1,000) move by 1.5–3× from one step to the next on this machine (docs/runtime.md, BLAS
// threads), so small bags get more steps per round; a second warm-up step lets the allocator and the JIT settle.
const FULL: SizePlan[] = [
  { n: 1000, warmup: 2, steps: 8, rounds: 3 },
  { n: 8000, warmup: 1, steps: 4, rounds: 3 },
  { n: 30000, warmup: 1, steps: 1, rounds: 3 },
  { n: 50000, warmup: 1, steps: 1, rounds: 1 },
];
const QUICK: SizePlan[] = [{ n: 1000, warmup: 1, steps: 1, rounds: 1 }];
const TORCH_THREADS = [1, 2] as const;
const PROFILE_N = 8000;
/**
 * Pause before each side's turn. An OpenBLAS worker thread spins for a while after its last call before it sleeps
 * (THREAD_TIMEOUT, about 2^28 cycles), so without the pause the side that just ran keeps one of the two cores busy
 * through the first steps of the next side.
 */
const SETTLE_MS = 300;
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

function timedSteps(model: MilModel, optimizer: Optimizer, x: tf.Tensor2D, plan: SizePlan, rng: Rng): number[] {
  const times: number[] = [];
  for (let i = 0; i < plan.warmup + plan.steps; i += 1) {
    const start = performance.now();
    engineStep(model, optimizer, x, rng);
    if (i >= plan.warmup) times.push(performance.now() - start);
  }
  return times;
}

async function topKernels(model: MilModel, optimizer: Optimizer, x: tf.Tensor2D, rng: Rng): Promise<string> {
  const info = await tf.profile(() => engineStep(model, optimizer, x, rng));
  const byKernel = kernelTotals(info);
  const shares = [...byKernel].sort(([, a], [, b]) => b.ms - a.ms);
  const total = shares.reduce((s, [, k]) => s + k.ms, 0);
  return `${total.toFixed(0)} ms in ${info.kernels.length} kernel calls; top: ${shares.slice(0, 6).map(([name, k]) => `${name} ${k.ms.toFixed(0)} ms (${((100 * k.ms) / total).toFixed(0)}%, ×${k.calls})`).join(', ')}`;
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
  const info: RuntimeInfo = await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
  const registry = new Registry(builtinManifest());
  const script = join(ctx.root, 'test', 'bench', 'torch_zoo_step.py');
  // Every torch cell runs in a fresh process (started before the pause, stopped after its reply): a long-lived torch
  // process that has run the other models and sizes was measured up to 2× slower on TransMIL at 8k (fragmented
  // allocator), and the reference should be torch at its best. milkit keeps one process for the whole run.
  const startTorch = async (threads: number): Promise<TorchReference> => {
    const ref = new TorchReference(ctx.python, script, [String(threads)]);
    await ref.ready();
    return ref;
  };
  const torchVersion = await (async () => {
    const ref = await startTorch(1);
    await ref.stop();
    return ref.version;
  })();
  // What other processes took from the machine during the run: its busy CPU time minus this process's and the torch
  // references' (all exited by then). A share of a few per cent is this session's shell; more means the times are not
  // an idle machine's.
  const busyAtStart = machineBusySeconds();
  const ownAtStart = ownCpuSeconds();
  const wallAtStart = performance.now();
  const rng = new Rng('bench/zoo');
  const limit = defaultMemoryLimit('wasm');
  const models = new Map<string, { model: MilModel; optimizer: Optimizer; params: number; budget: MemoryBudget }>();
  for (const zoo of selected) {
    const model = await buildModel(registry, zoo);
    const probe = modelStepProbe({ model, label: LABEL, numClasses: CLASSES, views: [], variables: model.trainableVariables(), rng: rng.fork(`probe/${zoo.name}`) });
    models.set(zoo.name, { model, optimizer: engineOptimizer(model, { weightDecay: 0 }), params: model.trainableVariables().reduce((s, v) => s + v.size, 0), budget: new MemoryBudget({ limit, model: zoo.name, probe, checkFrom: 0 }) });
  }
  const cells = new Map<string, Cell>();
  const maxRounds = Math.max(...plans.map((p) => p.rounds));
  for (let round = 0; round < maxRounds; round += 1) {
    for (const plan of plans.filter((p) => p.rounds > round)) {
      // One bag at a time: the 50k bag is 200 MB on each side.
      // Not through tf.tidy: tidy walks a returned typed array element by element into a Set, which overflows at
      // 2^24 values (N = 30,000 × 1,024 did).
      const drawn = tf.randomNormal([plan.n, D], 0, 1, 'float32', rng.fork(`bag/${plan.n}`).seed());
      const data = { slideId: 'bench', n: plan.n, d: D, features: new Float32Array(drawn.dataSync()) };
      drawn.dispose();
      const x = tf.tensor2d(data.features, [plan.n, D]);
      // Alternate the order of the sides between rounds.
      const order = round % 2 === 0 ? selected : [...selected].reverse();
      for (const zoo of order) {
        const key = `${zoo.name}/${plan.n}`;
        const entry = models.get(zoo.name)!;
        const cell = cells.get(key) ?? { torch: {}, milkit: [], roundRatios: [], peakRss: 0, wasmHeap: 0 };
        cells.set(key, cell);
        const torchThisRound: number[] = [];
        for (const threads of round % 2 === 0 ? TORCH_THREADS : [...TORCH_THREADS].reverse()) {
          const ref = await startTorch(threads);
          await settle();
          const reply = await ref.request<{ ms?: number[]; error?: string; peakRss?: number }>({ model: zoo.name, n: plan.n, warmup: plan.warmup, steps: plan.steps });
          await ref.stop();
          const side = cell.torch[threads] ?? { ms: [], peakRss: 0 };
          side.ms.push(...(reply.ms ?? []));
          if (reply.ms?.length) torchThisRound.push(median(reply.ms));
          side.peakRss = Math.max(side.peakRss, reply.peakRss ?? 0);
          if (reply.error) side.error = reply.error;
          cell.torch[threads] = side;
        }
        if (cell.milkitError) continue;
        try {
          if (round === 0) {
            // The budget's estimate (two probes on cuts of this bag, extrapolated) before anything runs at N.
            cell.estimate = await entry.budget.estimate(data, 'train', plan.n);
            if (cell.estimate > limit.bytes) throw new Error(`not run: estimated ${formatBytes(cell.estimate)} > limit ${formatBytes(limit.bytes)}`);
          }
          await settle();
          resetPeakRss();
          const times = timedSteps(entry.model, entry.optimizer, x, plan, rng);
          cell.milkit.push(...times);
          if (torchThisRound.length) cell.roundRatios.push(median(times) / Math.min(...torchThisRound));
          if (round === 0) {
            cell.measuredPeak = await profilePeakBytes(() => {
              const { value, grads } = tf.variableGrads(() => entry.model.losses(entry.model.forward({ slideId: 'bench', features: x, label: LABEL }, { training: true, rng: rng.fork('peak') }), LABEL, CLASSES).total, entry.model.trainableVariables());
              return [value, ...Object.values(grads)];
            });
          }
          cell.peakRss = Math.max(cell.peakRss, peakRss());
          cell.wasmHeap = Math.max(cell.wasmHeap, wasmHeapBytes());
        } catch (error) {
          cell.milkitError = (error as Error).message.startsWith('not run') ? (error as Error).message : `failed: ${(error as Error).message.slice(0, 80)}`;
        }
        const torchLine = TORCH_THREADS.map((t) => `torch/${t} ${cell.torch[t]?.ms.length ? median(cell.torch[t]!.ms).toFixed(0) : cell.torch[t]?.error ?? '-'}`).join(', ');
        ctx.log(`round ${round + 1} ${zoo.name} N=${plan.n}: ${torchLine}, milkit ${cell.milkit.length ? median(cell.milkit).toFixed(0) : cell.milkitError} ms`);
      }
      x.dispose();
    }
  }

  // Over the timed rounds only, while the torch references are still alive to be read.
  const cores = availableParallelism();
  const othersShare = Math.max(0, machineBusySeconds() - busyAtStart - (ownCpuSeconds() - ownAtStart)) / (((performance.now() - wallAtStart) / 1000) * cores);

  const profiles: string[] = [];
  if (!ctx.quick) {
    const x = tf.tidy(() => tf.randomNormal([PROFILE_N, D], 0, 1, 'float32', rng.seed()) as tf.Tensor2D);
    for (const zoo of selected) {
      const entry = models.get(zoo.name)!;
      try {
        profiles.push(`- **${zoo.name}** (N=${PROFILE_N}): ${await topKernels(entry.model, entry.optimizer, x, rng)}`);
      } catch (error) {
        profiles.push(`- **${zoo.name}**: profile failed (${(error as Error).message.slice(0, 80)})`);
      }
    }
    x.dispose();
  }
  models.forEach(({ model, optimizer }) => {
    optimizer.dispose();
    model.dispose();
  });

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
      rows.push(`| ${zoo.name} | ${paramsOf(models, zoo.name)} | ${plan.n.toLocaleString('en-US')} | ${plan.rounds}×(${plan.warmup}+${plan.steps}) | ${torchCells.join(' | ')} | ${milkitMs !== undefined ? milkitMs.toFixed(0) : cell.milkitError ?? '-'} | ${ratio} | ${goalOf(zoo.name, plan.n, milkitMs, reference)} | ${torchRss} | ${mb(cell.peakRss)} | ${mb(cell.wasmHeap)} | ${measured} | ${estimate} |`);
    }
  }

  const noisy = loadStart > cores || othersShare > 0.1;
  const markdown = [
    '## MIL zoo: one training step per aggregator, tfjs-wasm vs PyTorch, interleaved',
    '',
    `One step = forward, the method's weighted losses, backward and Adam (lr 1e-4, no weight decay) on one bag [N, ${D}] with label 1, C = ${CLASSES}, ` +
      'default (paper) sizes with dropout off on both sides; `loss.dataSync()` inside the timing. milkit\'s step is the trainer\'s: `tf.variableGrads`, then the engine\'s optimizer (train.optimizer, fused Adam); torch\'s `torch.optim.Adam`. ' +
      `Rounds are interleaved (every cell once per round, the order reversed every other round, a ${SETTLE_MS} ms pause before each side so the previous side's BLAS threads have stopped spinning); times are medians over rounds and steps, and the range in brackets after a ratio is its spread over the rounds (each round's milkit median ÷ that round's faster torch median). ` +
      `PyTorch: the parity references of test/reference/ (Debian torch ${torchVersion}, float32, \`test/bench/torch_zoo_step.py\`), run twice, torch threads 1 and 2 (OpenBLAS default threads), each cell in a fresh torch process; the ratio is against the faster. ` +
      `milkit: tfjs ${info.tfjsVersion} ${info.backend}${info.wasm ? ` (SIMD ${info.wasm.simd ? 'on' : 'off'}, ${info.wasm.threads} thread)` : ''}, ` +
      `BLAS ${info.blas.active ? `on (${info.blas.library}, ${info.blas.threads} threads; kernels ${info.kernelOverrides.join(', ')})` : `off (${info.blas.reason})`}, matMul gradient ${info.matmulGrad}. ` +
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

function paramsOf(models: Map<string, { params: number }>, name: string): string {
  return (models.get(name)?.params ?? 0).toLocaleString('en-US');
}
