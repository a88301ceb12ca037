// The built-in plugins the contract suites run over, and where their golden cases live (next to each source).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtinManifest, KIND_FOLDERS } from '../../plugins/index.js';
import { Registry, type AnyPluginDefinition, type PluginKind } from '../../src/registry/index.js';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function builtinRegistry(): Registry {
  return new Registry(builtinManifest());
}

/** plugins/<folder> of a kind: the golden directory of its built-ins. */
export function goldenDirOf(kind: PluginKind): string {
  const folder = Object.entries(KIND_FOLDERS).find(([, k]) => k === kind)?.[0];
  if (!folder) throw new Error(`no plugin folder for kind ${kind}`);
  return join(REPO_ROOT, 'plugins', folder);
}

/** Every built-in definition of a kind, loaded (top-level await in the test files keeps describe() synchronous). */
export async function builtinDefinitions(kind: PluginKind, registry: Registry = builtinRegistry()): Promise<AnyPluginDefinition[]> {
  return registry.list(kind);
}
