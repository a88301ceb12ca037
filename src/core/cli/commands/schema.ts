// `milkit schema [--out file]`: the JSON Schema of experiment configs (every registered plugin with its own
// options, discriminated on `name`), so YAML editors autocomplete and check experiments.
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { loadActionCode, type CliApp } from '../app.js';

const EDITOR_HELP = `
Editor support (VS Code with the YAML extension, or any yaml-language-server client):
  npx milkit schema --out milkit.schema.json
then start each experiment YAML with a modeline pointing at that file, relative to the YAML:
  # yaml-language-server: $schema=../milkit.schema.json
A file with a defaults: list may leave out keys its groups provide; the schema requires keys only
in files without one. Regenerate after adding plugins.`;

export function register(program: Command, app: CliApp): void {
  program
    .command('schema')
    .description('print the JSON Schema of experiment configs (for YAML autocompletion), or write it with --out')
    .option('--out <file>', 'write the schema to this file instead of printing it')
    .option('--variant <variant>', 'auto (required keys only without a defaults: list), complete or partial', 'auto')
    .addHelpText('after', EDITOR_HELP)
    .action(async (flags: { out?: string; variant: string }) => {
      if (!['auto', 'complete', 'partial'].includes(flags.variant)) {
        throw new ConfigError('bad-option', `--variant: expected auto, complete or partial, got "${flags.variant}".`);
      }
      // Loaded here, not at the top: the config modules pull in zod, which `milkit --help` must not pay.
      const [{ experimentJsonSchema, findProjectSettings }, { writeFileDurably }] = await loadActionCode('schema', () => Promise.all([import('../../config/index.js'), import('../../io/disk.js')]));
      const registry = app.createRegistry();
      const project = await findProjectSettings(app.cwd);
      if (project?.plugins?.length) await registry.loadUserPlugins(project.plugins, path.dirname(project.file ?? app.cwd));
      const schema = await experimentJsonSchema(registry, { variant: flags.variant as 'auto' | 'complete' | 'partial' });
      const text = `${JSON.stringify(schema, null, 2)}\n`;
      if (flags.out === undefined) {
        app.io.out(text);
        return;
      }
      const target = path.resolve(app.cwd, flags.out);
      await writeFileDurably(target, text, { fs: app.services.fs, action: 'write the JSON schema' });
      app.io.err(`wrote ${flags.out}; add "# yaml-language-server: $schema=<path to it from the YAML>" at the top of experiment files.`);
    });
}
