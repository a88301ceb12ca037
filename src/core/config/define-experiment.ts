// `defineExperiment({...})`: the typed identity helper for TS experiment configs (like vite's defineConfig),
// so `export default defineExperiment({...})` gets completion and type errors from the experiment schema.
import type { ExperimentInput } from './schema.js';

/** One `defaults:` entry: `'_self_'`, `'base'`, or `{ 'model/aggregator': 'abmil' }` (also `optional x`, `override x`, `x@pkg`). */
export type DefaultsListEntry = string | Readonly<Record<string, string | readonly string[] | null>>;

type DeepPartial<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

/** A config with a defaults list may leave out what its group options provide. */
export type ComposableExperimentInput = DeepPartial<ExperimentInput> & { readonly defaults: readonly DefaultsListEntry[] };

/** A complete experiment (no defaults list): every required key is checked. */
export function defineExperiment(config: ExperimentInput & { readonly defaults?: undefined }): ExperimentInput;
/** An experiment composed from config groups: keys the groups provide may be left out. */
export function defineExperiment(config: ComposableExperimentInput): ComposableExperimentInput;
export function defineExperiment(config: ExperimentInput | ComposableExperimentInput): ExperimentInput | ComposableExperimentInput {
  return config;
}
