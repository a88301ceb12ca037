// `milkit plugins [kind]` lists plugins with their options; `milkit plugins describe <name>` shows one.
// Kinds are accepted singular or plural (`aggregator` = `aggregators`); a plugin by bare name (`abmil`), by id
// (`aggregator/abmil`) or namespaced (`acme:my-pool`). User plugins join the listing from the project settings
// (milkit.config.*, package.json "milkit") and, with --config, from an experiment's `plugins:` list.
import path from 'node:path';
import type { Command } from 'commander';
import { PluginError } from '../../errors.js';
import { suggest } from '../../util/suggest.js';
import { isPluginKind, PLUGIN_KINDS, type PluginKind } from '../../../registry/kinds.js';
import type { PluginDescription, Registry } from '../../../registry/registry.js';
import { loadActionCode, type CliApp } from '../app.js';

interface SourceFlags {
  readonly config?: string;
}

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

/** The plural a user may type for a kind: aggregators, losses, strategies. */
export function pluralOfKind(kind: PluginKind): string {
  if (kind.endsWith('y')) return `${kind.slice(0, -1)}ies`;
  if (kind.endsWith('s')) return `${kind}es`;
  return `${kind}s`;
}

/** A kind as typed (singular or plural, any case) → the kind; undefined when it names none. */
export function parseKind(text: string): PluginKind | undefined {
  const lower = text.toLowerCase();
  if (isPluginKind(lower)) return lower;
  return PLUGIN_KINDS.find((kind) => pluralOfKind(kind) === lower);
}

function requireKind(text: string): PluginKind {
  const kind = parseKind(text);
  if (kind) return kind;
  const spelled = PLUGIN_KINDS.flatMap((k) => [k, pluralOfKind(k)]);
  const close = suggest(text, spelled, 1)[0];
  throw new PluginError('unknown-kind', `unknown plugin kind "${text}".${close ? ` Did you mean "${close}"?` : ''}`, {
    hint: `Kinds (singular or plural): ${PLUGIN_KINDS.join(', ')}.`,
  });
}

/**
 * The built-in registry plus user plugins: the project settings' `plugins:` and, with --config, the experiment's
 * (composed with its defaults, not validated: listing plugins must work while the experiment is being written).
 */
async function registryWithUserPlugins(app: CliApp, flags: SourceFlags): Promise<Registry> {
  // Loaded here, not at the top: the config modules pull in zod and cosmiconfig, which `milkit --help` must not pay.
  const [{ composeExperiment, findProjectSettings }, { isPathSpec }] = await loadActionCode('plugins', () => Promise.all([import('../../config/index.js'), import('../../config/project.js')]));
  const registry = app.createRegistry();
  const project = (await findProjectSettings(app.cwd)) ?? {};
  if (flags.config === undefined) {
    if (project.plugins?.length) await registry.loadUserPlugins(project.plugins, path.dirname(project.file ?? app.cwd));
    return registry;
  }
  const file = path.resolve(app.cwd, flags.config);
  // Composition loads the project's plugins into the registry (their names are options of the slot groups).
  const config = await composeExperiment(file, [], { cwd: app.cwd, env: app.env, registry, project });
  const fromProject = new Set(project.plugins ?? []);
  const own = (Array.isArray(config.plugins) ? config.plugins : []).filter((spec): spec is string => typeof spec === 'string');
  const baseDir = path.dirname(file);
  const toLoad = own.filter((spec) => !fromProject.has(isPathSpec(spec) ? path.resolve(baseDir, spec) : spec));
  if (toLoad.length > 0) await registry.loadUserPlugins(toLoad, baseDir);
  return registry;
}

/** `abmil`, `aggregator/abmil`, `aggregators/abmil` or `acme:my-pool` → the registered id. */
function findPluginId(registry: Registry, text: string): string {
  const slash = text.indexOf('/');
  if (slash > 0) {
    const kind = requireKind(text.slice(0, slash));
    return `${kind}/${text.slice(slash + 1)}`;
  }
  const matches = registry.ids().filter((id) => id.slice(id.indexOf('/') + 1) === text);
  if (matches.length === 1) return matches[0] as string;
  if (matches.length > 1) {
    throw new PluginError('ambiguous-plugin', `"${text}" names ${matches.length} plugins: ${matches.join(', ')}.`, { hint: `Give the kind too, e.g. milkit plugins describe ${matches[0] as string}.` });
  }
  const names = registry.ids().map((id) => id.slice(id.indexOf('/') + 1));
  const close = suggest(text, names, 1)[0];
  throw new PluginError('unknown-plugin', `no plugin is named "${text}".${close ? ` Did you mean "${close}"?` : ''}`, {
    hint: 'List them with `milkit plugins --brief`; a user plugin is listed once its file or package is in the project settings or in the `plugins:` of the experiment given with --config.',
  });
}

export function register(program: Command, app: CliApp): void {
  const cmd = program
    .command('plugins')
    .description('list registered plugins of every kind (or one kind) with their option schemas')
    .argument('[kind]', `one of ${PLUGIN_KINDS.join(', ')} (singular or plural)`)
    .option('--brief', 'names and summaries only')
    .option('--json', 'machine-readable output')
    .option('-c, --config <experiment>', "also list the user plugins of this experiment's `plugins:`")
    .addHelpText('after', '\nExamples:\n  milkit plugins aggregators --brief\n  milkit plugins describe abmil\n  milkit plugins describe acme:my-pool --config experiments/mine.yaml')
    .action(async (kindText: string | undefined, opts: { brief?: boolean; json?: boolean; config?: string }) => {
      const kinds: PluginKind[] = kindText === undefined ? [...PLUGIN_KINDS] : [requireKind(kindText)];
      const registry = await registryWithUserPlugins(app, opts);
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
    .argument('<name>', 'plugin name (abmil), id (aggregator/abmil) or namespaced user plugin (acme:my-pool)')
    .option('-c, --config <experiment>', "also search the user plugins of this experiment's `plugins:`")
    .action(async (text: string, opts: { config?: string }, command: Command) => {
      // `--config` may be given before `describe` too (`milkit plugins --config x.yaml describe y`).
      const config = opts.config ?? (command.parent?.opts() as { config?: string } | undefined)?.config;
      const registry = await registryWithUserPlugins(app, config === undefined ? {} : { config });
      const d = await registry.describe(findPluginId(registry, text));
      app.io.out(`${d.id}: ${d.summary}`);
      app.io.out(renderDescription(d, true));
      app.io.out(`  capabilities: ${JSON.stringify(d.capabilities)}`);
    });
}
