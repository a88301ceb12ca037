// HDMIL's two inference modes on one fold of synthetic Camelyon-like data with D = 1,024 features on tfjs-wasm:
// stage 1 (DMIN + CKA, HDMIL losses) and stage 2 (LIPN, strategy gate-distillation) trained by the engine's one
// trainer loop, then per-slide time per pipeline stage and kept-instance rates of HDMIL† (all instances) and
// HDMIL (screened) on the same test slides. Features are precomputed, so the time HDMIL saves on reading/embedding patches
// at 20× is not in these numbers: they compare pre-screen + feature read + DMIN only.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtinManifest } from '../../plugins/index.js';
import { MilModel } from '../../src/core/engine/model.js';
import { trainFold } from '../../src/core/engine/trainer.js';
import { TrainSection } from '../../src/core/engine/schema.js';
import { evaluate, type EvaluationResult } from '../../src/core/engine/evaluate.js';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { Rng } from '../../src/core/runtime/random.js';
import { Registry, type BagSource, type SlideRecord, type Strategy } from '../../src/registry/index.js';
import type { BenchContext, BenchResult } from './run.js';

const D = 1024;
const CLASSES = 2;

function row(label: string, result: EvaluationResult): string {
  const t = result.stageMs;
  const kept = result.screened ? result.kept.prescreener : result.kept.aggregator;
  const auc = result.metrics.auc?.value;
  return `| ${label} | ${auc === null || auc === undefined ? 'n/a' : auc.toFixed(3)} | ${kept === undefined ? 'n/a' : `${(100 * kept).toFixed(1)}%`} | ${t.prescreen.toFixed(1)} | ${t.read.toFixed(1)} | ${t.aggregate.toFixed(1)} | ${t.total.toFixed(1)} |`;
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const runtime = await initRuntime(RuntimeSection.parse({ backend: 'wasm' }), { logger: silentLogger });
  const registry = new Registry(builtinManifest());
  const slidesTotal = ctx.quick ? 12 : 32;
  const instances: [number, number] = ctx.quick ? [200, 300] : [1500, 3000];
  const dataset = await registry.resolve('dataset', { name: 'synthetic-camelyon', slides: slidesTotal, instances, featureDim: D, thumbSignal: 0.6, tumorFraction: [0.05, 0.3] }, { key: 'data.dataset' });
  const source = (await registry.create(dataset, { seed: 0, logger: silentLogger, baseDir: ctx.root })) as BagSource;
  const byLabel = [0, 1].map((label) => source.slides.filter((s) => s.label === label));
  // Stratified: half of each class to train, a quarter to val, a quarter to test.
  const part = (from: number, to: number): SlideRecord[] => byLabel.flatMap((slides) => slides.slice(Math.floor(from * slides.length), Math.floor(to * slides.length)));
  const [train, val, test] = [part(0, 0.5), part(0.5, 0.75), part(0.75, 1)];

  const slots = {
    aggregator: await registry.resolve('aggregator', { name: 'dmin' }, { key: 'model.aggregator' }),
    classifier: await registry.resolve('classifier', { name: 'cka' }, { key: 'model.classifier' }),
    losses: {
      ce: { ...(await registry.resolve('loss', { name: 'cross-entropy' }, { key: 'model.losses.ce' })), weight: 0.7 },
      clu: { ...(await registry.resolve('loss', { name: 'clam-instance' }, { key: 'model.losses.clu' })), weight: 0.3 },
      mse: { ...(await registry.resolve('loss', { name: 'embedding-mse' }, { key: 'model.losses.mse' })), weight: 0.5 },
      kl: { ...(await registry.resolve('loss', { name: 'logit-kl' }, { key: 'model.losses.kl' })), weight: 0.5 },
      rate: { ...(await registry.resolve('loss', { name: 'keep-rate', target: 0.6 }, { key: 'model.losses.rate' })), weight: 2 },
    },
  };
  const prescreener = await registry.resolve('prescreener', { name: 'lipn' }, { key: 'model.prescreener' });
  const model = new MilModel(registry, { ...slots, prescreener }, { inputDim: D, numClasses: CLASSES }, new Rng('hdmil-bench'), silentLogger);
  const auc = registry.create(await registry.resolve('metric', 'auc', { key: 'eval.metrics' }), { numClasses: CLASSES });
  const metrics = [{ name: 'auc', metric: auc }];
  const dir = mkdtempSync(join(tmpdir(), 'milkit-hdmil-bench-'));
  try {
    const stageOneEpochs = ctx.quick ? 2 : 10;
    ctx.log(`stage 1 (DMIN): ${train.length} train / ${val.length} val slides, ${stageOneEpochs} epochs`);
    const stageOne = TrainSection.parse({ epochs: stageOneEpochs, optimizer: { name: 'adam', lr: 3e-4, weightDecay: 1e-5 }, balancedSampling: true, earlyStopping: { patience: 100 } });
    await trainFold({ model, source, train, val, numClasses: CLASSES, section: stageOne, metrics, rng: new Rng('fold-0'), logger: silentLogger, checkpointDir: join(dir, 'stage1'), configHash: 'bench', fold: 0, resume: false });

    const stageTwoEpochs = ctx.quick ? 2 : 8;
    ctx.log(`stage 2 (LIPN): ${stageTwoEpochs} epochs max, patience 5`);
    const stageTwo = TrainSection.parse({ epochs: stageTwoEpochs, optimizer: { name: 'adam', lr: 1e-3, weightDecay: 1e-5 }, balancedSampling: true, earlyStopping: { patience: 5 } });
    const rng = new Rng('fold-0/eval');
    const allFirst = await evaluate({ model, source, slides: test, numClasses: CLASSES, metrics, rng, warmup: true });
    const strategy: Strategy = registry.create(await registry.resolve('strategy', { name: 'gate-distillation' }, { key: 'stages[1].strategy' }), { model, numClasses: CLASSES, rng, logger: silentLogger });
    model.useLosses(registry, { ...slots, losses: { ce: slots.losses.ce } });
    model.screening = true;
    const trainable = model.namedTrainable().filter(([name]) => name.startsWith('prescreener.'));
    const lipn = await trainFold({
      model, source, train, val, numClasses: CLASSES, section: stageTwo, metrics, rng: new Rng('fold-0/lipn'), logger: silentLogger, checkpointDir: join(dir, 'stage2'),
      configHash: 'bench', fold: 0, resume: false, strategy, trainable, views: ['thumbs'],
    });
    const screenedFirst = await evaluate({ model, source, slides: test, numClasses: CLASSES, metrics, rng, warmup: true });

    // Timing: alternate the two modes on the same test slides and keep each mode's median pass (the machine is shared).
    const repeats = ctx.quick ? 1 : 5;
    const allPasses: EvaluationResult[] = [allFirst];
    const screenedPasses: EvaluationResult[] = [screenedFirst];
    for (let r = 0; r < repeats; r += 1) {
      model.screening = false;
      allPasses.push(await evaluate({ model, source, slides: test, numClasses: CLASSES, metrics, rng: new Rng(r), warmup: true }));
      model.screening = true;
      screenedPasses.push(await evaluate({ model, source, slides: test, numClasses: CLASSES, metrics, rng: new Rng(r), warmup: true }));
      ctx.log(`pass ${r + 1}: all ${allPasses.at(-1)?.stageMs.total.toFixed(1)} ms/slide, screened ${screenedPasses.at(-1)?.stageMs.total.toFixed(1)} ms/slide`);
    }
    const median = (passes: EvaluationResult[]): EvaluationResult => [...passes].sort((a, b) => a.stageMs.total - b.stageMs.total)[Math.floor(passes.length / 2)] as EvaluationResult;
    const bestAll = median(allPasses);
    const bestScreened = median(screenedPasses);
    const meanInstances = test.reduce((s, slide) => s + Number(slide.meta['num_instances']), 0) / Math.max(test.length, 1);
    const saving = 1 - bestScreened.stageMs.total / bestAll.stageMs.total;
    const lipnPerInstance = bestScreened.stageMs.prescreen / meanInstances; // ms per thumbnail
    const dminSaved = bestAll.stageMs.aggregate - bestScreened.stageMs.aggregate; // ms per slide
    const markdown = [
      '## HDMIL inference modes (one synthetic fold, tfjs-wasm)',
      '',
      `${test.length} test slides, ${meanInstances.toFixed(0)} instances per slide on average, D = ${D}; backend ${runtime.backend}.`,
      `Stage 1: DMIN + CKA (K = 12), HDMIL losses 0.7/0.3/0.5/0.5/2, r = 0.6, ${stageOneEpochs} epochs; stage 2: LIPN, best of ${lipn.epochsRun} epochs (epoch ${lipn.bestEpoch + 1}).`,
      '',
      '| mode | AUC | kept | pre-screen ms | read ms | DMIN ms | total ms/slide |',
      '|---|---|---|---|---|---|---|',
      row('HDMIL† (all instances; kept = DMIN gates S > 0)', bestAll),
      row('HDMIL (LIPN mask → DMIN on kept; kept = LIPN)', bestScreened),
      '',
      `Per-slide time saved by screening: ${(100 * saving).toFixed(1)}% (median of ${repeats + 1} passes per mode, load average ${loadavg()[0]?.toFixed(1)} at the end).`,
      `Every pass (ms/slide, in order): all instances ${allPasses.map((p) => p.stageMs.total.toFixed(1)).join(', ')}; screened ${screenedPasses.map((p) => p.stageMs.total.toFixed(1)).join(', ')}.`,
      'On a loaded 2-core machine these vary by up to 2× between passes; the sign of the saving is not reliable unless the two lists separate.',
      `Screening dropped ${(100 * (1 - (bestScreened.kept.prescreener ?? 1))).toFixed(1)}% of the instances and saved ${dminSaved.toFixed(1)} ms of DMIN per slide, against`,
      `${bestScreened.stageMs.prescreen.toFixed(1)} ms of LIPN (${(1000 * lipnPerInstance).toFixed(1)} µs per thumbnail). The features are precomputed: reading and`,
      'embedding patches at 20× — what screening avoids in the paper, and far costlier than DMIN — is not in these numbers',
      '(`evaluate({ read })` times a real reader/extractor as the `read` stage when one exists).',
      '',
      `Command: \`npm run bench -- hdmil\`${ctx.quick ? ' (BENCH_QUICK=1)' : ''}.`,
    ].join('\n');
    return { markdown };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
