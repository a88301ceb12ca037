// `milkit plugins [kind]` lists plugins with their options; `milkit plugins describe <kind/name>` shows one.
import type { Command } from 'commander';
import { PluginError } from '../../errors.js';
import { isPluginKind, PLUGIN_KINDS, type PluginKind } from '../../../registry/kinds.js';
import type { PluginDescription } from '../../../registry/registry.js';
import type { CliApp } from '../app.js';

function renderDescription(d: PluginDescription, withOptions: boolean): string {
  const lines = [`  ${d.name.padEnd(18)} ${d.summary}${d.source === 'built-in' ? '' : `  [${d.source}]`}`];
  if (!withOptions) return lines.join('\n');
  if (d.paper) lines.push(`  ${''.padEnd(18)} paper: ${d.paper.cite}${d.paper.arxiv ? ` (arXiv:${d.paper.arxiv})` : ''}`);
  for (const o of d.options) {
    const def = o.default === undefined ? (o.required ? ' (required)' : '') : ` = ${JSON.stringify(o.default)}`;
    lines.push(`      ${o.key}: ${o.type}${def}${o.description ? ` — ${o.description}` : ''}`);
  }
  return lines.join('\n');
}

export function register(program: Command, app: CliApp): void {
  const cmd = program
    .command('plugins')
    .description('list registered plugins of every kind (or one kind) with their option schemas')
    .argument('[kind]', `one of ${PLUGIN_KINDS.join(', ')}`)
    .option('--brief', 'names and summaries only')
    .option('--json', 'machine-readable output')
    .action(async (kind: string | undefined, opts: { brief?: boolean; json?: boolean }) => {
      const registry = app.createRegistry();
      if (kind !== undefined && !isPluginKind(kind)) {
        throw new PluginError('unknown-kind', `unknown plugin kind "${kind}".`, { hint: `Kinds: ${PLUGIN_KINDS.join(', ')}.` });
      }
      const kinds: PluginKind[] = kind ? [kind] : [...PLUGIN_KINDS];
      const all: PluginDescription[] = [];
      for (const k of kinds) {
        for (const id of registry.ids(k)) all.push(await registry.describe(id));
      }
      if (opts.json) {
        app.io.out(JSON.stringify(all.map(({ jsonSchema, ...rest }) => ({ ...rest, optionsSchema: jsonSchema })), null, 2));
        return;
      }
      for (const k of kinds) {
        const ofKind = all.filter((d) => d.kind === k);
        app.io.out(`${k} (${ofKind.length})`);
        for (const d of ofKind) app.io.out(renderDescription(d, !opts.brief));
      }
    });
  cmd
    .command('describe')
    .description('show one plugin: summary, paper, capabilities, options')
    .argument('<id>', 'plugin id as <kind>/<name>, e.g. aggregator/abmil')
    .action(async (id: string) => {
      const d = await app.createRegistry().describe(id);
      app.io.out(`${d.id}: ${d.summary}`);
      app.io.out(renderDescription(d, true));
      app.io.out(`  capabilities: ${JSON.stringify(d.capabilities)}`);
    });
}
