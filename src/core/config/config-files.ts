// Reads one config file — YAML, JSON or a TS/JS module whose default export is the config — into a
// mapping, its `defaults:` list and its `# @package` header. Parse errors name the file and line.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError } from '../errors.js';
import { isMapping, type ConfigMapping } from './tree.js';

/** Extensions a config (primary or group option) may have, in lookup order. */
export const CONFIG_EXTENSIONS = ['.yaml', '.yml', '.json', '.ts', '.mts', '.js', '.mjs'] as const;

export interface LoadedConfigFile {
  /** Absolute path. */
  readonly file: string;
  /** The file's own keys (without `defaults` and `$schema`). */
  readonly content: ConfigMapping;
  /** The raw `defaults:` list, if any. */
  readonly defaults: readonly unknown[] | undefined;
  /** `# @package <pkg>` from the first lines of a YAML file. */
  readonly packageHeader: string | undefined;
}

/** `experiments/x.yaml` relative to cwd when inside it, else the absolute path (forward slashes). */
export function displayPath(file: string, cwd: string): string {
  const relative = path.relative(cwd, file);
  const shown = relative === '' || relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
  return shown.split(path.sep).join('/');
}

/** Reads a config file. `shown` is how messages name it. */
export async function readConfigFile(file: string, shown: string): Promise<LoadedConfigFile> {
  const ext = path.extname(file).toLowerCase();
  let raw: unknown;
  let packageHeader: string | undefined;
  if (ext === '.yaml' || ext === '.yml' || ext === '.json') {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (cause) {
      throw new ConfigError('config-not-found', `${shown}: cannot read the config file.`, { hint: 'Check the path (relative to the working directory).', cause });
    }
    if (ext === '.json') raw = parseJson(text, shown);
    else {
      raw = parseYaml(text, shown);
      packageHeader = readPackageHeader(text);
    }
  } else if (['.ts', '.mts', '.js', '.mjs'].includes(ext)) {
    raw = await importConfigModule(file, shown);
  } else {
    throw new ConfigError('unsupported-config-format', `${shown}: unsupported config file type "${ext || '(none)'}".`, { hint: `Use one of ${CONFIG_EXTENSIONS.join(', ')}.` });
  }
  if (raw === null || raw === undefined) raw = {};
  if (!isMapping(raw)) {
    throw new ConfigError('config-not-a-mapping', `${shown}: a config file must hold a mapping of keys (got ${Array.isArray(raw) ? 'a list' : typeof raw}).`);
  }
  const { defaults, $schema: _editorSchema, ...content } = raw;
  if (defaults !== undefined && defaults !== null && !Array.isArray(defaults)) {
    throw new ConfigError('bad-defaults', `defaults: must be a list (${shown}).`, { hint: 'Write it as "defaults:" followed by "- group: option" lines.' });
  }
  return { file, content, defaults: Array.isArray(defaults) ? defaults : undefined, packageHeader };
}

function parseJson(text: string, shown: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new ConfigError('config-parse', `${shown}: invalid JSON: ${(cause as Error).message}.`, { cause });
  }
}

function parseYaml(text: string, shown: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const line = lineCounter.linePos(first.pos[0]).line;
    throw new ConfigError('config-parse', `${shown}:${line}: invalid YAML: ${first.message.split('\n')[0] ?? first.message}.`, {
      hint: 'Fix the YAML syntax at that line (indentation, a missing ":" or an unclosed quote/bracket are common).',
    });
  }
  try {
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_EXPANSION }) as unknown;
  } catch (cause) {
    // yaml refuses documents whose aliases expand past the budget ("billion laughs"): say so about this file.
    if (cause instanceof Error && /alias/i.test(cause.message)) {
      throw new ConfigError('yaml-alias-limit', `${shown}: YAML aliases (*name) expand to more than ${MAX_YAML_ALIAS_EXPANSION} nodes.`, {
        hint: 'Write the repeated values out, or use ${...} interpolation to refer to one value; aliases of aliases multiply.',
        cause,
      });
    }
    throw cause;
  }
}

/** Alias expansions a config file may make (yaml counts them per alias); real configs use a handful. */
export const MAX_YAML_ALIAS_EXPANSION = 1000;

function readPackageHeader(text: string): string | undefined {
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '') continue;
    if (!trimmed.startsWith('#')) return undefined;
    const match = /^#\s*@package\s+(\S*)\s*$/.exec(trimmed);
    if (match) return match[1];
  }
  return undefined;
}

async function importConfigModule(file: string, shown: string): Promise<unknown> {
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (cause) {
    // Node treats .ts/.js as CommonJS outside a `"type": "module"` package, and an ES-module config then fails to load.
    const text = cause instanceof Error ? cause.message : String(cause);
    const commonJs = /\.(ts|js)$/.test(file) && /require\(\) ES Module|Cannot use import statement|ERR_REQUIRE_ESM|ERR_REQUIRE_ASYNC_MODULE/.test(text);
    const hint = commonJs
      ? 'Node loaded this file as CommonJS: rename it to .mts (or .mjs), or add "type": "module" to the nearest package.json.'
      : 'Fix the error below in that file.';
    throw new ConfigError('config-load-failed', `${shown}: loading the config module failed.`, { hint, cause });
  }
  if (!('default' in module)) {
    throw new ConfigError('config-load-failed', `${shown}: a TS/JS config must \`export default defineExperiment({...})\`.`);
  }
  // Configs are data: strip prototypes/functions by a JSON round trip so composition sees plain values.
  try {
    return JSON.parse(JSON.stringify(module.default)) as unknown;
  } catch (cause) {
    throw new ConfigError('config-load-failed', `${shown}: the default export is not plain data (JSON-serialisable).`, { cause });
  }
}
