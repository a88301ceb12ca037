// The defaults list, with Hydra 1.1+ semantics: config group defaults (`- model/aggregator: abmil`), plain
// config paths (`- base`), `_self_` (implicitly last), `optional`, `override`, `@package` and
// `# @package` headers, nested defaults in group files (relative group paths), multi-select, and the
// command line's `group=option`, `+group=option`, `~group`. Like Hydra, each list is walked back to front
// so that `override` entries of later configs (the "experiment" pattern) apply to earlier groups.
import { ConfigError } from '../errors.js';
import { suggest } from '../util/suggest.js';
import { displayPath, readConfigFile, type LoadedConfigFile } from './config-files.js';
import type { GroupRepository } from './group-repository.js';

export { createGroupRepository, type GroupRepository, type ImpliedOptions } from './group-repository.js';
import type { ConfigMapping } from './tree.js';

/** A change of the defaults list from the command line (or a sweep cell). */
export interface GroupOverride {
  readonly text: string;
  readonly kind: 'set' | 'add' | 'delete';
  readonly group: string;
  readonly package?: string;
  /** The option(s); for delete, only drop the group when its choice equals this. */
  readonly option?: string | readonly string[] | null;
}

/** One element of the final defaults list, in merge order. */
export interface DefaultsEntry {
  /** `model/aggregator/abmil`, or the primary config's shown path. */
  readonly configPath: string;
  /** What messages call its origin: a file path, or `registered plugin aggregator/abmil`. */
  readonly source: string;
  /** Dotted package the content is placed at ('' = the root). */
  readonly package: string;
  readonly content: ConfigMapping;
  readonly primary: boolean;
  /** `group` or `group@pkg` for group defaults (what `group=option` addresses). */
  readonly overrideKey?: string;
}

export interface DefaultsResult {
  readonly entries: readonly DefaultsEntry[];
  /** Final choice per group default (override key → option; lists for multi-select). */
  readonly choices: Readonly<Record<string, string | readonly string[]>>;
}

type RawEntry =
  | { readonly type: 'self' }
  | { readonly type: 'config'; readonly path: string; readonly package: string | undefined; readonly optional: boolean }
  | {
      readonly type: 'group';
      readonly group: string;
      readonly package: string | undefined;
      readonly option: string | readonly string[] | null;
      readonly optional: boolean;
      readonly override: boolean;
      readonly externalAppend?: boolean;
    };

interface Node {
  readonly kind: 'primary' | 'config' | 'group';
  /** Absolute group path of this node ('' for root-level configs and the primary). */
  readonly group: string;
  name: string | readonly string[] | null;
  /** Default package relative to the parent: the group as written, dotted. */
  readonly relativePackage: string;
  readonly explicitPackage: string | undefined;
  readonly parentPackage: string;
  readonly optional: boolean;
  /** Where it was declared: a file's shown path or the override text. */
  readonly declaredIn: string;
  readonly fromCommandLine: boolean;
  readonly overrideKey: string | undefined;
}

const ENTRY_FORMS = 'Entries look like "- group: option", "- group@pkg: option", "- optional group: option", "- override group: option", "- config_name" or "- _self_".';

function parseEntry(raw: unknown, index: number, shown: string): RawEntry {
  const bad = (what: string): never => {
    throw new ConfigError('bad-defaults', `defaults.${index}: ${what} (${shown}).`, { hint: ENTRY_FORMS });
  };
  if (typeof raw === 'string') {
    if (raw === '_self_') return { type: 'self' };
    if (raw.includes('${')) bad('interpolation in the defaults list is not supported');
    const [configPath, pkg] = splitPackage(raw.trim());
    if (configPath === '' || !/^\/?[A-Za-z0-9_$.-]+(?:\/[A-Za-z0-9_$.-]+)*$/.test(configPath)) bad(`"${raw}" is not a config path`);
    return { type: 'config', path: configPath, package: pkg, optional: false };
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return bad(`expected a string or a one-key mapping, got ${JSON.stringify(raw)}`);
  const pairs = Object.entries(raw as Record<string, unknown>);
  if (pairs.length !== 1) return bad(`expected one "group: option" pair, got ${pairs.length} keys`);
  const [rawKey, value] = pairs[0] as [string, unknown];
  const words = rawKey.trim().split(/\s+/);
  const keyword = words.length === 2 ? words[0] : undefined;
  if (words.length > 2 || (keyword !== undefined && keyword !== 'optional' && keyword !== 'override')) bad(`unknown keyword in "${rawKey}" (expected "optional" or "override")`);
  const [group, pkg] = splitPackage(words[words.length - 1] as string);
  if (!/^\/?[A-Za-z0-9_$-]+(?:\/[A-Za-z0-9_$-]+)*$/.test(group)) bad(`"${group}" is not a config group name`);
  let option: string | readonly string[] | null;
  if (value === null) option = null;
  else if (typeof value === 'string') {
    if (value.includes('${')) bad('interpolation in the defaults list is not supported');
    option = value;
  } else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) option = value as string[];
  else return bad(`the option of ${group} must be a name, a list of names or null`);
  return { type: 'group', group, package: pkg, option, optional: keyword === 'optional', override: keyword === 'override' };
}

function splitPackage(text: string): [string, string | undefined] {
  const at = text.indexOf('@');
  return at === -1 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}

function joinPackage(parent: string, child: string): string {
  if (parent === '') return child;
  if (child === '') return parent;
  return `${parent}.${child}`;
}

/** Hydra's package rule: relative to the parent, `_global_` anywhere resets to the root. */
function finalPackage(node: Node, header: string | undefined): string {
  const groupDotted = node.group.split('/').filter(Boolean).join('.');
  const spec = (node.explicitPackage ?? header ?? node.relativePackage).replaceAll('_group_', groupDotted);
  const joined = joinPackage(node.parentPackage, spec);
  const globalAt = joined.lastIndexOf('_global_');
  return globalAt === -1 ? joined : joined.slice(globalAt + '_global_'.length + 1);
}

function joinGroup(parentGroup: string, written: string): string {
  if (written.startsWith('/')) return written.slice(1);
  return parentGroup === '' ? written : `${parentGroup}/${written}`;
}

interface ChoiceOverride {
  readonly value: string | readonly string[] | null;
  readonly external: boolean;
  readonly declaredIn: string;
  used: boolean;
}

/** Builds the final defaults list of a primary config. */
export class DefaultsListBuilder {
  private readonly choices = new Map<string, ChoiceOverride>();
  private readonly deletions = new Map<string, { readonly name: string | undefined; readonly text: string; used: boolean }>();
  private readonly appends: RawEntry[] = [];
  private readonly appendOrigins: string[] = [];
  private readonly known = new Map<string, { readonly name: string; readonly declaredIn: string; readonly fromCommandLine: boolean }>();
  private readonly loaded = new Map<string, LoadedConfigFile>();

  constructor(
    private readonly repo: GroupRepository,
    private readonly cwd: string,
    groupOverrides: readonly GroupOverride[],
  ) {
    for (const o of groupOverrides) {
      const key = o.package === undefined ? o.group : `${o.group}@${o.package}`;
      if (o.kind === 'delete') {
        if (o.option !== undefined && o.option !== null && typeof o.option !== 'string') {
          throw new ConfigError('bad-override', `override ${o.text}: deleting a group takes at most one option name.`);
        }
        this.deletions.set(key, { name: o.option ?? undefined, text: o.text, used: false });
      } else if (o.kind === 'add') {
        this.appends.push({ type: 'group', group: o.group, package: o.package, option: o.option ?? null, optional: false, override: false, externalAppend: true });
        this.appendOrigins.push(`override ${o.text}`);
      } else {
        this.choices.set(key, { value: o.option ?? null, external: true, declaredIn: `override ${o.text}`, used: false });
      }
    }
  }

  async build(primaryFile: string): Promise<DefaultsResult> {
    const shown = displayPath(primaryFile, this.cwd);
    const root: Node = {
      kind: 'primary', group: '', name: shown, relativePackage: '', explicitPackage: undefined, parentPackage: '',
      optional: false, declaredIn: shown, fromCommandLine: false, overrideKey: undefined,
    };
    const entries = await this.expand(root, true, primaryFile);
    this.ensureOverridesUsed(shown);
    this.ensureDeletionsUsed();
    const seen = new Set<string>();
    for (const entry of entries) {
      if (entry.overrideKey === undefined || entry.content === undefined) continue;
      if (seen.has(`${entry.overrideKey}/${entry.configPath}`)) {
        throw new ConfigError('duplicate-default', `defaults: ${entry.overrideKey} appears more than once in the final defaults list (${shown}).`);
      }
      seen.add(`${entry.overrideKey}/${entry.configPath}`);
    }
    const choices: Record<string, string | readonly string[]> = {};
    for (const [key, { name }] of this.known) choices[key] = name;
    return { entries, choices };
  }

  private async load(file: string): Promise<LoadedConfigFile> {
    const hit = this.loaded.get(file);
    if (hit) return hit;
    const loaded = await readConfigFile(file, displayPath(file, this.cwd));
    this.loaded.set(file, loaded);
    return loaded;
  }

  private async expand(node: Node, isRoot: boolean, primaryFile?: string): Promise<DefaultsEntry[]> {
    if (node.kind === 'group' && node.overrideKey !== undefined) {
      const deletion = this.deletions.get(node.overrideKey);
      if (deletion && (deletion.name === undefined || deletion.name === node.name)) {
        deletion.used = true;
        return [];
      }
      this.setKnownChoice(node);
    }
    if (node.name === null) return [];
    if (typeof node.name !== 'string') throw new Error('multi-select options are expanded by the caller');
    const name = node.name;
    if (name === '???') {
      throw new ConfigError('missing-choice', `${node.declaredIn} › defaults: choose an option for ${node.group} (${node.group}=<option>).`, {
        hint: `Options: ${this.repo.options(node.group).join(', ') || 'none found'}.`,
      });
    }
    const configPath = node.kind === 'primary' ? name : node.group === '' ? name : `${node.group}/${name}`;
    let loaded: LoadedConfigFile;
    let source: string;
    if (primaryFile !== undefined) {
      loaded = await this.load(primaryFile);
      source = displayPath(primaryFile, this.cwd);
    } else {
      const found = this.repo.find(node.group, name);
      if (!found) {
        if (node.optional) return [];
        throw this.notFound(node, name);
      }
      if ('implied' in found) {
        // A registered plugin without a group file: its content is just the plugin ref.
        return [{ configPath, source: `registered plugin (no file) ${configPath}`, package: finalPackage(node, undefined), content: { ...found.implied }, primary: false, ...(node.overrideKey ? { overrideKey: node.overrideKey } : {}) }];
      }
      loaded = await this.load(found.file);
      source = displayPath(found.file, this.cwd);
    }
    const pkg = node.kind === 'primary' ? '' : finalPackage(node, loaded.packageHeader);
    const defaults = (loaded.defaults ?? []).map((raw, i) => parseEntry(raw, i, source));
    if (defaults.length > 0 || (isRoot && this.appends.length > 0)) {
      if (defaults.filter((d) => d.type === 'self').length > 1) throw new ConfigError('bad-defaults', `defaults: _self_ appears more than once (${source}).`);
      // Hydra 1.1+: without _self_, the file's own keys are merged after its defaults (they win).
      if (!defaults.some((d) => d.type === 'self')) defaults.push({ type: 'self' });
    }
    const self: DefaultsEntry = { configPath, source, package: pkg, content: loaded.content, primary: node.kind === 'primary', ...(node.overrideKey ? { overrideKey: node.overrideKey } : {}) };
    // A config without a defaults list is a leaf: just its own content.
    if (defaults.length === 0) return [self];
    const origins = defaults.map(() => source);
    if (isRoot) {
      defaults.push(...this.appends);
      origins.push(...this.appendOrigins);
    }
    this.registerConfigOverrides(defaults, node, source);

    const parts: DefaultsEntry[][] = [];
    for (let i = defaults.length - 1; i >= 0; i -= 1) {
      const d = defaults[i] as RawEntry;
      const declaredIn = origins[i] as string;
      if (d.type === 'self') {
        parts.push([self]);
        continue;
      }
      if (d.type === 'group' && d.override) continue;
      const fromCommandLine = d.type === 'group' && d.externalAppend === true;
      if (d.type === 'config') {
        const absolute = joinGroup(node.group, d.path);
        const slash = absolute.lastIndexOf('/');
        const writtenDir = d.path.replace(/^\//, '').split('/').slice(0, -1).join('.');
        const child: Node = {
          kind: 'config', group: slash === -1 ? '' : absolute.slice(0, slash), name: absolute.slice(slash + 1), relativePackage: writtenDir,
          explicitPackage: d.package, parentPackage: pkg, optional: d.optional, declaredIn, fromCommandLine, overrideKey: undefined,
        };
        parts.push(await this.expand(child, false));
        continue;
      }
      const group = fromCommandLine ? d.group : joinGroup(node.group, d.group);
      const overrideKey = d.package === undefined ? group : `${group}@${d.package}`;
      const choice = this.choices.get(overrideKey);
      let option = d.option;
      if (choice) {
        option = choice.value;
        choice.used = true;
      }
      const base = {
        group, relativePackage: d.group.replace(/^\//, '').split('/').join('.'), explicitPackage: d.package,
        parentPackage: fromCommandLine ? '' : pkg, optional: d.optional, declaredIn: choice ? choice.declaredIn : declaredIn, fromCommandLine,
      };
      if (Array.isArray(option)) {
        const deletion = this.deletions.get(overrideKey);
        if (deletion && deletion.name === undefined) {
          deletion.used = true;
          continue;
        }
        // Multi-select: each option is merged at the group's package, in list order.
        this.setKnownChoice({ ...base, kind: 'group', name: option, overrideKey });
        const items: DefaultsEntry[][] = [];
        for (const item of [...option].reverse()) {
          items.push(await this.expand({ ...base, kind: 'config', name: item as string, overrideKey: undefined }, false));
        }
        parts.push(items.reverse().flat());
        continue;
      }
      parts.push(await this.expand({ ...base, kind: 'group', name: option as string | null, overrideKey }, false));
    }
    return parts.reverse().flat();
  }

  private registerConfigOverrides(defaults: readonly RawEntry[], node: Node, source: string): void {
    let lastOverride: string | undefined;
    for (const d of defaults) {
      if (d.type === 'self') continue;
      if (d.type === 'group' && d.override) {
        const group = joinGroup(node.group, d.group);
        const key = d.package === undefined ? group : `${group}@${d.package}`;
        lastOverride = key;
        if (!this.choices.has(key)) this.choices.set(key, { value: d.option, external: false, declaredIn: source, used: false });
        continue;
      }
      if (lastOverride !== undefined && !(d.type === 'group' && d.externalAppend)) {
        throw new ConfigError('bad-defaults', `defaults: "override ${lastOverride}" comes before a non-override entry (${source}).`, {
          hint: 'Put override entries at the end of the defaults list.',
        });
      }
    }
  }

  private setKnownChoice(node: Node): void {
    const key = node.overrideKey;
    if (key === undefined || node.name === null) return;
    const name = typeof node.name === 'string' ? node.name : node.name.join(',');
    const previous = this.known.get(key);
    if (previous === undefined) {
      this.known.set(key, { name, declaredIn: node.declaredIn, fromCommandLine: node.fromCommandLine });
      return;
    }
    if (previous.name !== name) {
      // Lists are walked back to front, so a command-line append may be seen before the entry it clashes with.
      const [appended, existing] = node.fromCommandLine ? [{ name, declaredIn: node.declaredIn }, previous] : previous.fromCommandLine ? [previous, { name, declaredIn: node.declaredIn }] : [undefined, undefined];
      if (appended && existing) {
        throw new ConfigError('group-already-in-defaults', `${appended.declaredIn}: ${key} is already in the defaults list (${existing.name}, from ${existing.declaredIn}).`, {
          hint: `To change it, use ${key}=${appended.name} (without "+").`,
        });
      }
      throw new ConfigError('conflicting-defaults', `defaults: ${key} is chosen twice, as ${previous.name} (${previous.declaredIn}) and as ${name} (${node.declaredIn}).`, {
        hint: `To replace an earlier choice from a config, write "- override ${key}: ${name}".`,
      });
    }
  }

  private ensureOverridesUsed(primaryShown: string): void {
    for (const [key, choice] of this.choices) {
      if (choice.used) continue;
      const option = Array.isArray(choice.value) ? `[${choice.value.join(',')}]` : String(choice.value);
      if (choice.external) {
        throw new ConfigError('group-not-in-defaults', `${choice.declaredIn}: config group ${key} is not in the defaults list of ${primaryShown}.`, {
          hint: `To add it, use +${key}=${option}.`,
        });
      }
      throw new ConfigError('group-not-in-defaults', `${choice.declaredIn} › defaults: "override ${key}: ${option}" matches no group in the defaults list.`, {
        hint: `Add "- ${key}: ${option}" to a defaults list instead.`,
      });
    }
  }

  private ensureDeletionsUsed(): void {
    for (const [key, deletion] of this.deletions) {
      if (deletion.used) continue;
      const what = deletion.name === undefined ? key : `${key}=${deletion.name}`;
      throw new ConfigError('group-not-in-defaults', `override ${deletion.text}: cannot delete ${what}, it is not in the defaults list.`, {
        hint: `Groups in the defaults list: ${[...this.known.keys()].sort().join(', ') || 'none'}.`,
      });
    }
  }

  private notFound(node: Node, name: string): ConfigError {
    const where = node.declaredIn.startsWith('override ') ? node.declaredIn : `${node.declaredIn} › defaults`;
    const searched = `Searched: ${this.repo.roots.map((r) => `${displayPath(r, this.cwd)}/`).join(', ')}.`;
    if (node.group !== '' && !this.repo.groupExists(node.group)) {
      const close = suggest(node.group, this.repo.groups(), 1)[0];
      return new ConfigError('unknown-group', `${where}: no config group "${node.group}".${close ? ` Did you mean "${close}"?` : ''}`, {
        hint: `Groups: ${this.repo.groups().join(', ') || 'none'}. ${searched}`,
      });
    }
    if (node.group === '') {
      return new ConfigError('config-not-found', `${where}: no config "${name}".`, { hint: searched });
    }
    const options = this.repo.options(node.group);
    const close = suggest(name, options, 1)[0];
    return new ConfigError('unknown-option', `${where}: config group ${node.group} has no option "${name}".${close ? ` Did you mean "${close}"?` : ''} Options: ${options.join(', ')}.`, {
      hint: searched,
    });
  }
}
