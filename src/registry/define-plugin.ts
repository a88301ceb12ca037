// definePlugin: a plugin is data (kind, name, schema, capabilities, factory). Importing a plugin file
// registers nothing; the registry decides what is loaded and when.
import type { z } from 'zod';
import type { PluginKind, PluginKindMap } from './kinds.js';

export interface PaperRef {
  /** "Authors, Title, Venue Year". */
  readonly cite: string;
  readonly arxiv?: string;
  readonly doi?: string;
  readonly url?: string;
}

export interface PluginDefinition<K extends PluginKind = PluginKind, O extends z.ZodType = z.ZodType> {
  readonly kind: K;
  /** kebab-case; user plugins are namespaced `<ns>:<name>`. */
  readonly name: string;
  /** One line for `milkit plugins`. */
  readonly summary: string;
  readonly paper?: PaperRef;
  /** The only source of truth for options: types, defaults, ranges and docs. */
  readonly options: O;
  readonly capabilities: Partial<PluginKindMap[K]['capabilities']>;
  /**
   * Capability flags that depend on the options, merged over `capabilities` once the options are parsed (mean-pool
   * with `level: instance` classifies each instance itself, so it owns its classifier only then).
   */
  readonly capabilitiesFor?: (options: z.output<O>) => Partial<PluginKindMap[K]['capabilities']>;
  create(options: z.output<O>, ctx: PluginKindMap[K]['context']): PluginKindMap[K]['instance'];
}

/** The erased form the registry stores (options are validated before create is called). */
export interface AnyPluginDefinition {
  readonly kind: PluginKind;
  readonly name: string;
  readonly summary: string;
  readonly paper?: PaperRef;
  readonly options: z.ZodType;
  readonly capabilities: Readonly<Record<string, unknown>>;
  readonly capabilitiesFor?: (options: never) => Readonly<Record<string, unknown>>;
  create(options: never, ctx: never): unknown;
}

/** Declares a plugin; returns it frozen. */
export function definePlugin<K extends PluginKind, O extends z.ZodType>(definition: PluginDefinition<K, O>): PluginDefinition<K, O> {
  return Object.freeze({ ...definition, capabilities: Object.freeze({ ...definition.capabilities }) });
}

/** `<kind>/<name>` */
export function pluginId(kind: PluginKind, name: string): string {
  return `${kind}/${name}`;
}

/** What a user plugin package or file exports: a namespace and its definitions. */
export interface PluginPackage {
  readonly meta?: { readonly namespace?: string };
  readonly plugins: readonly AnyPluginDefinition[] | readonly PluginDefinition<PluginKind, z.ZodType>[];
}
