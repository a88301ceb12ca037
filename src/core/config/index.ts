// Public API of milkit's config layer: Hydra-style composition, overrides, interpolation, project
// settings, experiment loading and the editor JSON Schema.
export { ExperimentSchema, ModelSection, type Experiment, type ExperimentInput } from './schema.js';
export { PluginRef, LossRef } from './plugin-ref.js';
export { parseOrThrow, describeIssues, showValue } from './zod-issues.js';
export {
  parseOverride, parseOverrides, expandSweep, formatOverride, formatValue, typeScalar, ACCEPTED_FORMS,
  type Override, type OverrideKind, type OverrideTarget, type SweepSpec,
} from './overrides.js';
export { composeConfig, groupOptions, searchRoots, type ComposeOptions, type ComposedConfig } from './compose.js';
export { type GroupOverride, type DefaultsEntry, type ImpliedOptions } from './defaults-list.js';
export { interpolateConfig, hasInterpolation, type InterpolateOptions } from './interpolate.js';
export { readConfigFile, displayPath, CONFIG_EXTENSIONS, type LoadedConfigFile } from './config-files.js';
export {
  findProjectSettings, normaliseProjectSettings, defineProjectSettings, ProjectSettingsSchema, PROJECT_SEARCH_PLACES,
  type ProjectSettings, type ProjectSettingsInput,
} from './project.js';
export { defineExperiment, type ComposableExperimentInput, type DefaultsListEntry } from './define-experiment.js';
export {
  loadExperiment, composeExperiment, experimentGroupOptions, experimentKnowsKey, experimentKeys,
  type LoadOptions, type ResolvedExperiment, type ResolvedSlots, type ResolvedLoss,
} from './load.js';
export { HASH_EXCLUDED_SECTIONS, MILKIT_HASH_VERSION, hashConfig, hashInput, type HashSchemas } from './hash.js';
export { experimentJsonSchema, type JsonSchemaOptions } from './json-schema.js';
export { PLUGIN_SLOTS, METRICS_KEY, slotKindOfGroup, type PluginSlot } from './plugin-slots.js';
export { canonicalJson, deepFreeze, type ConfigMapping, type KeySegment } from './tree.js';
