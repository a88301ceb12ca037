// `npm run bench -- infer`: HDMIL's Table 2 on synthetic slides. A DMIN + LIPN run (target keep rate r = 0.6, as
// trained) is trained on features of a cohort of small synthetic slides embedded by a ResNet-18-like ONNX encoder at
// 224 px (random weights, test/reference/onnx_encoder.py), then `milkit infer` scores large slides in both modes —
// HDMIL† (every tissue patch cropped and embedded) and HDMIL (only what LIPN keeps from the 1.25× thumbnails) — and
// a larger cohort of small slides for the AUC. Everything runs through the CLI from the sources, as a user would.
//
// Sizes (environment): BENCH_INFER_SLIDES (8 large slides), BENCH_INFER_SIZE (20000 px wide), BENCH_INFER_TRAIN (32
// small training slides), BENCH_INFER_AUC (32 small slides scored for the AUC), BENCH_INFER_SMALL (4096 px),
// BENCH_INFER_EPOCHS (DMIN epochs, 20) and BENCH_INFER_LIPN_EPOCHS (15). Slides and the encoder are cached under
// the OS temp folder.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { silentLogger } from '../../src/core/logger.js';
import { writeSyntheticSlides } from '../../src/core/slides/synthetic-slides.js';
import type { BenchContext, BenchResult } from './run.js';

const CACHE = path.join(tmpdir(), 'milkit-bench-infer');
const int = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);

async function milkit(ctx: BenchContext, args: readonly string[], cwd: string): Promise<string> {
  const child = spawn(process.execPath, [path.join(ctx.root, 'bin/milkit.mjs'), ...args], { cwd, env: { ...process.env, MILKIT_SOURCE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { err = (err + chunk.toString()).slice(-4000); });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`milkit ${args.slice(0, 2).join(' ')} exited ${code}: ${err}`);
  return out;
}

async function cohort(ctx: BenchContext, name: string, slides: number, size: number, seed: number): Promise<string> {
  const dir = path.join(CACHE, `${name}-${slides}x${size}-s${seed}`);
  if (existsSync(path.join(dir, 'slides.csv'))) return dir;
  ctx.log(`generating ${slides} synthetic slides of ${size} px in ${dir} ...`);
  await rm(dir, { recursive: true, force: true });
  await writeSyntheticSlides({ outDir: dir, slides, size, seed, tumourFraction: 0.5, format: 'svs', quality: 80, tileSize: 256, mpp: 0.5, magnification: 20, maskDownsample: 64, logger: silentLogger });
  return dir;
}

const SLIDE_ARGS = ['--reader', 'tiff', '--detector-set', 'downsample=16', '--detector-set', 'minTissueArea=0.5'];

interface ModeRun {
  readonly timing: Array<Record<string, string>>;
  readonly probs: Map<string, number>;
  readonly auc: number | null;
}

function readMode(dir: string): ModeRun {
  const timing = parseCsv(readFileSync(path.join(dir, 'timing.csv'), 'utf8'), { columns: true }) as Array<Record<string, string>>;
  const predictions = parseCsv(readFileSync(path.join(dir, 'predictions.csv'), 'utf8'), { columns: true }) as Array<Record<string, string>>;
  const positive = Object.keys(predictions[0] ?? {}).filter((k) => k.startsWith('p_')).at(-1) as string;
  const metrics = JSON.parse(readFileSync(path.join(dir, 'metrics.json'), 'utf8')) as { metrics: Record<string, { value: number | null }> };
  return { timing, probs: new Map(predictions.map((p) => [p.slide_id as string, Number(p[positive])])), auc: metrics.metrics.auc?.value ?? null };
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const large = int('BENCH_INFER_SLIDES', ctx.quick ? 2 : 8);
  const size = int('BENCH_INFER_SIZE', ctx.quick ? 6144 : 20000);
  const trainSlides = int('BENCH_INFER_TRAIN', ctx.quick ? 12 : 32);
  const aucSlides = int('BENCH_INFER_AUC', ctx.quick ? 12 : 32);
  const small = int('BENCH_INFER_SMALL', 4096);
  const epochs = int('BENCH_INFER_EPOCHS', ctx.quick ? 8 : 20);
  const lipnEpochs = int('BENCH_INFER_LIPN_EPOCHS', ctx.quick ? 4 : 15);
  await mkdir(CACHE, { recursive: true });
  const model = path.join(CACHE, 'resnet18-like-224.onnx');
  const fromExtractBench = path.join(tmpdir(), 'milkit-bench-extract', 'resnet18-like-224.onnx');
  if (!existsSync(model)) {
    if (existsSync(fromExtractBench)) await copyFile(fromExtractBench, model);
    else execFileSync(ctx.python, [path.join(ctx.root, 'test/reference/onnx_encoder.py'), 'resnet18', model], { stdio: 'inherit' });
  }
  const encoder = ['--extractor', 'onnx', '--extractor-set', `model=${model}`, '--extractor-set', 'batchSize=16'];
  const train = await cohort(ctx, 'train', trainSlides, small, 11);
  const feats = path.join(train, 'feats');
  if (!existsSync(path.join(feats, 'process_list.csv'))) {
    ctx.log('extracting the training cohort (ResNet-18-like, 224 px) ...');
    await milkit(ctx, ['extract', path.join(train, 'slides.csv'), '--out', feats, ...SLIDE_ARGS, ...encoder], train);
  }
  const work = path.join(CACHE, `run-std-${trainSlides}-${epochs}-${lipnEpochs}`);
  await mkdir(work, { recursive: true });
  const config = path.join(work, 'hdmil.yaml');
  // experiments/hdmil.yaml's model, losses and stages on these features with fewer epochs; r = 0.6 as the paper
  // trains Camelyon16 (kSample 8: the small training slides hold ~100 patches). inputNorm standardise: the
  // random-weight encoder's features barely vary between patches (per-dimension std ≈ 0.005 around means ≈ 0.04),
  // and on them DMIN's attention logits never leave the value the rate loss sets under Gumbel noise, so its
  // evaluation gates (S > 0) keep nothing (docs/methods/hdmil.md#input-standardisation).
  await writeFile(config, [
    'name: infer-bench', 'seed: 0',
    'data:', `  dataset: { name: features-h5, slideTable: ${path.join(train, 'slides.csv')}, featuresDir: ${path.join(feats, 'h5_files')} }`,
    'model:', '  aggregator: { name: dmin, kSample: 8, subtyping: false, selfDistill: true, inputNorm: standardise }', '  classifier: { name: cka }', '  prescreener: { name: lipn }',
    '  losses:', '    ce: { name: cross-entropy, weight: 0.7 }', '    instance: { name: clam-instance, weight: 0.3 }', '    mse: { name: embedding-mse, weight: 0.5 }',
    '    kl: { name: logit-kl, weight: 0.5 }', '    rate: { name: keep-rate, target: 0.6, weight: 2 }',
    `train: { epochs: ${epochs}, optimizer: { name: adam, lr: 0.0003, weightDecay: 0.00001 }, balancedSampling: true }`,
    'stages:', '  - name: dmin', '  - name: lipn', '    from: dmin', '    trains: [prescreener]', '    modes: { aggregator: train }',
    '    strategy: { name: gate-distillation }', '    losses: { ce: { name: cross-entropy } }', '    stream: prescreener',
    // LIPN at lr 1e-3 instead of the paper's 1e-4: the paper trains up to 200 epochs, this schedule 15, and at 1e-4
    // LIPN was still keeping almost nothing after 5–10 epochs (it first learns to drop every patch, DMIN's targets being mostly 0).
    `    train: { epochs: ${lipnEpochs}, optimizer: { name: adam, lr: 0.001, weightDecay: 0.00001 }, balancedSampling: true }`,
    'split: { mode: kfold, folds: 4, valFraction: 0.2 }', 'tracking: { enabled: false }', 'eval: { metrics: [auc, accuracy], bootstrap: 0 }',
  ].join('\n'));
  const outputs = path.join(work, 'outputs', 'infer-bench');
  if (!existsSync(outputs)) {
    ctx.log(`training DMIN (${epochs} epochs) + LIPN (${lipnEpochs} epochs), one fold ...`);
    await milkit(ctx, ['run', config, '--folds', '0'], work);
  }
  const runDir = path.join(outputs, readdirSync(outputs)[0] as string);

  const big = await cohort(ctx, 'large', large, size, 23);
  const scored = await cohort(ctx, 'auc', aucSlides, small, 37);
  const infer = async (slides: string, mode: string, out: string): Promise<ModeRun> => {
    await milkit(ctx, ['infer', runDir, '--slides', path.join(slides, 'slides.csv'), '--mode', mode, ...SLIDE_ARGS, ...encoder, '--bootstrap', '0', '--no-track', '-o', out], work);
    return readMode(out);
  };
  ctx.log(`inferring ${large} slides of ${size} px in both modes ...`);
  const allLarge = await infer(big, 'all', path.join(work, 'large-all'));
  const screenedLarge = await infer(big, 'screened', path.join(work, 'large-screened'));
  ctx.log(`scoring ${aucSlides} small slides in both modes ...`);
  const allSmall = await infer(scored, 'all', path.join(work, 'auc-all'));
  const screenedSmall = await infer(scored, 'screened', path.join(work, 'auc-screened'));

  const mean = (r: ModeRun, stage: string): number => Number(r.timing.find((t) => t.slide_id === 'mean')?.[`${stage}_s`] ?? Number.NaN);
  const kept = Number(screenedLarge.timing.find((t) => t.slide_id === 'mean')?.kept_fraction ?? Number.NaN);
  const saving = (stage: string): number => 1 - mean(screenedLarge, stage) / mean(allLarge, stage);
  const deltas = [...allLarge.probs, ...allSmall.probs].map(([id, p]) => Math.abs(p - (screenedLarge.probs.get(id) ?? screenedSmall.probs.get(id) ?? Number.NaN)));
  const meanDelta = deltas.reduce((a, b) => a + b, 0) / deltas.length;
  const aucDrop = (allSmall.auc ?? Number.NaN) - (screenedSmall.auc ?? Number.NaN);
  const s = (v: number): string => v.toFixed(2);
  const pct = (v: number): string => `${(100 * v).toFixed(1)} %`;
  const row = (name: string, r: ModeRun, lipn: boolean): string => `| ${name} | ${s(mean(r, 'tissue'))} | ${lipn ? s(mean(r, 'lipn')) : '—'} | ${s(mean(r, 'crop'))} | ${s(mean(r, 'fea'))} | ${s(mean(r, 'dmin'))} | ${s(mean(r, 'total'))} |`;
  // A model that learned nothing (DMIN's gates all closed, LIPN keeping nothing) gives the same constant probability in
  // both modes and a huge "saving": every check would pass vacuously, so they count only for a model that works.
  const working = (allSmall.auc ?? 0) >= 0.75 && kept >= 0.05 && kept <= 0.95;
  const check = (ok: boolean): string => (!working ? '— (not meaningful: see the model line)' : ok ? '✓' : '✗');
  const markdown = [
    `## infer: HDMIL's Table 2 on synthetic slides (${ctx.quick ? 'BENCH_QUICK=1, reduced' : 'full'})`,
    '',
    `Command: \`npm run bench -- infer\`. ${large} slides of ${size} × ${Math.round(size * 0.75)} px (20×, 0.5 µm/px), 256-px patches, ResNet-18-like ONNX encoder at 224 px (512-d, random weights); DMIN + LIPN trained on ${trainSlides} slides of ${small} px (r = 0.6 as trained, ${epochs} + ${lipnEpochs} epochs, LIPN lr 1e-3, DMIN inputNorm standardise, one fold); AUC over ${aucSlides} further slides of ${small} px. Seconds per slide, mean over the large slides:`,
    '',
    '| method | Tissue | LIPN | Crop | Fea | DMIN | Total |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('HDMIL† (all patches)', allLarge, false),
    row('HDMIL (screened)', screenedLarge, true),
    `| saving | | | ${pct(saving('crop'))} | ${pct(saving('fea'))} | | **${pct(saving('total'))}** |`,
    '| paper, Camelyon16 (HDMIL† → HDMIL) | | | −19 % | −42 % | | 23.46 → 16.75 s (−28.6 %) |',
    '',
    `- model: ${working ? 'works' : `**degenerate** (HDMIL† AUC ${allSmall.auc?.toFixed(2)} < 0.75 or LIPN keeps ${pct(kept)}, outside 5–95 %); the timings show the pipeline's mechanics only`}`,
    `- kept fraction (LIPN): ${pct(kept)}; Crop and Fea savings ${pct(saving('crop'))} / ${pct(saving('fea'))} against 1 − kept = ${pct(1 - kept)}`,
    `- total per slide ${check(saving('total') >= 0.3)} ≥ 30 % lower: ${pct(saving('total'))}`,
    `- mean |Δp| between the modes over ${deltas.length} slides ${check(meanDelta <= 0.02)} ≤ 0.02: ${meanDelta.toFixed(4)}`,
    `- AUC on ${aucSlides} small slides: HDMIL† ${allSmall.auc?.toFixed(4)}, HDMIL ${screenedSmall.auc?.toFixed(4)} ${check(aucDrop <= 0.02)} (drop ≤ 0.02)`,
  ].join('\n');
  return { markdown };
}
