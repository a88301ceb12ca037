// `milkit extract SLIDES... --out DIR`: slides (files, folders or a slide table) → CLAM-layout feature files
// <out>/h5_files/<slide_id>.h5 and <out>/process_list.csv; resumable, one failed slide does not stop the others,
// in this process or in parallel through an executor (docs/slides.md#feature-extraction).
//
// The extraction code (h5wasm, sharp, ONNX Runtime) loads inside the action, so `milkit --help` does not pay for it.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { loadActionCode, type CliApp } from '../app.js';
import { parseOptionPairs } from './data.js';

interface ExtractFlags {
  readonly out: string;
  readonly reader: string;
  readonly detector: string;
  readonly extractor: string;
  readonly readerSet: string[];
  readonly detectorSet: string[];
  readonly extractorSet: string[];
  readonly patchSize: string;
  readonly magnification: string;
  readonly mpp?: string;
  readonly baseMagnification?: string;
  readonly baseMpp?: string;
  readonly thumbs: boolean;
  readonly patches?: string;
  readonly force?: boolean;
  readonly executor?: string;
  readonly executorSet: string[];
  readonly workers?: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function positive(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new ConfigError('bad-option', `--${flag}: expected a positive number, got "${raw}".`);
  return value;
}

/** bin/milkit.mjs of this package (the workers run it, as `milkit sweep`'s do). */
function packageBin(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'bin', 'milkit.mjs');
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`no bin/milkit.mjs above ${from}: the milkit package is incomplete`);
  }
}

export function register(program: Command, app: CliApp): void {
  program
    .command('extract')
    .description('slides → CLAM-layout feature files (<out>/h5_files/<slide_id>.h5: features, coords, thumbs) + process_list.csv; resumable')
    .argument('<slides...>', 'slide files, folders of slides, or a slide table CSV (slide_id, slide_file)')
    .requiredOption('--out <dir>', 'output folder')
    .option('--reader <name>', 'slide reader plugin: openslide or tiff', 'openslide')
    .option('--detector <name>', 'tissue detector plugin', 'clam')
    .option('--extractor <name>', 'feature extractor plugin: color-texture (no model) or onnx (--extractor-set model=FILE.onnx)', 'color-texture')
    .option('--reader-set <key=value>', 'a reader option (repeatable)', collect, [] as string[])
    .option('--detector-set <key=value>', 'a tissue detector option (repeatable), e.g. minTissueArea=1 on small slides', collect, [] as string[])
    .option('--extractor-set <key=value>', 'a feature extractor option (repeatable), e.g. model=encoder.onnx, batchSize=64', collect, [] as string[])
    .option('--patch-size <px>', 'patch side at the target magnification', '256')
    .option('--magnification <x>', 'target magnification', '20')
    .option('--mpp <um>', 'target microns per pixel (instead of --magnification)')
    .option('--base-magnification <x>', 'objective power of slides whose file does not record it (generic TIFF)')
    .option('--base-mpp <um>', 'microns per pixel of slides whose file does not record it')
    .option('--no-thumbs', 'leave the 16×16 thumbnails out')
    .option('--patches <dir>', 'use the CLAM/TRIDENT patches/<slide_id>.h5 coordinate files in this folder instead of segmenting')
    .option('--force', 'redo slides whose feature file exists')
    .option('--executor <name>', 'run slides as parallel jobs: local (worker processes) or slurm (array job)')
    .option('--executor-set <key=value>', 'an executor option (repeatable), e.g. partition=cpu', collect, [] as string[])
    .option('-w, --workers <n>', 'local executor: worker processes at once (implies --executor local)')
    .action(async (inputs: string[], flags: ExtractFlags) => {
      const patchSize = positive('patch-size', flags.patchSize) as number;
      if (!Number.isInteger(patchSize)) throw new ConfigError('bad-option', `--patch-size: expected whole pixels, got "${flags.patchSize}".`);
      const [{ listSlides, runExtraction }, { createProgress }] = await loadActionCode('extract', () => Promise.all([import('../../extract/run.js'), import('../../engine/progress.js')]));
      const registry = app.createRegistry();
      const mpp = positive('mpp', flags.mpp);
      const baseMagnification = positive('base-magnification', flags.baseMagnification);
      const baseMpp = positive('base-mpp', flags.baseMpp);
      const spec = {
        version: 1 as const,
        outDir: path.resolve(app.cwd, flags.out),
        cwd: app.cwd,
        reader: { ...(await parseOptionPairs(flags.readerSet)), name: flags.reader },
        detector: { ...(await parseOptionPairs(flags.detectorSet)), name: flags.detector },
        extractor: { ...(await parseOptionPairs(flags.extractorSet)), name: flags.extractor },
        patching: {
          patchSize,
          magnification: positive('magnification', flags.magnification) as number,
          thumbs: flags.thumbs,
          ...(mpp !== undefined ? { mpp } : {}),
          ...(baseMagnification !== undefined ? { baseMagnification } : {}),
          ...(baseMpp !== undefined ? { baseMpp } : {}),
          ...(flags.patches !== undefined ? { patchesDir: path.resolve(app.cwd, flags.patches) } : {}),
        },
        slides: await listSlides(inputs, app.cwd),
      };
      // Every plugin slot is checked before any slide is touched (a missing model fails here, naming the key).
      for (const [kind, ref, key] of [['slide-reader', spec.reader, 'reader'], ['tissue-detector', spec.detector, 'detector'], ['feature-extractor', spec.extractor, 'extractor']] as const) {
        await registry.resolve(kind, ref, { key });
      }
      const executorName = flags.executor ?? (flags.workers !== undefined ? 'local' : undefined);
      let executor;
      if (executorName !== undefined) {
        const workers = flags.workers === undefined ? {} : { workers: positive('workers', flags.workers) };
        const resolved = await registry.resolve('executor', { ...(await parseOptionPairs(flags.executorSet)), ...workers, name: executorName }, { key: 'executor' });
        executor = {
          executor: registry.create(resolved, { logger: app.logger, cwd: app.cwd, cores: availableParallelism(), env: app.env }),
          worker: { command: process.execPath, args: [packageBin(path.dirname(fileURLToPath(import.meta.url))), 'worker'] },
        };
      }
      const progress = createProgress({ stream: process.stderr, interactive: app.io.stdoutIsTTY && Boolean(process.stderr.isTTY) });
      const report = await runExtraction(spec, { registry, logger: app.logger, progress, force: flags.force === true, ...(executor ? { executor } : {}) });
      const extracted = report.rows.filter((r) => r.status === 'extracted').length;
      const existing = report.rows.filter((r) => r.status === 'existing').length;
      app.io.out(`extracted ${extracted} slide(s), ${existing} already done: ${path.relative(app.cwd, path.join(spec.outDir, 'h5_files')) || '.'}/<slide_id>.h5, ${path.relative(app.cwd, report.processList)}`);
    });
}
