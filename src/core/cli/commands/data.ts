// `milkit data export DATASET --out DIR`: write any dataset (the synthetic benchmarks in particular) as
// CLAM-layout h5 files + a slide table, so the file-reading path can be exercised and shared.
// `milkit data slides --out DIR`: write synthetic whole-slide images (pyramidal TIFF / Aperio .svs) with
// ground-truth tissue and tumour masks and a slide table, for the slide-reading path (docs/slides.md).
// `milkit data tissue SLIDE... --out DIR`: tissue segmentation per slide as GeoJSON + a PNG preview.
//
// What the actions need (yaml, sharp, h5 writing, the slide code) loads inside them, not at the top, so that
// `milkit --help` does not pay for it (BENCHMARKS.md "coldstart").
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { writeFileDurably } from '../../io/disk.js';
import type { BagSource } from '../../../registry/contracts/data.js';
import { loadActionCode, type CliApp } from '../app.js';

interface ExportFlags {
  readonly out: string;
  readonly set: string[];
  readonly seed: string;
  readonly thumbs: boolean;
}

/** `key=value` pairs → an options object; values are YAML scalars or flow lists (`instances=[50,100]`). */
export async function parseOptionPairs(pairs: readonly string[]): Promise<Record<string, unknown>> {
  const { parse: parseYaml } = await loadActionCode('data', () => import('yaml'));
  const options: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ConfigError('bad-option', `--set: expected key=value, got "${pair}".`, { hint: 'For example --set slides=20 --set instances=[50,100].' });
    options[pair.slice(0, eq)] = parseYaml(pair.slice(eq + 1)) as unknown;
  }
  return options;
}

interface SlidesFlags {
  readonly out: string;
  readonly slides: string;
  readonly size: string;
  readonly height?: string;
  readonly seed: string;
  readonly tumourFraction: string;
  readonly format: string;
  readonly quality: string;
  readonly mpp: string;
  readonly magnification: string;
  readonly maskDownsample: string;
}

/** A numeric flag within [min, max] (integers when `integer`), else a ConfigError naming the flag. */
function numberFlag(flag: string, raw: string, min: number, max: number, integer: boolean): number {
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new ConfigError('bad-option', `--${flag}: expected ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got "${raw}".`);
  }
  return value;
}

export function register(program: Command, app: CliApp): void {
  const data = program.command('data').description('dataset utilities');
  data
    .command('export')
    .description('write a dataset as CLAM-layout h5 files (h5_files/<slide_id>.h5) + slides.csv')
    .argument('<dataset>', 'dataset plugin name, e.g. synthetic-camelyon, mnist-bags')
    .requiredOption('--out <dir>', 'output folder')
    .option('--set <key=value>', 'a dataset option (repeatable), e.g. --set slides=20', (value: string, previous: string[]) => [...previous, value], [] as string[])
    .option('--seed <n>', 'data seed', '0')
    .option('--no-thumbs', 'leave thumbnails out of the files')
    .action(async (name: string, flags: ExportFlags) => {
      const seed = Number(flags.seed);
      if (!Number.isInteger(seed) || seed < 0) throw new ConfigError('bad-option', `--seed: expected a non-negative integer, got "${flags.seed}".`);
      const registry = app.createRegistry();
      const resolved = await registry.resolve('dataset', { name, ...(await parseOptionPairs(flags.set)) }, { key: 'dataset' });
      const source: BagSource = await registry.create(resolved, { seed, logger: app.logger, baseDir: app.cwd });
      try {
        const outDir = path.resolve(app.cwd, flags.out);
        const { exportDataset } = await loadActionCode('data export', () => import('../../data/export.js'));
        const result = await exportDataset(source, outDir, { logger: app.logger, thumbs: flags.thumbs });
        app.io.out(`wrote ${result.slides} slides: ${path.relative(app.cwd, result.featuresDir) || '.'}/<slide_id>.h5 and ${path.relative(app.cwd, result.slideTable)}`);
        app.io.out(`read them back with  data.dataset: { name: features-h5, slideTable: ${path.relative(app.cwd, result.slideTable)}, featuresDir: ${path.relative(app.cwd, result.featuresDir)} }`);
      } finally {
        await source.close?.();
      }
    });
  data
    .command('slides')
    .description('write synthetic whole-slide images (JPEG-tiled pyramidal TIFF / Aperio .svs), ground-truth masks and slides.csv')
    .requiredOption('--out <dir>', 'output folder')
    .option('--slides <n>', 'number of slides', '4')
    .option('--size <px>', 'level-0 width in pixels; 50000 works, memory stays at one strip', '20000')
    .option('--height <px>', 'level-0 height in pixels (default: 3/4 of --size); --height 50000 with --size 50000 gives a square slide')
    .option('--seed <n>', 'seed of the layouts and textures', '0')
    .option('--tumour-fraction <f>', 'fraction of slides with tumour regions (label tumor_tissue)', '0.5')
    .option('--format <format>', 'svs (Aperio description with MPP/AppMag, thumbnail, label, macro), tiff (generic) or both', 'svs')
    .option('--quality <q>', 'JPEG quality of the pyramid tiles', '80')
    .option('--mpp <um>', 'microns per level-0 pixel written into .svs files', '0.5')
    .option('--magnification <x>', 'objective power written into .svs files', '20')
    .option('--mask-downsample <n>', 'level-0 pixels per ground-truth mask pixel (multiple of 16)', '64')
    .action(async (flags: SlidesFlags) => {
      if (!['svs', 'tiff', 'both'].includes(flags.format)) throw new ConfigError('bad-option', `--format: expected svs, tiff or both, got "${flags.format}".`);
      const outDir = path.resolve(app.cwd, flags.out);
      const { writeSyntheticSlides } = await loadActionCode('data slides', () => import('../../slides/synthetic-slides.js'));
      const result = await writeSyntheticSlides({
        outDir,
        slides: numberFlag('slides', flags.slides, 1, 100000, true),
        size: numberFlag('size', flags.size, 512, 200000, true),
        ...(flags.height === undefined ? {} : { height: numberFlag('height', flags.height, 512, 200000, true) }),
        seed: numberFlag('seed', flags.seed, 0, 2 ** 31 - 1, true),
        tumourFraction: numberFlag('tumour-fraction', flags.tumourFraction, 0, 1, false),
        format: flags.format as 'svs' | 'tiff' | 'both',
        quality: numberFlag('quality', flags.quality, 1, 100, true),
        tileSize: 256,
        mpp: numberFlag('mpp', flags.mpp, 0.01, 100, false),
        magnification: numberFlag('magnification', flags.magnification, 1, 200, false),
        maskDownsample: numberFlag('mask-downsample', flags.maskDownsample, 16, 4096, true),
        logger: app.logger,
      });
      app.io.out(`wrote ${result.files.length} slide file(s), masks/ and ${path.relative(app.cwd, result.slideTable)}`);
    });
  data
    .command('tissue')
    .description('segment tissue (CLAM style) in slides: <slide>.geojson (level-0 polygons) and <slide>_tissue.png preview')
    .argument('<slides...>', 'slide files')
    .requiredOption('--out <dir>', 'output folder')
    .option('--reader <name>', 'slide reader plugin: openslide or tiff', 'openslide')
    .option('--detector <name>', 'tissue detector plugin', 'clam')
    .option('--set <key=value>', 'a detector option (repeatable), e.g. --set otsu=true', (value: string, previous: string[]) => [...previous, value], [] as string[])
    .action(async (slides: string[], flags: { out: string; reader: string; detector: string; set: string[] }) => {
      const registry = app.createRegistry();
      const ctx = { logger: app.logger };
      const opener = await registry.create(await registry.resolve('slide-reader', { name: flags.reader }, { key: 'reader' }), ctx);
      const detector = await registry.create(await registry.resolve('tissue-detector', { name: flags.detector, ...(await parseOptionPairs(flags.set)) }, { key: 'detector' }), ctx);
      const [{ tissuePreview }, { default: sharp }] = await loadActionCode('data tissue', () => Promise.all([import('../../slides/tissue.js'), import('sharp')]));
      const outDir = path.resolve(app.cwd, flags.out);
      await mkdir(outDir, { recursive: true });
      for (const slide of slides) {
        const reader = await opener.open(path.resolve(app.cwd, slide));
        try {
          const result = await detector.detect(reader);
          const id = path.basename(slide).replace(/\.[^.]+$/, '');
          await writeFileDurably(path.join(outDir, `${id}.geojson`), `${JSON.stringify(result.geojson)}\n`, { fs: app.services.fs, action: 'write the tissue contours' });
          const preview = tissuePreview(result);
          await sharp(preview.data, { raw: { width: preview.width, height: preview.height, channels: 3 } }).png().toFile(path.join(outDir, `${id}_tissue.png`));
          app.io.out(`${id}: ${result.geojson.features.length} tissue piece(s) at level ${result.level} (downsample ${result.downsample.toFixed(2)}, saturation threshold ${result.threshold})`);
        } finally {
          await reader.close();
        }
      }
    });
}
