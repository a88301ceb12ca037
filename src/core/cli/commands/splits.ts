// `milkit splits EXP [overrides...]`: draw (or read) the experiment's train/val/test splits exactly as a
// run would, print per-fold class counts, and save them (splits.json + CLAM's splits_{k}*.csv) for reuse.
import path from 'node:path';
import type { Command } from 'commander';
import type { BagSource } from '../../../registry/contracts/data.js';
import { loadActionCode, type CliApp } from '../app.js';

interface SplitsFlags {
  readonly out?: string;
  readonly validate: boolean;
  readonly json?: boolean;
}

export function register(program: Command, app: CliApp): void {
  program
    .command('splits')
    .description("draw the experiment's splits (grouped by case, stratified, seeded), print per-fold counts and save them as CLAM splits_{k}.csv + splits.json")
    .argument('<experiment>', 'experiment config file, e.g. experiments/quickstart.yaml')
    .argument('[overrides...]', 'Hydra-style overrides, e.g. split.folds=10 split.mode=monte-carlo')
    .option('--out <dir>', 'folder to write the split files to (default: splits/<experiment name>)')
    .option('--no-validate', 'split the slide table as is, without loading every bag first (a run skips bad slides before splitting)')
    .option('--json', 'print the folds as JSON instead of the count table')
    .action(async (file: string, overrides: string[], flags: SplitsFlags) => {
      // Loaded here, not at the top: config and data modules pull in zod, which `milkit --help` must not pay.
      const [{ loadExperiment }, { validateSource }, { describeSplits, makeSplits, writeSplits }] = await loadActionCode('splits', () => Promise.all([
        import('../../config/index.js'),
        import('../../data/bags.js'),
        import('../../data/splits.js'),
      ]));
      const registry = app.createRegistry();
      const resolved = await loadExperiment(file, overrides, { registry, cwd: app.cwd, env: app.env });
      const { config } = resolved;
      const source: BagSource = await registry.create(resolved.slots.dataset, {
        seed: config.seed,
        logger: app.logger,
        baseDir: resolved.baseDir,
        cacheBytes: config.data.cacheBytes,
        ...(config.data.labels === undefined ? {} : { labelMap: config.data.labels }),
      });
      try {
        const slides = flags.validate ? (await validateSource(source, { onBadSlide: config.data.onBadSlide, logger: app.logger })).slides : [...source.slides];
        const seed = config.split.seed ?? config.seed;
        const folds = makeSplits(slides, config.split, seed, { baseDir: resolved.baseDir, logger: app.logger });
        const outDir = path.resolve(app.cwd, flags.out ?? path.join('splits', config.name));
        await writeSplits(outDir, folds, slides, source.classNames, { mode: config.split.mode, seed, valFraction: config.split.valFraction, testFraction: config.split.testFraction, slides: slides.length });
        if (flags.json) app.io.out(JSON.stringify(folds, null, 2));
        else {
          app.io.out(`${config.split.file === undefined ? config.split.mode : `read from ${config.split.file}`}: ${folds.length} fold(s), ${slides.length} slides, seed ${seed}`);
          app.io.out(describeSplits(folds, slides, source.classNames));
        }
        app.logger.info(`wrote ${folds.length} fold(s) to ${outDir} (splits.json, splits_{k}.csv, splits_{k}_bool.csv, splits_{k}_descriptor.csv)`);
      } finally {
        await source.close?.();
      }
    });
}
