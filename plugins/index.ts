// The built-in plugin manifest, built from the folders: plugins/<kind-plural>/<name>.ts is `<kind>/<name>`
// (<name>.js in the compiled package under dist/plugins/; folders such as _shared/ hold family helpers, not plugins).
// Files load lazily (on first use), so `milkit --help` and listings stay fast; a file whose definition does
// not match its path is rejected by the registry (manifest-mismatch).
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { PluginManifest } from 'milkit';

/** Folder name → plugin kind. */
export const KIND_FOLDERS = {
  aggregators: 'aggregator',
  classifiers: 'classifier',
  losses: 'loss',
  prescreeners: 'prescreener',
  datasets: 'dataset',
  metrics: 'metric',
  trackers: 'tracker',
  executors: 'executor',
  strategies: 'strategy',
  'slide-readers': 'slide-reader',
  'tissue-detectors': 'tissue-detector',
  'feature-extractors': 'feature-extractor',
} as const;

const here = dirname(fileURLToPath(import.meta.url));

/** Every built-in plugin file as a lazy loader, keys sorted. */
export function builtinManifest(): PluginManifest {
  const entries: Array<[string, () => Promise<{ default: unknown }>]> = [];
  for (const [folder, kind] of Object.entries(KIND_FOLDERS)) {
    let files: string[];
    try {
      files = readdirSync(join(here, folder));
    } catch {
      continue;
    }
    for (const file of files) {
      const match = /^([a-z0-9][a-z0-9-]*)\.(?:ts|js)$/.exec(file);
      if (!match) continue;
      const url = pathToFileURL(join(here, folder, file)).href;
      entries.push([`${kind}/${match[1] as string}`, () => import(url) as Promise<{ default: unknown }>]);
    }
  }
  entries.sort(([a], [b]) => a.localeCompare(b));
  return Object.fromEntries(entries);
}
