// Where config groups live: folders under the search roots (first match wins), each file an option, plus
// options implied without a file (every registered plugin is an option of its slot's group).
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { CONFIG_EXTENSIONS } from './config-files.js';
import type { ConfigMapping } from './tree.js';

/** Where config groups live: search roots in order (first match wins) plus options the registry implies. */
export interface GroupRepository {
  readonly roots: readonly string[];
  groupExists(group: string): boolean;
  /** Option names of a group, sorted (files and implied options). */
  options(group: string): string[];
  /** Every group found under the roots, plus the plugin slot groups (for did-you-mean). */
  groups(): string[];
  /** The file of `group/name` (group may be ''), or implied content, or undefined. */
  find(group: string, name: string): { readonly file: string } | { readonly implied: ConfigMapping } | undefined;
}

/**
 * Options a group has without a file: for plugin slots, every registered plugin name is an option whose
 * content is `{ name }`, so `model/aggregator=max-pool` works for any plugin (a file with the same name wins).
 */
export type ImpliedOptions = (group: string) => readonly string[] | undefined;

export function createGroupRepository(roots: readonly string[], implied?: ImpliedOptions, impliedGroups: readonly string[] = []): GroupRepository {
  const fileOf = (group: string, name: string): string | undefined => {
    for (const root of roots) {
      for (const ext of CONFIG_EXTENSIONS) {
        const candidate = path.join(root, ...group.split('/').filter(Boolean), `${name}${ext}`);
        if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
      }
    }
    return undefined;
  };
  const fileOptions = (group: string): string[] => {
    const names = new Set<string>();
    for (const root of roots) {
      const dir = path.join(root, ...group.split('/').filter(Boolean));
      let entries: string[];
      try {
        entries = readdirSync(dir);
      } catch {
        continue;
      }
      for (const entry of entries) {
        const ext = CONFIG_EXTENSIONS.find((e) => entry.endsWith(e));
        if (ext && !entry.endsWith('.d.ts') && statSync(path.join(dir, entry)).isFile()) names.add(entry.slice(0, -ext.length));
      }
    }
    return [...names];
  };
  return {
    roots,
    groupExists: (group) => group !== '' && (fileOptions(group).length > 0 || (implied?.(group)?.length ?? 0) > 0),
    options: (group) => [...new Set([...fileOptions(group), ...(implied?.(group) ?? [])])].sort(),
    groups: () => {
      const found = new Set<string>();
      const visit = (root: string, rel: string[], depth: number): void => {
        if (depth > 4) return;
        let entries: string[];
        try {
          entries = readdirSync(path.join(root, ...rel));
        } catch {
          return;
        }
        for (const entry of entries) {
          const full = path.join(root, ...rel, entry);
          // A folder that is itself a search root (experiments/groups under experiments) is listed from there.
          if (statSync(full).isDirectory() && !roots.includes(full)) {
            const group = [...rel, entry].join('/');
            if (fileOptions(group).length > 0) found.add(group);
            visit(root, [...rel, entry], depth + 1);
          }
        }
      };
      for (const root of roots) visit(root, [], 0);
      for (const group of impliedGroups) found.add(group);
      return [...found].sort();
    },
    find: (group, name) => {
      const file = fileOf(group, name);
      if (file) return { file };
      if (group !== '' && implied?.(group)?.includes(name)) return { implied: { name } };
      return undefined;
    },
  };
}
