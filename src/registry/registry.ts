// The registry: the only way core reaches plugins — list, describe, resolve (validate a config slot
// against the plugin's own schema) and create. Built-ins load lazily from the manifest.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { z } from 'zod';
import { PluginError } from '../core/errors.js';
import { parseOrThrow, showValue } from '../core/config/zod-issues.js';
import { importModule } from '../core/util/import-module.js';
import { suggest } from '../core/util/suggest.js';
import type { AnyPluginDefinition, PluginPackage } from './define-plugin.js';
import { pluginId } from './define-plugin.js';
import { isPluginKind, type PluginKind, type PluginKindMap } from './kinds.js';

/** `'<kind>/<name>': () => import(...)`, sorted; a test checks it against the plugin files. */
export type PluginManifest = Readonly<Record<string, () => Promise<{ default: unknown }>>>;

/** A config slot after validation: the definition and its parsed, defaulted options. */
export interface ResolvedPlugin<K extends PluginKind = PluginKind> {
  readonly kind: K;
  readonly name: string;
  readonly options: Readonly<Record<string, unknown>>;
  readonly definition: AnyPluginDefinition;
}

/** Where a slot came from, for error messages. */
export interface SlotLocation {
  readonly file?: string;
  /** Key path of the slot (`model.aggregator`). */
  readonly key: string;
}

export interface PluginDescription {
  readonly id: string;
  readonly kind: PluginKind;
  readonly name: string;
  readonly summary: string;
  readonly source: string;
  readonly paper?: AnyPluginDefinition['paper'];
  readonly capabilities: Readonly<Record<string, unknown>>;
  readonly options: ReadonlyArray<{ key: string; type: string; default?: unknown; description?: string; required: boolean }>;
  readonly jsonSchema: Record<string, unknown>;
}

export class Registry {
  private readonly loaded = new Map<string, { definition: AnyPluginDefinition; source: string }>();
  private readonly lazy = new Map<string, () => Promise<{ default: unknown }>>();

  constructor(manifest: PluginManifest = {}) {
    for (const [id, loader] of Object.entries(manifest)) this.lazy.set(id, loader);
  }

  /** Every known id of a kind (built-in and user), sorted. */
  ids(kind?: PluginKind): string[] {
    const all = new Set([...this.lazy.keys(), ...this.loaded.keys()]);
    return [...all].filter((id) => kind === undefined || id.startsWith(`${kind}/`)).sort();
  }

  names(kind: PluginKind): string[] {
    return this.ids(kind).map((id) => id.slice(kind.length + 1));
  }

  /** Registers a definition under `<kind>/<name>`; a second one with the same id is an error naming both sources. */
  register(definition: AnyPluginDefinition, source: string): void {
    if (!isPluginKind(definition.kind)) {
      throw new PluginError('unknown-kind', `${source}: plugin "${definition.name}" declares unknown kind "${String(definition.kind)}".`, {
        hint: `Kinds: ${this.kinds().join(', ')}.`,
      });
    }
    const id = pluginId(definition.kind, definition.name);
    const existing = this.loaded.get(id);
    if (existing || this.lazy.has(id)) {
      throw new PluginError('duplicate-plugin', `plugin "${id}" from ${source} is already registered (from ${existing?.source ?? 'the built-in manifest'}).`, {
        hint: 'Rename one of them; user plugins should use a namespace ("acme:my-pool").',
      });
    }
    this.loaded.set(id, { definition, source });
  }

  kinds(): PluginKind[] {
    return [...new Set(this.ids().map((id) => id.split('/')[0] as PluginKind))];
  }

  /** Loads (once) and returns a definition; throws with did-you-mean for unknown names. */
  async get(kind: PluginKind, name: string, where?: SlotLocation): Promise<AnyPluginDefinition> {
    const id = pluginId(kind, name);
    const hit = this.loaded.get(id);
    if (hit) return hit.definition;
    const loader = this.lazy.get(id);
    if (!loader) {
      const names = this.names(kind);
      const close = suggest(name, names, 1)[0];
      const location = where ? `${where.file ? `${where.file} › ` : ''}${where.key}.name: ` : '';
      throw new PluginError('unknown-plugin', `${location}unknown ${kind} "${name}".${close ? ` Did you mean "${close}"?` : ''} Registered: ${names.join(', ') || 'none'}.`, {
        hint: 'Check the spelling, or add the plugin\'s file or package to `plugins:`.',
      });
    }
    const module = await loader();
    const definition = module.default as AnyPluginDefinition;
    if (!definition || definition.kind !== kind || definition.name !== name) {
      throw new PluginError('manifest-mismatch', `plugin manifest entry "${id}" loads "${definition ? pluginId(definition.kind, definition.name) : 'nothing'}".`, {
        hint: 'Fix plugins/index.ts so each key matches the definition it loads.',
      });
    }
    this.loaded.set(id, { definition, source: 'built-in' });
    this.lazy.delete(id);
    return definition;
  }

  /** Every definition of a kind, loaded. */
  async list(kind: PluginKind): Promise<AnyPluginDefinition[]> {
    return Promise.all(this.names(kind).map((name) => this.get(kind, name)));
  }

  /**
   * Validates a config slot `{ name, ...options }` (or a bare name) against the named plugin's schema.
   * Errors carry the slot's key path, e.g. `model.aggregator.dropout`.
   */
  async resolve<K extends PluginKind>(kind: K, ref: unknown, where: SlotLocation): Promise<ResolvedPlugin<K>> {
    const slot = typeof ref === 'string' ? { name: ref } : ref;
    if (slot === null || typeof slot !== 'object' || Array.isArray(slot) || typeof (slot as { name?: unknown }).name !== 'string') {
      throw new PluginError('invalid-plugin-ref', `${where.file ? `${where.file} › ` : ''}${where.key}: expected a ${kind} as {name: <plugin>, ...options}, got ${showValue(slot)}.`, {
        hint: `Registered ${kind}s: ${this.names(kind).join(', ')}.`,
      });
    }
    const { name, ...rawOptions } = slot as { name: string } & Record<string, unknown>;
    const definition = await this.get(kind, name, where);
    const options = parseOrThrow(definition.options, rawOptions, { ...(where.file ? { file: where.file } : {}), key: where.key }, `options of ${kind} "${name}"`);
    return { kind, name, options: options as Record<string, unknown>, definition };
  }

  /** Builds an instance from a resolved slot. */
  create<K extends PluginKind>(resolved: ResolvedPlugin<K>, ctx: PluginKindMap[K]['context']): PluginKindMap[K]['instance'] {
    const create = resolved.definition.create as (options: unknown, ctx: unknown) => PluginKindMap[K]['instance'];
    return create(resolved.options, ctx);
  }

  /** The capability flags of a resolved plugin (static, then those its options decide) merged over the kind's defaults. */
  capabilities<K extends PluginKind>(resolved: ResolvedPlugin<K>, defaults: PluginKindMap[K]['capabilities']): PluginKindMap[K]['capabilities'] {
    const optionDependent = resolved.definition.capabilitiesFor as ((options: unknown) => Readonly<Record<string, unknown>>) | undefined;
    return { ...defaults, ...resolved.definition.capabilities, ...(optionDependent ? optionDependent(resolved.options) : {}) } as PluginKindMap[K]['capabilities'];
  }

  /** Options, types, defaults and docs of one plugin, read from its schema. */
  async describe(id: string): Promise<PluginDescription> {
    const [kind, ...rest] = id.split('/');
    const name = rest.join('/');
    if (!kind || !isPluginKind(kind)) throw new PluginError('unknown-kind', `unknown plugin kind "${kind ?? ''}" in "${id}".`, { hint: `Kinds: ${this.kinds().join(', ')}.` });
    const definition = await this.get(kind, name);
    const jsonSchema = z.toJSONSchema(definition.options, { unrepresentable: 'any', io: 'input' }) as Record<string, unknown>;
    const properties = (jsonSchema.properties ?? {}) as Record<string, Record<string, unknown>>;
    const required = new Set((jsonSchema.required ?? []) as string[]);
    const options = Object.entries(properties).map(([key, prop]) => ({
      key,
      type: typeText(prop),
      ...(prop.default !== undefined ? { default: prop.default } : {}),
      ...(typeof prop.description === 'string' ? { description: prop.description } : {}),
      required: required.has(key) && prop.default === undefined,
    }));
    return {
      id,
      kind,
      name,
      summary: definition.summary,
      source: this.loaded.get(id)?.source ?? 'built-in',
      ...(definition.paper ? { paper: definition.paper } : {}),
      capabilities: definition.capabilities,
      options,
      jsonSchema,
    };
  }

  /**
   * Loads user plugins listed in a config's `plugins:` (paths relative to `baseDir`, or package names)
   * and registers what they export: a default definition, an array, or `{ meta, plugins }`.
   */
  async loadUserPlugins(specs: readonly string[], baseDir: string): Promise<string[]> {
    const added: string[] = [];
    for (const spec of specs) {
      const isPath = spec.startsWith('.') || spec.startsWith('/') || /\.(m?[jt]s)$/.test(spec);
      let url: string;
      try {
        url = isPath
          ? pathToFileURL(path.resolve(baseDir, spec)).href
          : pathToFileURL(createRequire(path.join(baseDir, 'package.json')).resolve(spec)).href;
      } catch (cause) {
        throw new PluginError('plugin-load-failed', `plugins: cannot find "${spec}" from ${baseDir}.`, { hint: 'Give a path relative to the config file, or install the package.', cause });
      }
      let module: Record<string, unknown>;
      try {
        module = await importModule(url);
      } catch (cause) {
        throw new PluginError('plugin-load-failed', `plugins: loading "${spec}" failed.`, { hint: 'Fix the error below in the plugin module.', cause });
      }
      for (const definition of collectDefinitions(module, spec)) {
        this.register(definition, spec);
        added.push(pluginId(definition.kind, definition.name));
      }
    }
    return added;
  }
}

function collectDefinitions(module: Record<string, unknown>, spec: string): AnyPluginDefinition[] {
  const exported = module.default ?? module;
  const candidates: unknown[] = Array.isArray(exported)
    ? exported
    : isDefinition(exported)
      ? [exported]
      : Array.isArray((exported as PluginPackage).plugins)
        ? [...(exported as PluginPackage).plugins]
        : [];
  const definitions = candidates.filter(isDefinition);
  if (definitions.length === 0) {
    throw new PluginError('plugin-load-failed', `plugins: "${spec}" exports no plugin definitions.`, {
      hint: 'Export `definePlugin({...})` as default, an array of them, or { meta, plugins: [...] }.',
    });
  }
  return definitions;
}

function isDefinition(value: unknown): value is AnyPluginDefinition {
  return typeof value === 'object' && value !== null && typeof (value as AnyPluginDefinition).kind === 'string'
    && typeof (value as AnyPluginDefinition).name === 'string' && typeof (value as AnyPluginDefinition).create === 'function';
}

function typeText(prop: Record<string, unknown>): string {
  if (Array.isArray(prop.enum)) return (prop.enum as unknown[]).map((v) => JSON.stringify(v)).join(' | ');
  const anyOf = prop.anyOf as Array<Record<string, unknown>> | undefined;
  if (anyOf) return anyOf.map(typeText).join(' | ');
  const type = prop.type;
  if (type === 'array') return `${typeText((prop.items ?? {}) as Record<string, unknown>)}[]`;
  const range: string[] = [];
  // z.int() carries the safe-integer bounds; they say nothing to a user.
  if (prop.minimum !== undefined && prop.minimum !== Number.MIN_SAFE_INTEGER) range.push(`≥${String(prop.minimum)}`);
  if (prop.exclusiveMinimum !== undefined) range.push(`>${String(prop.exclusiveMinimum)}`);
  if (prop.maximum !== undefined && prop.maximum !== Number.MAX_SAFE_INTEGER) range.push(`≤${String(prop.maximum)}`);
  if (prop.exclusiveMaximum !== undefined) range.push(`<${String(prop.exclusiveMaximum)}`);
  return `${typeof type === 'string' ? type : 'any'}${range.length ? ` ${range.join(' ')}` : ''}`;
}
