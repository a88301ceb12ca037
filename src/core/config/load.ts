// loadExperiment: compose → interpolate → project defaults → user plugins → experiment schema →
// each plugin slot validated by its plugin's own schema → frozen ResolvedExperiment with a config hash.
// Every error names the key path and the file (or override) that set the offending value.
import path from 'node:path';
import { Document } from 'yaml';
import { z } from 'zod';
import { ConfigError, PluginError } from '../errors.js';
import { suggest } from '../util/suggest.js';
import type { Registry, ResolvedPlugin } from '../../registry/registry.js';
import type { PluginKind } from '../../registry/kinds.js';
import { hashConfig } from './hash.js';
import { composeConfig, groupOptions, type ComposedConfig } from './compose.js';
import { METRICS_KEY, PLUGIN_SLOTS, slotKindOfGroup } from './plugin-slots.js';
import { findProjectSettings, isPathSpec, type ProjectSettings } from './project.js';
import { ExperimentSchema, type Experiment } from './schema.js';
import { canonicalJson, cloneTree, deepFreeze, isMapping, joinKey, lookup, setAt, type ConfigMapping, type KeySegment } from './tree.js';
import { describeIssues, unwrap } from './zod-issues.js';

export interface LoadOptions {
  readonly registry: Registry;
  /** Working directory (default process.cwd()); file names in messages are relative to it. */
  readonly cwd?: string;
  /** Environment for `${env:VAR}` (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Project settings; when absent they are searched for from `cwd` (cosmiconfig). */
  readonly project?: ProjectSettings;
}

export type ResolvedLoss = ResolvedPlugin<'loss'> & { readonly weight: number };

export interface ResolvedSlots {
  readonly aggregator: ResolvedPlugin<'aggregator'>;
  readonly classifier: ResolvedPlugin<'classifier'>;
  readonly prescreener: ResolvedPlugin<'prescreener'>;
  /** `model.encoder` (default `none`); optional so slots built by hand (tests, export) may leave it out. */
  readonly encoder?: ResolvedPlugin<'encoder'>;
  readonly losses: Readonly<Record<string, ResolvedLoss>>;
  readonly dataset: ResolvedPlugin<'dataset'>;
  /** `eval.metrics` names resolved as metric plugins. */
  readonly metrics: readonly ResolvedPlugin<'metric'>[];
}

export interface ResolvedExperiment {
  /** Primary config path as given. */
  readonly file: string;
  /** Folder of the primary config (user plugin paths resolve against it). */
  readonly baseDir: string;
  readonly overrides: readonly string[];
  /** Schema-parsed, defaults filled, plugin options replaced by the plugin-parsed options; deep-frozen. */
  readonly config: Experiment;
  readonly slots: ResolvedSlots;
  /** Hash of `config` without its output/tracking sections and default values (docs/config.md, "The config hash"). */
  readonly configHash: string;
  /** Final option of each config group (`model/aggregator` → `abmil`). */
  readonly choices: Readonly<Record<string, string | readonly string[]>>;
  /** The file (or override) each top-level key came from. */
  readonly sources: Readonly<Record<string, string>>;
  /** The resolved config as YAML (saved beside every run). */
  toYaml(): string;
}

/** Composes an experiment (groups, overrides, interpolation, project defaults) without validating it. */
export async function composeExperiment(file: string, overrides: readonly string[], opts: Omit<LoadOptions, 'registry'> & { readonly registry?: Registry } = {}): Promise<ConfigMapping> {
  return (await composeWithProject(file, overrides, opts)).config;
}

/**
 * The options of a config group as an experiment sees them: files under its search roots (incl. the
 * project's searchPath) plus, for plugin slots, every registered plugin. For `glob(...)` sweeps.
 */
export async function experimentGroupOptions(file: string, group: string, opts: Omit<LoadOptions, 'registry'> & { readonly registry?: Registry } = {}): Promise<string[]> {
  const cwd = opts.cwd ?? process.cwd();
  const project = opts.project ?? (await findProjectSettings(cwd)) ?? {};
  const { registry } = opts;
  if (registry && project.plugins?.length) await loadPluginsOnce(registry, project.plugins, cwd, project.file ?? 'project settings');
  return groupOptions(file, group, {
    cwd,
    searchPath: project.searchPath ?? [],
    ...(registry ? { impliedOptions: impliedFrom(registry) } : {}),
  });
}

function impliedFrom(registry: Registry): (group: string) => readonly string[] | undefined {
  return (group) => {
    const kind = slotKindOfGroup(group);
    return kind ? registry.names(kind) : undefined;
  };
}

/** Loads, composes, validates and resolves an experiment config. */
export async function loadExperiment(file: string, overrides: readonly string[], opts: LoadOptions): Promise<ResolvedExperiment> {
  const { registry } = opts;
  const { composed, config: merged } = await composeWithProject(file, overrides, opts);
  const { sourceOf } = composed;
  await loadPluginsOnce(registry, (merged.plugins ?? []) as unknown, composed.baseDir, sourceOf('plugins'));

  const parsed = ExperimentSchema.safeParse(merged);
  if (!parsed.success) throw invalidConfig(merged, parsed.error.issues, sourceOf);
  const experiment = parsed.data;

  // Every slot's plugin by key (`model.losses.ce`), so the hash knows each plugin's option defaults.
  const pluginAt = new Map<string, ResolvedPlugin>();
  const resolveAt = async <K extends PluginKind>(kind: K, key: string, ref: unknown): Promise<ResolvedPlugin<K>> => {
    const resolved = await resolveSlot(registry, kind, key, ref, sourceOf);
    pluginAt.set(key, resolved);
    return resolved;
  };
  const aggregator = await resolveAt('aggregator', 'model.aggregator', experiment.model.aggregator);
  const classifier = await resolveAt('classifier', 'model.classifier', experiment.model.classifier);
  const prescreener = await resolveAt('prescreener', 'model.prescreener', experiment.model.prescreener);
  const encoder = await resolveAt('encoder', 'model.encoder', experiment.model.encoder);
  const losses: Record<string, ResolvedLoss> = {};
  for (const [slot, { weight, ...ref }] of Object.entries(experiment.model.losses)) {
    losses[slot] = { ...(await resolveAt('loss', `model.losses.${slot}`, ref)), weight };
  }
  const dataset = await resolveAt('dataset', 'data.dataset', experiment.data.dataset);
  const metrics: ResolvedPlugin<'metric'>[] = [];
  for (const [i, name] of experiment.eval.metrics.entries()) {
    const key = `${METRICS_KEY}.${i}`;
    if (!registry.names('metric').includes(name)) {
      const names = registry.names('metric');
      const close = suggest(name, names, 1)[0];
      throw new PluginError('unknown-plugin', `${sourceOf(key)} › ${key}: unknown metric "${name}".${close ? ` Did you mean "${close}"?` : ''} Registered: ${names.join(', ') || 'none'}.`, {
        hint: 'Check the spelling, or add the plugin\'s file or package to `plugins:`.',
      });
    }
    metrics.push(await registry.resolve('metric', name, { file: sourceOf(key), key }));
  }

  const config = cloneTree(experiment) as Experiment & ConfigMapping;
  const withOptions = (r: ResolvedPlugin): ConfigMapping => ({ name: r.name, ...r.options });
  setAt(config, ['model', 'aggregator'], withOptions(aggregator), false);
  setAt(config, ['model', 'classifier'], withOptions(classifier), false);
  setAt(config, ['model', 'prescreener'], withOptions(prescreener), false);
  setAt(config, ['model', 'encoder'], withOptions(encoder), false);
  for (const [slot, loss] of Object.entries(losses)) setAt(config, ['model', 'losses', slot], { name: loss.name, weight: loss.weight, ...loss.options }, false);
  setAt(config, ['data', 'dataset'], withOptions(dataset), false);
  deepFreeze(config);
  // Only the options are frozen deeply: the definition holds zod schemas, which must stay mutable.
  const frozen = <T extends ResolvedPlugin>(r: T): T => Object.freeze({ ...r, options: deepFreeze(cloneTree(r.options)) });
  const slots: ResolvedSlots = Object.freeze({
    aggregator: frozen(aggregator),
    classifier: frozen(classifier),
    prescreener: frozen(prescreener),
    encoder: frozen(encoder),
    losses: Object.freeze(Object.fromEntries(Object.entries(losses).map(([k, v]) => [k, frozen(v)]))),
    dataset: frozen(dataset),
    metrics: Object.freeze(metrics.map(frozen)),
  });
  const configHash = hashConfig(config, { pluginOptions: (slotKey) => pluginAt.get(slotKey)?.definition.options });
  const overridesCopy = Object.freeze([...overrides]);
  return Object.freeze({
    file,
    baseDir: composed.baseDir,
    overrides: overridesCopy,
    config,
    slots,
    configHash,
    choices: Object.freeze({ ...composed.choices }),
    sources: Object.freeze({ ...composed.topLevelSources }),
    toYaml: () => resolvedYaml(config, file, overridesCopy, configHash),
  });
}

async function composeWithProject(
  file: string,
  overrides: readonly string[],
  opts: Omit<LoadOptions, 'registry'> & { readonly registry?: Registry },
): Promise<{ composed: ComposedConfig; config: ConfigMapping }> {
  const cwd = opts.cwd ?? process.cwd();
  const project = opts.project ?? (await findProjectSettings(cwd)) ?? {};
  const { registry } = opts;
  // Project plugins load first, so their names are options of the slot groups during composition.
  if (registry && project.plugins?.length) await loadPluginsOnce(registry, project.plugins, cwd, project.file ?? 'project settings');
  const composed = await composeConfig(file, overrides, {
    cwd,
    env: opts.env ?? process.env,
    searchPath: project.searchPath ?? [],
    isKnownKey: experimentKnowsKey,
    knownKeys: experimentKeys,
    ...(registry ? { impliedOptions: impliedFrom(registry) } : {}),
  });
  const config = cloneTree(composed.config);
  if (project.plugins?.length) {
    const own = Array.isArray(config.plugins) ? (config.plugins as unknown[]) : [];
    const canonical = (spec: unknown): unknown => (typeof spec === 'string' && isPathSpec(spec) ? path.resolve(composed.baseDir, spec) : spec);
    const seen = new Set(project.plugins.map(canonical));
    config.plugins = [...project.plugins, ...own.filter((spec) => !seen.has(canonical(spec)))];
  }
  if (project.tracking && Object.keys(project.tracking).length > 0) {
    // Project tracking values are defaults: the experiment's own keys win.
    config.tracking = { ...project.tracking, ...(isMapping(config.tracking) ? config.tracking : {}) };
  }
  return { composed, config };
}

const loadedSpecs = new WeakMap<Registry, Set<string>>();

/** Loads user plugins into the registry once per registry (sweep cells share one). */
async function loadPluginsOnce(registry: Registry, specs: unknown, baseDir: string, source: string): Promise<void> {
  if (!Array.isArray(specs) || !specs.every((s): s is string => typeof s === 'string')) {
    throw new ConfigError('invalid-config', `plugins: expected a list of plugin files or package names, got ${JSON.stringify(specs)} (${source}).`);
  }
  let done = loadedSpecs.get(registry);
  if (!done) {
    done = new Set();
    loadedSpecs.set(registry, done);
  }
  for (const spec of specs) {
    const canonical = isPathSpec(spec) ? path.resolve(baseDir, spec) : spec;
    if (done.has(canonical)) continue;
    await registry.loadUserPlugins([canonical], baseDir);
    // Marked only once loaded, so a failed load fails again (with its cause) for the next cell too.
    done.add(canonical);
  }
}

/** Validates a slot with the plugin's schema; the file named is the one that set the offending key. */
async function resolveSlot<K extends PluginKind>(registry: Registry, kind: K, key: string, ref: unknown, sourceOf: (key: string) => string): Promise<ResolvedPlugin<K>> {
  let file = sourceOf(key);
  let unknownOptions: string[] = [];
  if (isMapping(ref) && typeof ref.name === 'string') {
    file = sourceOf(`${key}.name`);
    if (registry.names(kind).includes(ref.name)) {
      const definition = await registry.get(kind, ref.name);
      const { name: _name, ...options } = ref;
      const check = definition.options.safeParse(options);
      const issues = check.success ? [] : check.error.issues;
      const issue = issues[0];
      if (issue) {
        const unknownKey = issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
        file = sourceOf(joinKey([key, ...(issue.path as KeySegment[]), ...(unknownKey === undefined ? [] : [unknownKey])]));
      }
      unknownOptions = issues.flatMap((i) => (i.code === 'unrecognized_keys' && i.path.length === 0 ? i.keys : []));
    }
  }
  try {
    return await registry.resolve(kind, ref, { file, key });
  } catch (error) {
    throw withCarriedOverOptionsHint(error, key, ref, unknownOptions, sourceOf);
  }
}

/**
 * Mappings merge, so choosing another plugin for a slot keeps the options an earlier config wrote for the old
 * one (`+model/aggregator=abmil` on hdmil.yaml keeps DMIN's kSample). When unknown options come from another
 * source than the plugin name, say so and how to start the slot afresh.
 */
function withCarriedOverOptionsHint(error: unknown, key: string, ref: unknown, unknownOptions: readonly string[], sourceOf: (key: string) => string): unknown {
  if (!(error instanceof ConfigError) || error.hint !== undefined || !isMapping(ref) || typeof ref.name !== 'string') return error;
  const nameSource = sourceOf(`${key}.name`);
  const carried = unknownOptions.filter((option) => sourceOf(`${key}.${option}`) !== nameSource);
  if (carried.length === 0) return error;
  return new ConfigError(error.code, error.message, {
    hint: `"${ref.name}" was chosen by ${nameSource}, but ${carried.join(', ')} came from ${sourceOf(`${key}.${carried[0] as string}`)}, written for another plugin: options stay when the plugin changes. Start the slot afresh: '~${key}' '${key}={name: ${ref.name}}'.`,
  });
}

function invalidConfig(input: ConfigMapping, issues: readonly z.core.$ZodIssue[], sourceOf: (key: string) => string): ConfigError {
  const described = describeIssues(ExperimentSchema, input, issues);
  const lines = described.map((line) => `${line.key}: ${line.text.replace(/\.$/, '')} (${sourceOf(line.key)})`);
  const message = lines.length === 1 ? (lines[0] as string) : `invalid experiment config:\n${lines.map((l) => `  ${l}`).join('\n')}`;
  // `model.aggregator=abmil` gives a slot a bare name: the plugin is chosen with the group form instead.
  const valueAt = (key: string): unknown => {
    const found = lookup(input, key.split('.'));
    return found.found ? found.value : undefined;
  };
  const bareSlot = described.find((line) => PLUGIN_SLOTS.some((slot) => !slot.record && slot.key === line.key) && typeof valueAt(line.key) === 'string');
  if (bareSlot) {
    const group = bareSlot.key.split('.').join('/');
    const name = String(valueAt(bareSlot.key));
    return new ConfigError('invalid-config', message, { hint: `A plugin slot is a mapping {name, ...options}; choose the plugin with the group form ${group}=${name} (+${group}=${name} when the defaults list has no ${group} entry).` });
  }
  return new ConfigError('invalid-config', message);
}

function isLooseObject(schema: z.ZodType): boolean {
  if (!(schema instanceof z.ZodObject)) return false;
  const catchall = schema._zod.def.catchall;
  return catchall !== undefined && !(catchall instanceof z.ZodNever);
}

/** Whether the experiment schema defines `path` (anything inside a plugin slot counts: its plugin validates it). */
export function experimentKnowsKey(keyPath: readonly KeySegment[]): boolean {
  let schema: z.ZodType | undefined = ExperimentSchema;
  for (const segment of keyPath) {
    schema = unwrap(schema);
    if (schema === undefined) return false;
    if (isLooseObject(schema)) return true;
    if (schema instanceof z.ZodObject) schema = (schema.shape as Record<string, z.ZodType>)[String(segment)];
    else if (schema instanceof z.ZodRecord) schema = schema.valueType as z.ZodType;
    else if (schema instanceof z.ZodArray) schema = schema.element as z.ZodType;
    else if (schema instanceof z.ZodTuple) schema = (schema._zod.def.items as z.ZodType[])[Number(segment)];
    else return false;
  }
  return schema !== undefined;
}

let cachedKeys: string[] | undefined;

/** Every key path the experiment schema defines (plugin slots and records stop the walk). */
export function experimentKeys(): string[] {
  if (cachedKeys) return cachedKeys;
  const out: string[] = [];
  const visit = (schema: z.ZodType | undefined, prefix: string[]): void => {
    const inner = unwrap(schema);
    if (!(inner instanceof z.ZodObject) || isLooseObject(inner)) return;
    for (const [key, child] of Object.entries(inner.shape as Record<string, z.ZodType>)) {
      out.push([...prefix, key].join('.'));
      visit(child, [...prefix, key]);
    }
  };
  visit(ExperimentSchema, []);
  cachedKeys = out;
  return out;
}

function resolvedYaml(config: Experiment, file: string, overrides: readonly string[], configHash: string): string {
  const doc = new Document(config);
  doc.commentBefore = [
    ' Resolved by milkit: groups composed, overrides applied, every default filled in.',
    ` source: ${file}`,
    ` overrides: ${overrides.length > 0 ? overrides.join(' ') : '(none)'}`,
    ` configHash: ${configHash}`,
  ].join('\n');
  return doc.toString({ lineWidth: 0 });
}
