// Composition of a config with Hydra semantics: build the defaults list (group options found under the
// primary config's folder, its `groups/` subfolder and the project's extra search paths), merge each entry
// at its package, apply key overrides in order, interpolate, and remember which file set each key so
// later errors can name it.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { showValue } from './zod-issues.js';
import { suggest } from '../util/suggest.js';
import { displayPath } from './config-files.js';
import { createGroupRepository, DefaultsListBuilder, type GroupOverride, type GroupRepository, type ImpliedOptions } from './defaults-list.js';
import { interpolateConfig, missingValues } from './interpolate.js';
import { PLUGIN_SLOT_GROUPS } from './plugin-slots.js';
import { formatValue, parseOverride, type Override } from './overrides.js';
import {
  blockerOf, deepEqual, deleteAt, isMapping, joinKey, lookup, mergeInto, placeAt, setAt, splitKey, walkPaths,
  type ConfigMapping, type KeySegment,
} from './tree.js';

export interface ComposeOptions {
  /** Working directory: relative paths and shown file names are relative to it (default process.cwd()). */
  readonly cwd?: string;
  /** Environment for `${env:VAR}` (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Extra config roots searched after the primary config's folder (project `searchPath`). */
  readonly searchPath?: readonly string[];
  /** Options a group has without a file (registered plugins for plugin slots). */
  readonly impliedOptions?: ImpliedOptions;
  /**
   * Keys `key=value` may set although the composed config lacks them (schema-defined keys, anything
   * inside a plugin slot). Without it, `key=value` needs the key to exist, as in Hydra.
   */
  readonly isKnownKey?: (path: readonly KeySegment[]) => boolean;
  /** Known key paths offered as "did you mean" for an unknown key. */
  readonly knownKeys?: () => readonly string[];
  /** Resolve `${...}` (default true). */
  readonly interpolate?: boolean;
}

export interface ComposedConfig {
  /** The primary config path as given. */
  readonly file: string;
  readonly primaryFile: string;
  /** Folder of the primary config. */
  readonly baseDir: string;
  /** The composed, overridden and interpolated config (without `defaults`). */
  readonly config: ConfigMapping;
  /** Final option per config group (`model/aggregator` → `abmil`). */
  readonly choices: Readonly<Record<string, string | readonly string[]>>;
  /** The final defaults list in merge order. */
  readonly defaults: ReadonlyArray<{ readonly configPath: string; readonly source: string; readonly package: string }>;
  /** The file (or `override <text>`) that last set a key, found by the longest known prefix of the key. */
  sourceOf(key: string): string;
  /** Which file each top-level key came from. */
  readonly topLevelSources: Readonly<Record<string, string>>;
}

/** Config roots in search order: each base folder, then its `groups/` subfolder when present. */
export function searchRoots(primaryFile: string, searchPath: readonly string[], cwd: string): string[] {
  const bases = [path.dirname(primaryFile), ...searchPath.map((p) => path.resolve(cwd, p))];
  const roots: string[] = [];
  for (const base of bases) {
    for (const candidate of [base, path.join(base, 'groups')]) {
      if (!roots.includes(candidate) && existsSync(candidate) && statSync(candidate).isDirectory()) roots.push(candidate);
    }
  }
  return roots;
}

/** The options of a config group as seen from a primary config (for `glob(...)` sweeps and listings). */
export function groupOptions(file: string, group: string, options: ComposeOptions = {}): string[] {
  const cwd = options.cwd ?? process.cwd();
  const repo = createGroupRepository(searchRoots(path.resolve(cwd, file), options.searchPath ?? [], cwd), options.impliedOptions, options.impliedOptions ? PLUGIN_SLOT_GROUPS : []);
  return repo.options(group);
}

class Provenance {
  private readonly sources = new Map<string, string>();

  /** Records `source` for `prefix` and everything inside `value`; replaced subtrees forget older entries. */
  record(prefix: readonly KeySegment[], value: unknown, source: string, merged: boolean): void {
    const key = joinKey(prefix);
    if (!merged || !isMapping(value)) this.forget(key);
    if (key !== '') this.sources.set(key, source);
    for (const sub of walkPaths(value, [...prefix])) this.sources.set(joinKey(sub), source);
  }

  /** Marks the ancestors of a package as introduced by `source` when nothing set them before. */
  introduce(prefix: readonly string[], source: string): void {
    for (let i = 1; i < prefix.length; i += 1) {
      const key = prefix.slice(0, i).join('.');
      if (!this.sources.has(key)) this.sources.set(key, source);
    }
  }

  forget(key: string): void {
    for (const known of [...this.sources.keys()]) {
      if (key === '' || known === key || known.startsWith(`${key}.`)) this.sources.delete(known);
    }
  }

  sourceOf(key: string): string | undefined {
    const parts = splitKey(key);
    for (let n = parts.length; n > 0; n -= 1) {
      const hit = this.sources.get(parts.slice(0, n).join('.'));
      if (hit !== undefined) return hit;
    }
    return undefined;
  }
}

/** Composes `file` with `overrides` (override strings or parsed overrides). */
export async function composeConfig(file: string, overrides: readonly (string | Override)[], options: ComposeOptions = {}): Promise<ComposedConfig> {
  const cwd = options.cwd ?? process.cwd();
  const primaryFile = path.resolve(cwd, file);
  const primaryShown = displayPath(primaryFile, cwd);
  const repo = createGroupRepository(searchRoots(primaryFile, options.searchPath ?? [], cwd), options.impliedOptions, options.impliedOptions ? PLUGIN_SLOT_GROUPS : []);
  const parsed = overrides.map((o) => (typeof o === 'string' ? parseOverride(o) : o));
  const { groupOverrides, keyOverrides } = classifyOverrides(parsed, repo, cwd);

  const { entries, choices } = await new DefaultsListBuilder(repo, cwd, groupOverrides).build(primaryFile);
  const config: ConfigMapping = {};
  const provenance = new Provenance();
  for (const entry of entries) {
    const packagePath = splitKey(entry.package);
    mergeInto(config, placeAt(entry.package, entry.content));
    provenance.introduce(packagePath, entry.source);
    provenance.record(packagePath, entry.content, entry.source, true);
  }
  for (const override of keyOverrides) applyKeyOverride(config, override, provenance, options);

  const sourceOf = (key: string): string => provenance.sourceOf(key) ?? primaryShown;
  const resolved = options.interpolate === false ? config : interpolateConfig(config, { env: options.env ?? process.env, sourceOf });
  const missing = missingValues(resolved);
  if (missing.length > 0) {
    const first = missing[0] as string;
    throw new ConfigError('missing-value', `${first}: mandatory value missing (???) (${sourceOf(first)}).`, {
      hint: `Set it in a config or on the command line: ${missing.map((k) => `${k}=<value>`).join(' ')}.`,
    });
  }
  const topLevelSources: Record<string, string> = {};
  for (const key of Object.keys(resolved)) topLevelSources[key] = sourceOf(key);
  return {
    file,
    primaryFile,
    baseDir: path.dirname(primaryFile),
    config: resolved,
    choices,
    defaults: entries.map(({ configPath, source, package: pkg }) => ({ configPath, source, package: pkg })),
    sourceOf,
    topLevelSources,
  };
}

function classifyOverrides(overrides: readonly Override[], repo: GroupRepository, cwd: string): { groupOverrides: GroupOverride[]; keyOverrides: Override[] } {
  const groupOverrides: GroupOverride[] = [];
  const keyOverrides: Override[] = [];
  for (const o of overrides) {
    if (o.sweep) {
      throw new ConfigError('sweep-not-allowed', `override ${o.text}: a sweep gives several values, but a single run takes one.`, {
        hint: 'Run it as a sweep (milkit sweep), or pick one value.',
      });
    }
    const groupLike = o.target === 'group' || (o.target === 'either' && repo.groupExists(o.key) && !isMapping(o.value));
    if (!groupLike) {
      keyOverrides.push(o);
      continue;
    }
    if (!repo.groupExists(o.key)) {
      const close = suggest(o.key, repo.groups(), 1)[0];
      throw new ConfigError('unknown-group', `override ${o.text}: no config group "${o.key}".${close ? ` Did you mean "${close}"?` : ''}`, {
        hint: `Groups: ${repo.groups().join(', ') || 'none'}. Searched: ${repo.roots.map((r) => `${displayPath(r, cwd)}/`).join(', ')}.`,
      });
    }
    if (o.kind === 'force-add') {
      throw new ConfigError('bad-override', `override ${o.text}: ++ is not supported for config groups.`, { hint: `Use ${o.key}=... to change the option or +${o.key}=... to add the group.` });
    }
    const option = groupOption(o);
    groupOverrides.push({ text: o.text, kind: o.kind === 'add' ? 'add' : o.kind === 'delete' ? 'delete' : 'set', group: o.key, ...(o.package !== undefined ? { package: o.package } : {}), ...(option !== undefined ? { option } : {}) });
  }
  return { groupOverrides, keyOverrides };
}

function groupOption(o: Override): string | readonly string[] | null | undefined {
  const value = o.value;
  if (value === undefined || value === null) return value;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  throw new ConfigError('bad-override', `override ${o.text}: a config group takes an option name (or a list of names), got ${showValue(value)}.`, {
    hint: `Options: ${o.key}=<option>.`,
  });
}

function applyKeyOverride(config: ConfigMapping, o: Override, provenance: Provenance, options: ComposeOptions): void {
  const key = joinKey(o.path);
  const source = `override ${o.text}`;
  const found = lookup(config, o.path);
  if (o.kind === 'delete') {
    if (!found.found) {
      throw new ConfigError('unknown-key', `${key}: cannot delete it, the key is not in the composed config (${source}).${unknownKeyHint(config, o.path, options)}`);
    }
    if (o.value !== undefined && !deepEqual(found.value, o.value)) {
      throw new ConfigError('delete-mismatch', `${key}: not deleted, its value is ${showValue(found.value)}, not ${showValue(o.value)} (${source}).`);
    }
    deleteAt(config, o.path);
    // A key that is missing now was removed by this override; errors about it should say so.
    provenance.record(o.path, undefined, source, false);
    return;
  }
  if (o.kind === 'add' && found.found) {
    throw new ConfigError('key-exists', `${key}: already set to ${showValue(found.value)} (by ${provenance.sourceOf(key) ?? 'the config'}), and +${key}=... only adds new keys (${source}).`, {
      hint: `Use ${key}=${formatValue(o.value)} to change it, or ++${key}=${formatValue(o.value)} to add or replace.`,
    });
  }
  if (o.kind === 'set' && !found.found && !(options.isKnownKey?.(o.path) ?? false)) {
    // With a schema, a key it does not define would be rejected anyway, so "+key=" is no way out.
    throw new ConfigError('unknown-key', `${key}: no such key in the composed config${options.isKnownKey ? ' or the experiment schema' : ''} (got ${showValue(o.value)} from ${source}).${unknownKeyHint(config, o.path, options)}`,
      options.isKnownKey ? {} : { hint: `To add a new key anyway, use +${o.text}.` });
  }
  const blocker = blockerOf(config, o.path);
  if (blocker !== undefined) throw new ConfigError('bad-override', `${key}: cannot set it, ${blocker} (${source}).`);
  const merged = found.found && isMapping(found.value) && isMapping(o.value);
  // Hydra: a mapping merges into an existing mapping, anything else replaces.
  setAt(config, o.path, o.value, true);
  provenance.record(o.path, o.value, source, merged);
}

function unknownKeyHint(config: ConfigMapping, keyPath: readonly KeySegment[], options: ComposeOptions): string {
  const key = joinKey(keyPath);
  const candidates = new Set<string>(options.knownKeys?.() ?? []);
  for (const p of walkPaths(config)) candidates.add(joinKey(p));
  candidates.delete(key);
  const last = String(keyPath[keyPath.length - 1]);
  // Same final name elsewhere (train.lr → train.optimizer.lr) beats spelling distance.
  const sameLeaf = [...candidates].filter((c) => c.split('.').pop() === last).sort((a, b) => a.length - b.length);
  const close = sameLeaf[0] ?? suggest(key, [...candidates], 1)[0];
  return close === undefined ? '' : ` Did you mean "${close}"?`;
}
