// The `milkit` entry point: everything a plugin or an experiment script imports from the framework — plugin
// definition and kinds, the contract types of every kind, errors, Rng, Module, and the data/eval/tracking kits.
// Layers and tensor ops a plugin builds models from are in `milkit/nn`; contract suites are in `milkit/testing`.

export * from './registry/index.js';

// Typed helpers for TypeScript experiment configs and `milkit.config.ts` project settings.
export { defineExperiment, type ComposableExperimentInput, type DefaultsListEntry } from './core/config/define-experiment.js';
export { defineProjectSettings, type ProjectSettingsInput } from './core/config/project.js';

// The zod that milkit validates options with: a plugin defining its options schema with it needs no zod of its own.
export { z } from 'zod';
