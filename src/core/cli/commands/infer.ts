// `milkit infer <run> --slides <slides...> [--mode all|screened]`: a trained run scores whole-slide images
// directly — every tissue patch cropped and embedded (all, HDMIL†), or only those the run's pre-screener keeps
// from the 1.25× thumbnails (screened, HDMIL) — with per-stage timing in the layout of HDMIL's Table 2
// (docs/predict.md#inference-on-slides). Outputs are predict's plus timing.csv.
//
// The slide and model code (sharp, h5wasm, ONNX Runtime, TensorFlow.js) loads inside the action.
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { loadActionCode, type CliApp } from '../app.js';
import { parseOptionPairs } from './data.js';
import { number, thresholdOf } from './predict.js';

interface InferFlags {
  readonly slides: string[];
  readonly mode: string;
  readonly job?: string;
  readonly fold?: string;
  readonly reader: string;
  readonly detector: string;
  readonly extractor?: string;
  readonly readerSet: string[];
  readonly detectorSet: string[];
  readonly extractorSet: string[];
  readonly patchSize?: string;
  readonly magnification?: string;
  readonly mpp?: string;
  readonly baseMagnification?: string;
  readonly baseMpp?: string;
  readonly threshold?: string;
  readonly bootstrap?: string;
  readonly out?: string;
  readonly heatmaps?: boolean;
  readonly topK?: string;
  readonly percentiles?: boolean;
  readonly blur?: string;
  readonly alpha?: string;
  readonly track?: boolean;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function register(program: Command, app: CliApp): void {
  program
    .command('infer')
    .description('score whole-slide images with a trained run: every tissue patch (--mode all, HDMIL†) or only those its pre-screener keeps (--mode screened, HDMIL); Table 2 stage timing')
    .argument('<run>', 'run folder written by milkit run (outputs/<name>/<hash>), or a sweep folder with --job')
    .requiredOption('--slides <slides...>', 'slide files, folders of slides, or a slide table CSV (slide_id, slide_file; case_id and label give metrics)')
    .option('--mode <mode>', 'all: crop and embed every tissue patch; screened: the run\'s trained pre-screener picks the patches from 1.25× thumbnails', 'all')
    .option('--job <id>', 'with a sweep folder: the job (jobs/<id>) whose run infers')
    .option('--fold <k>', 'use this fold only (default: every trained fold, probabilities averaged)')
    .option('--reader <name>', 'slide reader plugin: openslide or tiff', 'openslide')
    .option('--detector <name>', 'tissue detector plugin', 'clam')
    .option('--extractor <name>', 'feature extractor plugin (default: the training features\' extractor when it needs no model file)')
    .option('--reader-set <key=value>', 'a reader option (repeatable)', collect, [] as string[])
    .option('--detector-set <key=value>', 'a tissue detector option (repeatable)', collect, [] as string[])
    .option('--extractor-set <key=value>', 'a feature extractor option (repeatable), e.g. model=encoder.onnx', collect, [] as string[])
    .option('--patch-size <px>', 'patch side at the target magnification (default: the training features\', else 256)')
    .option('--magnification <x>', 'target magnification (default: the training features\', else 20)')
    .option('--mpp <um>', 'target microns per pixel (instead of --magnification)')
    .option('--base-magnification <x>', 'objective power of slides whose file does not record it')
    .option('--base-mpp <um>', 'microns per pixel of slides whose file does not record it')
    .option('--threshold <t>', 'decision threshold on the positive class (binary): a probability (default 0.5) or "youden"')
    .option('--bootstrap <n>', 'patient-bootstrap resamples for 95% CIs when the slides have labels (default 1000; 0 = none)')
    .option('-o, --out <dir>', 'output folder (default <run>/infer/<mode>)')
    .option('--heatmaps', 'instance scores (CSV, GeoJSON) and heatmap PNGs of the patches the model saw')
    .option('--top-k <k>', 'patches in the montage (default 16)')
    .option('--no-percentiles', 'colour raw (min-max scaled) scores instead of percentile ranks')
    .option('--blur <sigma>', 'Gaussian blur of the heat layer in output pixels (default 0)')
    .option('--alpha <a>', 'opacity of the heat colours (default 0.5)')
    .option('--no-track', 'do not log to the run\'s tracker')
    .action(async (runDir: string, flags: InferFlags) => {
      if (flags.mode !== 'all' && flags.mode !== 'screened') throw new ConfigError('bad-option', `--mode: expected all or screened, got ${JSON.stringify(flags.mode)}.`, { hint: 'all reads every tissue patch (HDMIL†); screened needs a run with a trained pre-screener (HDMIL).' });
      const positive = (flag: string, raw: string | undefined): number | undefined => number(raw, flag, (v) => v > 0, 'a positive number');
      const fold = number(flags.fold, '--fold', (v) => Number.isInteger(v) && v >= 0, 'a fold index (0, 1, ...)');
      const patchSize = number(flags.patchSize, '--patch-size', (v) => Number.isInteger(v) && v > 0, 'whole pixels');
      const bootstrap = number(flags.bootstrap, '--bootstrap', (v) => Number.isInteger(v) && v >= 0, 'a whole number of resamples') ?? 1000;
      const topK = number(flags.topK, '--top-k', (v) => Number.isInteger(v) && v > 0, 'a positive whole number') ?? 16;
      const threshold = thresholdOf(flags.threshold);
      const [{ runInfer }, { DEFAULT_HEATMAP_OPTIONS }] = await loadActionCode('infer', () => Promise.all([import('../../engine/infer.js'), import('../../eval/heatmap.js')]));
      const blur = number(flags.blur, '--blur', (v) => v >= 0, 'a sigma ≥ 0') ?? DEFAULT_HEATMAP_OPTIONS.blur;
      const alpha = number(flags.alpha, '--alpha', (v) => v >= 0 && v <= 1, 'an opacity in [0, 1]') ?? DEFAULT_HEATMAP_OPTIONS.alpha;
      const registry = app.createRegistry();
      const magnification = positive('--magnification', flags.magnification);
      const mpp = positive('--mpp', flags.mpp);
      const baseMagnification = positive('--base-magnification', flags.baseMagnification);
      const baseMpp = positive('--base-mpp', flags.baseMpp);
      const outDir = path.resolve(app.cwd, flags.out ?? path.join(runDir, ...(flags.job !== undefined ? ['jobs', flags.job] : []), 'infer', flags.mode));
      const result = await runInfer({
        runDir, ...(flags.job !== undefined ? { job: flags.job } : {}), ...(fold !== undefined ? { fold } : {}),
        slides: flags.slides, mode: flags.mode,
        reader: { ...(await parseOptionPairs(flags.readerSet)), name: flags.reader },
        detector: { ...(await parseOptionPairs(flags.detectorSet)), name: flags.detector },
        ...(flags.extractor !== undefined ? { extractor: { ...(await parseOptionPairs(flags.extractorSet)), name: flags.extractor } } : {}),
        patching: {
          ...(patchSize !== undefined ? { patchSize } : {}), ...(magnification !== undefined ? { magnification } : {}), ...(mpp !== undefined ? { mpp } : {}),
          ...(baseMagnification !== undefined ? { baseMagnification } : {}), ...(baseMpp !== undefined ? { baseMpp } : {}),
        },
        threshold, bootstrap, outDir,
        ...(flags.heatmaps ? { heatmaps: { options: { ...DEFAULT_HEATMAP_OPTIONS, percentiles: flags.percentiles !== false, blur, alpha }, topK } } : {}),
        track: flags.track !== false, registry, logger: app.logger, cwd: app.cwd, env: app.env,
        createTracker: async (run) => (run.resolved.config.tracking.enabled ? app.services.createTracker(run.resolved.config.tracking, { registry, logger: app.logger, cwd: app.cwd, env: app.env }) : undefined),
      });
      const shown = path.relative(app.cwd, result.outDir) || result.outDir;
      app.io.out(result.table);
      app.io.out(`${shown}/predictions.csv: ${result.rows.length} slides, threshold ${result.threshold.toFixed(4)}; ${shown}/timing.csv`);
      for (const [name, value] of Object.entries(result.metrics)) {
        const ci = result.intervals[name];
        app.io.out(`  ${name.padEnd(26)} ${value.value === null ? `n/a (${value.reason ?? 'undefined'})` : value.value.toFixed(4)}${ci ? `  [${ci.low.toFixed(4)}, ${ci.high.toFixed(4)}]` : ''}`);
      }
      if (result.heatmapSlides > 0) app.io.out(`  heatmaps of ${result.heatmapSlides} slides in ${shown}/heatmaps`);
      if (result.runId) app.io.out(`  tracked as run ${result.runId}`);
    });
}
