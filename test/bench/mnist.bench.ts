// `npm run bench -- mnist`: Ilse et al.'s MNIST-bags protocol (docs/methods/abmil.md#paper-protocol), the subset
// that fits about an hour on a shared 2-core machine: mean bag size 10 (σ 2), 50 / 150 / 500 training bags, 1000
// test bags, target digit 9, the balanced generator, the LeNet encoder (encoder/lenet-mnist) trained end to end
// with each pooling: attention, gated attention, and mean / max at the embedding and the instance level. Adam
// (lr 5e-4, betas 0.9/0.999, weight decay 1e-4), one bag per step, no validation (the last epoch is tested), as the
// authors' script. Test AUC over repetitions: mean, 95% t-interval, a PNG of AUC against training bags.
//
// Every finished (bags, repetition, model) result is appended to a JSON-lines file as it lands
// (MILKIT_MNIST_BENCH_LOG, default outputs/bench-mnist/results.jsonl), and a rerun skips what it finds there, so a
// run cut short by the deadline still tables what finished and can be continued. MNIST_BENCH_REPS, _EPOCHS,
// _BAGS and _MODELS (comma lists) shrink the grid; MNIST_BENCH_EPOCHS is one count ("10") or one per training-set
// size ("50:10,150:10,500:5"); MNIST_BENCH_FIRST_REP starts at a later repetition; MNIST_BENCH_BLAS_THREADS (default 1: the workers are separate single-threaded
// processes); MNIST_BENCH_REPORT_ONLY=1 tables the log without training; BENCH_QUICK=1 is a smoke run.
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { builtinManifest } from '../../plugins/index.js';
import { MilModel } from '../../src/core/engine/model.js';
import { trainFold } from '../../src/core/engine/trainer.js';
import { TrainSection } from '../../src/core/engine/schema.js';
import { evaluate } from '../../src/core/engine/evaluate.js';
import { writePng } from '../../src/core/eval/plots.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { Rng } from '../../src/core/runtime/random.js';
import { studentTQuantile } from '../../src/core/stats/distributions.js';
import { Registry, type BagSource } from '../../src/registry/index.js';
import type { BenchContext, BenchResult } from './run.js';

/** The six poolings of the paper's MNIST-bags figure, as milkit aggregator configs. */
export const MNIST_MODELS: ReadonlyArray<{ readonly key: string; readonly label: string; readonly aggregator: Readonly<Record<string, unknown>> }> = [
  { key: 'instance-max', label: 'Instance + max', aggregator: { name: 'max-pool', level: 'instance' } },
  { key: 'instance-mean', label: 'Instance + mean', aggregator: { name: 'mean-pool', level: 'instance' } },
  { key: 'embedding-max', label: 'Embedding + max', aggregator: { name: 'max-pool' } },
  { key: 'embedding-mean', label: 'Embedding + mean', aggregator: { name: 'mean-pool' } },
  { key: 'attention', label: 'Attention', aggregator: { name: 'abmil', projectDim: 0, gated: false, dropout: 0, attnDim: 128 } },
  { key: 'gated-attention', label: 'Gated attention', aggregator: { name: 'abmil', projectDim: 0, gated: true, dropout: 0, attnDim: 128 } },
];

interface ResultLine {
  readonly bags: number;
  readonly rep: number;
  readonly model: string;
  readonly epochs: number;
  readonly auc: number;
  readonly seconds: number;
}

function envInt(name: string, fallback: number, min = 1): number {
  const text = process.env[name]?.trim();
  const value = Number(text);
  return text !== undefined && text !== '' && Number.isInteger(value) && value >= min ? value : fallback;
}

/**
 * Epochs per training-set size from MNIST_BENCH_EPOCHS: one count for every size ("10"), or "bags:epochs" pairs
 * ("50:10,150:10,500:5"; sizes not listed get `fallback`).
 */
export function epochSchedule(text: string | undefined, fallback: number): (bags: number) => number {
  const value = (text ?? '').trim();
  if (value === '') return () => fallback;
  if (/^\d+$/.test(value)) return () => Number(value);
  const pairs = new Map<number, number>();
  for (const part of value.split(',')) {
    const match = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(part);
    if (!match || Number(match[2]) < 1) throw new Error(`MNIST_BENCH_EPOCHS: "${part}" is not "bags:epochs" (e.g. "50:10,150:10,500:5") or one count`);
    pairs.set(Number(match[1]), Number(match[2]));
  }
  return (bags) => pairs.get(bags) ?? fallback;
}

/** "10 epochs", or "10 epochs (50 and 150 bags), 5 epochs (500 bags)". */
function epochText(settings: ReportSettings): string {
  const groups = new Map<number, number[]>();
  settings.bagCounts.forEach((b, i) => groups.set(settings.epochs[i] ?? 0, [...(groups.get(settings.epochs[i] ?? 0) ?? []), b]));
  const count = (e: number): string => `${e} epoch${e === 1 ? '' : 's'}`;
  if (groups.size === 1) return count(settings.epochs[0] ?? 0);
  return [...groups].map(([e, bags]) => `${count(e)} (${bags.join(' and ')} bags)`).join(', ');
}

/** Mean and 95% t-interval half-width of a sample (half-width NaN below two values). */
export function meanCi(values: readonly number[]): { mean: number; half: number } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, half: Number.NaN };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  return { mean, half: studentTQuantile(0.975, n - 1) * Math.sqrt(variance / n) };
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  // One BLAS thread by default: at the bench's small products a second thread costs more CPU than it saves, and
  // parallel workers (MNIST_BENCH_MODELS) already use the cores.
  await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: envInt('MNIST_BENCH_BLAS_THREADS', 1) }), { logger: silentLogger });
  const registry = new Registry(builtinManifest());
  const reps = ctx.quick ? 1 : envInt('MNIST_BENCH_REPS', 3);
  // MNIST_BENCH_FIRST_REP lets a second worker take the last repetitions of a grid another worker is running.
  const firstRep = ctx.quick ? 0 : envInt('MNIST_BENCH_FIRST_REP', 0, 0);
  const bagCounts = ctx.quick ? [10] : (process.env['MNIST_BENCH_BAGS'] ?? '50,150,500').split(',').map(Number);
  const epochsFor = ctx.quick ? (): number => 1 : epochSchedule(process.env['MNIST_BENCH_EPOCHS'], 20);
  const testBags = ctx.quick ? 50 : 1000;
  // MNIST_BENCH_MODELS (comma list of keys) lets two processes share the grid; each skips what the log already has.
  const only = process.env['MNIST_BENCH_MODELS']?.split(',');
  const models = ctx.quick ? MNIST_MODELS.slice(4, 5) : MNIST_MODELS.filter((m) => only === undefined || only.includes(m.key));
  const logFile = process.env['MILKIT_MNIST_BENCH_LOG'] ?? join(ctx.root, 'outputs', 'bench-mnist', ctx.quick ? 'quick.jsonl' : 'results.jsonl');
  mkdirSync(dirname(logFile), { recursive: true });
  const done: ResultLine[] = existsSync(logFile)
    ? readFileSync(logFile, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as ResultLine)
    : [];
  const has = (bags: number, rep: number, model: string): boolean => done.some((r) => r.bags === bags && r.rep === rep && r.model === model && r.epochs === epochsFor(bags));

  const encoder = await registry.resolve('encoder', { name: 'lenet-mnist' }, { key: 'model.encoder' });
  const classifier = await registry.resolve('classifier', { name: 'linear' }, { key: 'model.classifier' });
  const ce = { ...(await registry.resolve('loss', { name: 'cross-entropy' }, { key: 'model.losses.ce' })), weight: 1 };
  const auc = registry.create(await registry.resolve('metric', 'auc', { key: 'eval.metrics' }), { numClasses: 2 });
  const scratch = mkdtempSync(join(tmpdir(), 'milkit-mnist-bench-'));
  const started = Date.now();
  const reportOnly = process.env['MNIST_BENCH_REPORT_ONLY'] === '1';
  try {
    // Small training sets first, so a run cut short still has every model at 50 and 150 bags.
    for (const bags of reportOnly ? [] : bagCounts) {
      const epochs = epochsFor(bags);
      const section = TrainSection.parse({ epochs, optimizer: { name: 'adam', lr: 5e-4, betas: [0.9, 0.999], weightDecay: 1e-4 }, earlyStopping: { patience: 1000 } });
      for (let rep = firstRep; rep < reps; rep += 1) {
        // One data seed per repetition: the digit pools, the training bags and the 1000 test bags all change.
        const dataset = await registry.resolve('dataset', {
          name: 'mnist-bags', generator: 'balanced', meanBagSize: 10, stdBagSize: 2, trainBags: bags, testBags, targetDigit: 9, seed: 1000 + rep,
        }, { key: 'data.dataset' });
        const source = (await registry.create(dataset, { seed: 0, logger: silentLogger, baseDir: ctx.root })) as BagSource;
        const train = source.slides.filter((s) => s.meta['split'] === 'train');
        const test = source.slides.filter((s) => s.meta['split'] === 'test');
        for (const spec of models) {
          if (has(bags, rep, spec.key)) continue;
          // Each (bags, rep, model) cell trains its own model from a seed of its own; cells are independent.
          const t0 = Date.now();
          const aggregator = await registry.resolve('aggregator', spec.aggregator, { key: 'model.aggregator' });
          const model = new MilModel(registry, { encoder, aggregator, classifier, losses: { ce } }, { inputDim: source.featureDim, numClasses: 2 }, new Rng(`mnist-bench/${rep}/${spec.key}`), silentLogger);
          try {
            await trainFold({
              model, source, train, val: [], numClasses: 2, section, metrics: [], rng: new Rng(`mnist-bench/${bags}/${rep}`), logger: silentLogger,
              checkpointDir: join(scratch, `${bags}-${rep}-${spec.key}`), configHash: 'bench', fold: 0, resume: false, views: model.capabilities.needsViews,
            });
            const result = await evaluate({ model, source, slides: test, numClasses: 2, metrics: [{ name: 'auc', metric: auc }], rng: new Rng('eval'), views: model.capabilities.needsViews });
            const line: ResultLine = { bags, rep, model: spec.key, epochs, auc: result.metrics['auc']?.value ?? Number.NaN, seconds: (Date.now() - t0) / 1000 };
            appendFileSync(logFile, `${JSON.stringify(line)}\n`);
            done.push(line);
            ctx.log(`${bags} bags, rep ${rep + 1}/${reps}, ${spec.key}: AUC ${line.auc.toFixed(4)} (${line.seconds.toFixed(0)} s, load ${loadavg()[0]?.toFixed(1)})`);
          } finally {
            model.dispose();
          }
        }
        await source.close?.();
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const markdown = await report(done.filter((r) => r.epochs === epochsFor(r.bags)), { reps, epochs: bagCounts.map((b) => epochsFor(b)), bagCounts, testBags, quick: ctx.quick, root: ctx.root, minutes: (Date.now() - started) / 60_000 });
  return { markdown };
}

/** Whether attention pooling leads at `bags`: the best attention model's mean AUC against the best fixed pooling's. */
export function trendLine(results: readonly ResultLine[], bags: number): string {
  const stats = MNIST_MODELS.map((m) => ({ m, values: results.filter((r) => r.model === m.key && r.bags === bags).map((r) => r.auc) }))
    .filter((s) => s.values.length > 0)
    .map((s) => ({ ...s, ...meanCi(s.values) }));
  const attention = stats.filter((s) => s.m.key.endsWith('attention')).sort((a, b) => b.mean - a.mean)[0];
  const fixed = stats.filter((s) => !s.m.key.endsWith('attention')).sort((a, b) => b.mean - a.mean)[0];
  if (!attention || !fixed) return stats.length === 0 ? '' : `${bags} bags: not every family finished, no comparison.`;
  const ci = (s: { mean: number; half: number }): string => (Number.isNaN(s.half) ? `${s.mean.toFixed(3)} (one run)` : `${s.mean.toFixed(3)} [${(s.mean - s.half).toFixed(3)}, ${(s.mean + s.half).toFixed(3)}]`);
  const gap = attention.mean - fixed.mean;
  const separated = !Number.isNaN(attention.half) && !Number.isNaN(fixed.half) && attention.mean - attention.half > fixed.mean + fixed.half;
  const single = Number.isNaN(attention.half) || Number.isNaN(fixed.half);
  const verdict = gap <= 0 ? 'attention is not ahead'
    : separated ? 'attention is ahead and the CIs separate'
      : single ? 'attention is ahead on the mean, but with a single run on one side there is no CI to judge it'
        : 'attention is ahead on the mean, but the CIs overlap (not shown)';
  const unfinished = MNIST_MODELS.length - stats.length;
  return `${bags} bags: ${attention.m.label} ${ci(attention)} vs ${fixed.m.label} ${ci(fixed)}, Δ = ${gap >= 0 ? '+' : ''}${gap.toFixed(3)}: ${verdict}${unfinished > 0 ? ` (${unfinished} model(s) not run at this size)` : ''}.`;
}

/** The environment settings that differ from the protocol's defaults, as ` with A=1 B=2`. */
function envText(settings: ReportSettings): string {
  const uniform = settings.epochs.every((e) => e === settings.epochs[0]);
  const epochs = uniform ? String(settings.epochs[0]) : settings.bagCounts.map((b, i) => `${b}:${settings.epochs[i]}`).join(',');
  const set = [...(settings.reps !== 3 ? [`MNIST_BENCH_REPS=${settings.reps}`] : []), ...(epochs !== '20' ? [`MNIST_BENCH_EPOCHS=${epochs}`] : [])];
  return set.length > 0 ? ` with ${set.join(' ')}` : '';
}

interface ReportSettings {
  readonly reps: number;
  /** Epochs per entry of `bagCounts`. */
  readonly epochs: readonly number[];
  readonly bagCounts: readonly number[];
  readonly testBags: number;
  readonly quick: boolean;
  readonly root: string;
  readonly minutes: number;
}

/** The BENCHMARKS.md section: a table of mean AUC ± 95% CI per (model, training bags) and the PNG curve. */
export async function report(results: readonly ResultLine[], settings: ReportSettings): Promise<string> {
  const cell = (model: string, bags: number): string => {
    const values = results.filter((r) => r.model === model && r.bags === bags).map((r) => r.auc);
    if (values.length === 0) return 'not run';
    const { mean, half } = meanCi(values);
    return Number.isNaN(half) ? `${mean.toFixed(3)} (n=1)` : `${mean.toFixed(3)} ± ${half.toFixed(3)} (n=${values.length})`;
  };
  const figure = settings.quick ? 'docs/benchmarks/mnist-bags-quick.png' : 'docs/benchmarks/mnist-bags.png';
  const points = MNIST_MODELS.flatMap((m) => settings.bagCounts.flatMap((bags) => {
    const values = results.filter((r) => r.model === m.key && r.bags === bags).map((r) => r.auc);
    if (values.length === 0) return [];
    const { mean, half } = meanCi(values);
    return [{ model: m.label, bags, auc: mean, low: Number.isNaN(half) ? mean : mean - half, high: Number.isNaN(half) ? mean : mean + half }];
  }));
  if (points.length > 0) {
    mkdirSync(join(settings.root, 'docs', 'benchmarks'), { recursive: true });
    await writePng({
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      width: 420, height: 280, title: 'MNIST-bags (mean bag size 10): test AUC vs training bags, mean and 95% CI',
      data: { values: points },
      layer: [
        { mark: { type: 'line', point: true }, encoding: { x: { field: 'bags', type: 'quantitative', title: 'training bags', scale: { type: 'log' } }, y: { field: 'auc', type: 'quantitative', title: 'test AUC', scale: { zero: false } }, color: { field: 'model', type: 'nominal' } } },
        { mark: 'errorbar', encoding: { x: { field: 'bags', type: 'quantitative' }, y: { field: 'low', type: 'quantitative', title: 'test AUC' }, y2: { field: 'high' }, color: { field: 'model', type: 'nominal' } } },
      ],
    }, join(settings.root, figure));
  }
  const trend = settings.bagCounts.map((bags) => trendLine(results, bags)).filter((line) => line !== '');
  const header = `| model | ${settings.bagCounts.map((b) => `${b} bags`).join(' | ')} |`;
  const rule = `|---|${settings.bagCounts.map(() => '---').join('|')}|`;
  const rows = MNIST_MODELS.map((m) => `| ${m.label} | ${settings.bagCounts.map((b) => cell(m.key, b)).join(' | ')} |`);
  const seconds = results.reduce((a, r) => a + r.seconds, 0);
  return [
    '## MNIST-bags: Ilse et al.\'s protocol, subset (LeNet encoder trained end to end, tfjs-wasm)',
    '',
    `Test AUC (mean ± 95% t-interval half-width over repetitions, n = repetitions that finished) on ${settings.testBags} test bags;`,
    `mean bag size 10 (σ 2), target digit 9, balanced generator, ${epochText(settings)} of Adam (lr 5e-4, weight decay 1e-4), one bag per step,`,
    'no validation (the last epoch is tested). Each repetition draws its own digit pools, training and test bags (data seed 1000 + rep).',
    'Training and test bags come from disjoint digit pools of the 10,000 digits the `mnist` package ships (80% / 20% per digit class).',
    '',
    header, rule, ...rows,
    '',
    `![AUC vs training bags](${figure})`,
    '',
    'The paper\'s trend (recalled, not re-read; docs/methods/abmil.md#paper-protocol): attention and gated attention are',
    'clearly ahead of the four fixed poolings with few training bags (50–150), and the methods converge as bags grow.',
    'Ours, per training-set size (best attention model against the best fixed pooling, mean AUC, 95% CIs):',
    '',
    ...trend.map((line) => `- ${line}`),
    '',
    `Compute: ${(seconds / 60).toFixed(0)} min of training and testing in the finished cells (this invocation ${settings.minutes.toFixed(0)} min), at nice 10 on a 2-core machine shared with other jobs.`,
    `Command: \`nice -n 10 npm run bench -- mnist\`${settings.quick ? ' (BENCH_QUICK=1)' : ''}${envText(settings)}.`,
    // How this particular table was produced when it differs from the plain command (cuts, parallel workers).
    ...(process.env['MNIST_BENCH_NOTE'] ? ['', process.env['MNIST_BENCH_NOTE']] : []),
  ].join('\n');
}
