// `milkit predict <run> [--data <dataset config or folder>]`: a trained run scores a cohort of feature files
// (docs/predict.md): predictions.csv, metrics with patient-bootstrap CIs and roc.png when labels exist,
// heatmaps/instance scores with --heatmaps, and an MLflow run tagged with the training run.
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { loadActionCode, type CliApp } from '../app.js';

interface PredictFlags {
  readonly data?: string;
  readonly job?: string;
  readonly fold?: string;
  readonly split?: string;
  readonly threshold?: string;
  readonly bootstrap?: string;
  readonly out?: string;
  readonly heatmaps?: boolean;
  readonly topK?: string;
  readonly patchSize?: string;
  readonly thumbnails?: string;
  readonly slides?: string;
  readonly slideReader?: string;
  readonly percentiles?: boolean;
  readonly blur?: string;
  readonly alpha?: string;
  readonly track?: boolean;
}

export function number(text: string | undefined, flag: string, check: (v: number) => boolean, expected: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || !check(value)) throw new ConfigError('bad-option', `${flag}: expected ${expected}, got ${JSON.stringify(text)}.`);
  return value;
}

export function thresholdOf(text: string | undefined): { rule: 'fixed' | 'youden'; value: number } {
  if (text === undefined) return { rule: 'fixed', value: 0.5 };
  if (text === 'youden') return { rule: 'youden', value: Number.NaN };
  const value = number(text, '--threshold', (v) => v >= 0 && v <= 1, 'a probability in [0, 1] or "youden"') as number;
  return { rule: 'fixed', value };
}

export function register(program: Command, app: CliApp): void {
  program
    .command('predict')
    .description('score a cohort with a trained run (one fold or the fold ensemble): predictions.csv, metrics with CIs, ROC, heatmaps')
    .argument('<run>', 'run folder written by milkit run (outputs/<name>/<hash>), or a sweep folder with --job')
    .option('--data <config-or-folder>', 'dataset config (YAML/JSON with data.dataset, dataset, or a plugin reference) or a folder of feature files with slides.csv; default: the run\'s own dataset')
    .option('--job <id>', 'with a sweep folder: the job (jobs/<id>) whose run predicts; needed when the sweep has several')
    .option('--fold <k>', 'use this fold only (default: every trained fold, probabilities averaged)')
    .option('--split <part>', 'with the run\'s own dataset: each fold scores its own train, val or test partition')
    .option('--threshold <t>', 'decision threshold on the positive class (binary): a probability (default 0.5) or "youden" (Youden\'s J on the folds\' validation predictions)')
    .option('--bootstrap <n>', 'patient-bootstrap resamples for 95% CIs (default 1000; 0 = none)')
    .option('-o, --out <dir>', 'output folder (default <run>/predict/<cohort name>)')
    .option('--heatmaps', 'write per-slide instance scores (CSV, GeoJSON), heatmap PNGs and top-k montages (aggregators with instance scores)')
    .option('--top-k <k>', 'patches in the montage (default 16)')
    .option('--patch-size <px>', 'level-0 patch side for heatmaps (default: from the feature files, else the coordinate step)')
    .option('--thumbnails <dir>', 'folder of <slide_id>.png/.jpg thumbnails to draw heatmaps over (default: a blank canvas)')
    .option('--slides <dir>', 'folder of the slides (<slide_id>.svs/.tif/...): heatmaps over their thumbnail and the montage from their level-0 patches')
    .option('--slide-reader <name>', 'slide reader plugin for --slides: openslide or tiff (default openslide)')
    .option('--no-percentiles', 'colour raw (min-max scaled) scores instead of percentile ranks')
    .option('--blur <sigma>', 'Gaussian blur of the heat layer in output pixels (default 0)')
    .option('--alpha <a>', 'opacity of the heat colours (default 0.5)')
    .option('--no-track', 'do not log the prediction to the run\'s tracker')
    .action(async (runDir: string, flags: PredictFlags) => {
      const [{ runPredict, DEFAULT_HEATMAP_OPTIONS }] = await loadActionCode('predict', () => Promise.all([import('../../engine/predict-run.js')]));
      const fold = number(flags.fold, '--fold', (v) => Number.isInteger(v) && v >= 0, 'a fold index (0, 1, ...)');
      if (flags.split !== undefined && !['train', 'val', 'test'].includes(flags.split)) throw new ConfigError('bad-option', `--split: expected train, val or test, got ${JSON.stringify(flags.split)}.`);
      const bootstrapFlag = number(flags.bootstrap, '--bootstrap', (v) => Number.isInteger(v) && v >= 0, 'a whole number of resamples');
      const topK = number(flags.topK, '--top-k', (v) => Number.isInteger(v) && v > 0, 'a positive whole number') ?? 16;
      const patchSize = number(flags.patchSize, '--patch-size', (v) => v > 0, 'a positive number of pixels');
      const blur = number(flags.blur, '--blur', (v) => v >= 0, 'a sigma ≥ 0') ?? DEFAULT_HEATMAP_OPTIONS.blur;
      const alpha = number(flags.alpha, '--alpha', (v) => v >= 0 && v <= 1, 'an opacity in [0, 1]') ?? DEFAULT_HEATMAP_OPTIONS.alpha;
      const cohortName = flags.data === undefined ? (flags.split ?? 'own-data') : path.basename(flags.data).replace(/\.(ya?ml|json)$/i, '');
      const outDir = path.resolve(app.cwd, flags.out ?? path.join(runDir, ...(flags.job !== undefined ? ['jobs', flags.job] : []), 'predict', cohortName));
      const registry = app.createRegistry();
      const result = await runPredict({
        runDir, ...(flags.job !== undefined ? { job: flags.job } : {}), ...(flags.data !== undefined ? { data: flags.data } : {}), ...(fold !== undefined ? { fold } : {}),
        ...(flags.split !== undefined ? { split: flags.split as 'train' | 'val' | 'test' } : {}),
        threshold: thresholdOf(flags.threshold), bootstrap: bootstrapFlag ?? 1000, outDir,
        ...(flags.heatmaps ? { heatmaps: {
          options: { ...DEFAULT_HEATMAP_OPTIONS, percentiles: flags.percentiles !== false, blur, alpha }, topK,
          ...(patchSize !== undefined ? { patchSize } : {}), ...(flags.thumbnails !== undefined ? { thumbnails: path.resolve(app.cwd, flags.thumbnails) } : {}),
          ...(flags.slides !== undefined ? { slides: path.resolve(app.cwd, flags.slides) } : {}), ...(flags.slideReader !== undefined ? { slideReader: flags.slideReader } : {}),
        } } : {}),
        track: flags.track !== false, registry, logger: app.logger, cwd: app.cwd, env: app.env,
        createTracker: async (run) => (run.resolved.config.tracking.enabled ? app.services.createTracker(run.resolved.config.tracking, { registry, logger: app.logger, cwd: app.cwd, env: app.env }) : undefined),
      });
      const shown = path.relative(app.cwd, result.outDir) || result.outDir;
      app.io.out(`${shown}/predictions.csv: ${result.rows.length} slides, threshold ${result.threshold.toFixed(4)}`);
      for (const [name, value] of Object.entries(result.metrics)) {
        const ci = result.intervals[name];
        app.io.out(`  ${name.padEnd(26)} ${value.value === null ? `n/a (${value.reason ?? 'undefined'})` : value.value.toFixed(4)}${ci ? `  [${ci.low.toFixed(4)}, ${ci.high.toFixed(4)}]` : ''}`);
      }
      if (result.heatmapSlides > 0) app.io.out(`  heatmaps of ${result.heatmapSlides} slides in ${shown}/heatmaps`);
      if (result.runId) app.io.out(`  tracked as run ${result.runId}`);
    });
}
