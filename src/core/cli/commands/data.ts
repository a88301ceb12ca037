// `milkit data export DATASET --out DIR`: write any dataset (the synthetic benchmarks in particular) as
// CLAM-layout h5 files + a slide table, so the file-reading path can be exercised and shared.
import path from 'node:path';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../errors.js';
import { exportDataset } from '../../data/export.js';
import type { BagSource } from '../../../registry/contracts/data.js';
import type { CliApp } from '../app.js';

interface ExportFlags {
  readonly out: string;
  readonly set: string[];
  readonly seed: string;
  readonly thumbs: boolean;
}

/** `key=value` pairs → an options object; values are YAML scalars or flow lists (`instances=[50,100]`). */
export function parseOptionPairs(pairs: readonly string[]): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ConfigError('bad-option', `--set: expected key=value, got "${pair}".`, { hint: 'For example --set slides=20 --set instances=[50,100].' });
    options[pair.slice(0, eq)] = parseYaml(pair.slice(eq + 1)) as unknown;
  }
  return options;
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
      const resolved = await registry.resolve('dataset', { name, ...parseOptionPairs(flags.set) }, { key: 'dataset' });
      const source: BagSource = await registry.create(resolved, { seed, logger: app.logger, baseDir: app.cwd });
      try {
        const outDir = path.resolve(app.cwd, flags.out);
        const result = await exportDataset(source, outDir, { logger: app.logger, thumbs: flags.thumbs });
        app.io.out(`wrote ${result.slides} slides: ${path.relative(app.cwd, result.featuresDir) || '.'}/<slide_id>.h5 and ${path.relative(app.cwd, result.slideTable)}`);
        app.io.out(`read them back with  data.dataset: { name: features-h5, slideTable: ${path.relative(app.cwd, result.slideTable)}, featuresDir: ${path.relative(app.cwd, result.featuresDir)} }`);
      } finally {
        await source.close?.();
      }
    });
}
