// One training step of every MIL-zoo aggregator on tfjs-wasm with milkit's runtime (the training configuration)
// against the same step of its PyTorch reference (test/bench/torch_zoo_step.py → test/reference/*.py) in the same
// run, at N = 1,000 / 8,000 / 30,000 instances of D = 1,024. Also profiles where each model's step goes.
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { builtinManifest } from '../../plugins/index.js';
import { MilModel } from '../../src/core/engine/model.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection, type RuntimeInfo } from '../../src/core/runtime/index.js';
import { Rng } from '../../src/core/runtime/random.js';
import { Registry } from '../../src/registry/registry.js';
import type { BenchContext, BenchResult } from './run.js';
import { median, TorchReference } from './shared.js';

const D = 1024;
const CLASSES = 2;
const LABEL = 1;

interface ZooModel {
  readonly name: string;
  /** Options that make the milkit network the reference network (dropout off on both sides). */
  readonly aggregator: Record<string, unknown>;
  readonly losses: Record<string, { name: string; weight: number; [k: string]: unknown }>;
  /** Largest N whose tfjs step fits wasm's 4 GB heap (a wasm abort kills the process, so larger cells are not run). */
  readonly maxTfjsN?: number;
}

const MODELS: ZooModel[] = [
  { name: 'abmil', aggregator: { dropout: 0 }, losses: { bag: { name: 'cross-entropy', weight: 1 } } },
  { name: 'clam-sb', aggregator: { dropout: 0, attnDropout: 0 }, losses: { bag: { name: 'cross-entropy', weight: 0.7 }, instance: { name: 'clam-instance', weight: 0.3 } } },
  { name: 'clam-mb', aggregator: { dropout: 0, attnDropout: 0 }, losses: { bag: { name: 'cross-entropy', weight: 0.7 }, instance: { name: 'clam-instance', weight: 0.3 } } },
  { name: 'dsmil', aggregator: {}, losses: { bag: { name: 'binary-cross-entropy', weight: 0.5 }, max: { name: 'dsmil-max-instance', weight: 0.5 } } },
  { name: 'dtfd-mil', aggregator: {}, losses: { bag: { name: 'cross-entropy', weight: 1 }, tier1: { name: 'dtfd-tier1', weight: 1 } } },
  // Last, as the heaviest. Peak tensor memory of one step (layers recomputed): 0.9 GB at N=1k, 2.2 GB at 4k, 3.8 GB at 8k,
  // ≈ 0.43 MB per instance, so ≈ 13 GB at 30k: beyond wasm32's 4 GB.
  { name: 'transmil', aggregator: { attnDropout: 0 }, losses: { bag: { name: 'cross-entropy', weight: 1 } }, maxTfjsN: 8000 },
];

interface SizePlan {
  readonly n: number;
  readonly warmup: number;
  readonly steps: number;
}

const FULL: SizePlan[] = [
  { n: 1000, warmup: 1, steps: 3 },
  { n: 8000, warmup: 1, steps: 2 },
  { n: 30000, warmup: 1, steps: 1 },
];
const QUICK: SizePlan[] = [{ n: 1000, warmup: 1, steps: 1 }];
const PROFILE_N = 8000;

async function buildModel(registry: Registry, zoo: ZooModel): Promise<MilModel> {
  const aggregator = await registry.resolve('aggregator', { name: zoo.name, ...zoo.aggregator }, { key: 'model.aggregator' });
  const classifier = await registry.resolve('classifier', { name: 'linear' }, { key: 'model.classifier' });
  const losses: Record<string, Awaited<ReturnType<Registry['resolve']>> & { weight: number }> = {};
  for (const [slot, { weight, ...ref }] of Object.entries(zoo.losses)) losses[slot] = { ...(await registry.resolve('loss', ref, { key: `model.losses.${slot}` })), weight };
  return new MilModel(registry, { aggregator, classifier, losses: losses as never }, { inputDim: D, numClasses: CLASSES }, new Rng(`bench/${zoo.name}`), silentLogger);
}

/** Forward, weighted losses, gradients and an Adam step; the loss read back is the one host sync. */
function trainStep(model: MilModel, optimizer: tf.Optimizer, x: tf.Tensor2D, rng: Rng): void {
  const loss = optimizer.minimize(() => model.losses(model.forward({ slideId: 'bench', features: x, label: LABEL }, { training: true, rng: rng.fork('step') }), LABEL, CLASSES).total, true, model.trainableVariables());
  loss?.dataSync();
  loss?.dispose();
}

function timedSteps(model: MilModel, optimizer: tf.Optimizer, x: tf.Tensor2D, plan: SizePlan, rng: Rng): number[] {
  const times: number[] = [];
  for (let i = 0; i < plan.warmup + plan.steps; i += 1) {
    const start = performance.now();
    trainStep(model, optimizer, x, rng);
    if (i >= plan.warmup) times.push(performance.now() - start);
  }
  return times;
}

async function topKernels(model: MilModel, optimizer: tf.Optimizer, x: tf.Tensor2D, rng: Rng): Promise<string> {
  const info = await tf.profile(() => trainStep(model, optimizer, x, rng));
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const kernel of info.kernels) {
    const entry = byKernel.get(kernel.name) ?? { ms: 0, calls: 0 };
    entry.ms += typeof kernel.kernelTimeMs === 'number' ? kernel.kernelTimeMs : 0;
    entry.calls += 1;
    byKernel.set(kernel.name, entry);
  }
  const shares = [...byKernel].sort(([, a], [, b]) => b.ms - a.ms);
  const total = shares.reduce((s, [, k]) => s + k.ms, 0);
  return `${total.toFixed(0)} ms in ${info.kernels.length} kernel calls; top: ${shares.slice(0, 6).map(([name, k]) => `${name} ${k.ms.toFixed(0)} ms (${((100 * k.ms) / total).toFixed(0)}%, ×${k.calls})`).join(', ')}`;
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const plans = ctx.quick ? QUICK : FULL;
  const loadStart = loadavg()[0] ?? 0;
  const info: RuntimeInfo = await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
  const registry = new Registry(builtinManifest());
  const torch = new TorchReference(ctx.python, join(ctx.root, 'test', 'bench', 'torch_zoo_step.py'));
  await torch.ready();
  const rng = new Rng('bench/zoo');
  const bags = new Map(plans.map((plan) => [plan.n, tf.tidy(() => tf.randomNormal([plan.n, D], 0, 1, 'float32', rng.seed()) as tf.Tensor2D)]));

  const rows: string[] = [];
  const profiles: string[] = [];
  for (const zoo of MODELS) {
    const model = await buildModel(registry, zoo);
    const optimizer = tf.train.adam(1e-4);
    const params = model.trainableVariables().reduce((s, v) => s + v.size, 0);
    for (const plan of plans) {
      const x = bags.get(plan.n) as tf.Tensor2D;
      const reply = await torch.request<{ ms?: number[]; error?: string }>({ model: zoo.name, n: plan.n, warmup: plan.warmup, steps: plan.steps });
      const torchTimes: number[] | string = reply.error ?? reply.ms ?? 'no reply';
      let tfjsCell: string;
      let ratioCell: string;
      try {
        if (zoo.maxTfjsN !== undefined && plan.n > zoo.maxTfjsN) throw new Error(`not run: the step needs more than wasm's 4 GB heap (fits up to N=${zoo.maxTfjsN.toLocaleString('en-US')})`);
        const times = timedSteps(model, optimizer, x, plan, rng);
        const ms = median(times);
        tfjsCell = ms.toFixed(0);
        ratioCell = typeof torchTimes === 'string' ? 'n/a' : `**${(ms / median(torchTimes)).toFixed(1)}×**`;
      } catch (error) {
        tfjsCell = (error as Error).message.startsWith('not run') ? (error as Error).message : `failed: ${(error as Error).message.slice(0, 80)}`;
        ratioCell = 'n/a';
      }
      const torchCell = typeof torchTimes === 'string' ? `failed: ${torchTimes.slice(0, 80)}` : median(torchTimes).toFixed(0);
      ctx.log(`${zoo.name} N=${plan.n}: torch ${torchCell} ms, tfjs ${tfjsCell} ms`);
      rows.push(`| ${zoo.name} | ${params.toLocaleString('en-US')} | ${plan.n.toLocaleString('en-US')} | ${plan.warmup}+${plan.steps} | ${torchCell} | ${tfjsCell} | ${ratioCell} |`);
    }
    if (!ctx.quick && bags.has(PROFILE_N)) {
      try {
        profiles.push(`- **${zoo.name}** (N=${PROFILE_N}): ${await topKernels(model, optimizer, bags.get(PROFILE_N) as tf.Tensor2D, rng)}`);
      } catch (error) {
        profiles.push(`- **${zoo.name}**: profile failed (${(error as Error).message.slice(0, 80)})`);
      }
    }
    optimizer.dispose();
    model.dispose();
  }
  torch.close();
  bags.forEach((x) => x.dispose());

  const loadEnd = loadavg()[0] ?? 0;
  const noisy = Math.max(loadStart, loadEnd) > availableParallelism();
  const markdown = [
    '## MIL zoo: one training step per aggregator, tfjs-wasm vs PyTorch',
    '',
    `One step = forward, the method's weighted losses, backward and Adam (lr 1e-4) on one bag [N, ${D}] with label 1, C = ${CLASSES}, ` +
      'default (paper) sizes with dropout off on both sides; `loss.dataSync()` inside the timing. ' +
      `PyTorch: the parity references of test/reference/ (Debian torch ${torch.version}, float32, \`test/bench/torch_zoo_step.py\`, torch threads 1, OpenBLAS default threads). ` +
      `milkit: tfjs ${info.tfjsVersion} ${info.backend}${info.wasm ? ` (SIMD ${info.wasm.simd ? 'on' : 'off'}, ${info.wasm.threads} thread)` : ''}, ` +
      `BLAS ${info.blas.active ? `on (${info.blas.library}, ${info.blas.threads} threads; kernels ${info.kernelOverrides.join(', ')})` : `off (${info.blas.reason})`}, matMul gradient ${info.matmulGrad}. ` +
      'Losses: abmil/transmil CE; clam 0.7·CE + 0.3·instance (SVM, k = 8); dsmil 0.5·BCE + 0.5·max-instance BCE; dtfd-mil (AFS, G = 4) tier-1 + tier-2 CE, no clipping on either side.',
    '',
    ...(noisy ? [`**Noisy run:** 1-minute load average ${loadStart.toFixed(1)} → ${loadEnd.toFixed(1)} on ${availableParallelism()} cores (other processes shared the machine); ratios are indicative.`, ''] : []),
    '| aggregator | parameters | N | warmup+steps | torch ms | milkit ms | milkit ÷ torch |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
    ...(profiles.length ? ['Where the milkit step goes (one `tf.profile`d step, kernel time summed per kernel):', ...profiles, ''] : []),
  ].join('\n');
  return { markdown };
}
