// Project-level settings (extra config search paths, plugins every experiment loads, tracking defaults),
// found by cosmiconfig: `milkit.config.{ts,js,mjs,json,yaml,yml}` or the `milkit` key of package.json,
// searched upwards from the working directory to the project root (the first folder with a package.json).
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { cosmiconfig, type Loader } from 'cosmiconfig';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { importModule as importUserModule } from '../util/import-module.js';
import { displayPath } from './config-files.js';
import { parseOrThrow } from './zod-issues.js';

export const ProjectSettingsSchema = z.strictObject({
  searchPath: z.array(z.string().min(1)).optional().describe('extra folders searched for config groups, after the experiment\'s own folder (relative to the settings file)'),
  plugins: z.array(z.string().min(1)).optional().describe('plugin files or packages every experiment loads (paths relative to the settings file)'),
  tracking: z.strictObject({
    uri: z.string().min(1).optional().describe('default MLflow tracking URI'),
    experimentName: z.string().min(1).optional().describe('default MLflow experiment name'),
  }).optional().describe('tracking defaults; an experiment\'s own tracking: keys win'),
});
export type ProjectSettingsInput = z.input<typeof ProjectSettingsSchema>;

/** Validated settings; paths made absolute against the settings file's folder when found on disk. */
export type ProjectSettings = z.output<typeof ProjectSettingsSchema> & {
  /** The settings file (absent for settings built in code). */
  readonly file?: string;
};

export const PROJECT_SEARCH_PLACES = [
  'package.json',
  'milkit.config.ts',
  'milkit.config.js',
  'milkit.config.mjs',
  'milkit.config.json',
  'milkit.config.yaml',
  'milkit.config.yml',
] as const;

/** Typed identity helper for `milkit.config.ts`. */
export function defineProjectSettings(settings: ProjectSettingsInput): ProjectSettingsInput {
  return settings;
}

// TS settings files load through a TS loader (tsx for the CLI, vite-node under vitest; see importModule),
// so no compiled copy is written next to the user's file.
const importModule: Loader = async (filepath) => {
  const module = await importUserModule(pathToFileURL(filepath).href);
  return module.default ?? module;
};

/** Finds and validates project settings, searching up from `cwd`; undefined when there are none. */
export async function findProjectSettings(cwd: string): Promise<ProjectSettings | undefined> {
  const explorer = cosmiconfig('milkit', {
    searchPlaces: [...PROJECT_SEARCH_PLACES],
    searchStrategy: 'project',
    loaders: { '.ts': importModule, '.mts': importModule, '.js': importModule, '.mjs': importModule },
    cache: false,
  });
  let result: Awaited<ReturnType<typeof explorer.search>>;
  try {
    result = await explorer.search(cwd);
  } catch (cause) {
    throw new ConfigError('project-settings-load', `cannot load the milkit project settings found from ${cwd}.`, { hint: 'Fix the error below in milkit.config.* (or the "milkit" key of package.json).', cause });
  }
  if (!result) return undefined;
  return normaliseProjectSettings(result.isEmpty ? {} : result.config, result.filepath, cwd);
}

/** Validates raw settings and resolves their relative paths against the settings file's folder. */
export function normaliseProjectSettings(raw: unknown, file: string, cwd: string): ProjectSettings {
  const shown = path.basename(file) === 'package.json' ? `${displayPath(file, cwd)} (key "milkit")` : displayPath(file, cwd);
  const settings = parseOrThrow(ProjectSettingsSchema, raw ?? {}, { file: shown }, 'project settings');
  const dir = path.dirname(file);
  return {
    ...settings,
    ...(settings.searchPath ? { searchPath: settings.searchPath.map((p) => path.resolve(dir, p)) } : {}),
    ...(settings.plugins ? { plugins: settings.plugins.map((p) => (isPathSpec(p) ? path.resolve(dir, p) : p)) } : {}),
    file,
  };
}

/** Plugin specs that are paths (resolved against a folder) rather than package names. */
export function isPathSpec(spec: string): boolean {
  return spec.startsWith('.') || path.isAbsolute(spec) || /\.(m?[jt]s)$/.test(spec);
}
