// Public API of the registry: what plugins import (and the only thing from src/ they import besides src/core/nn).
export { definePlugin, pluginId, type PluginDefinition, type AnyPluginDefinition, type PaperRef, type PluginPackage } from './define-plugin.js';
export { Registry, type PluginManifest, type ResolvedPlugin, type SlotLocation, type PluginDescription } from './registry.js';
export { PLUGIN_KINDS, DEFAULT_PRESCREENER_CAPABILITIES, isPluginKind, type PluginKind, type PluginKindMap, type MetricContext, type PrescreenerCapabilities } from './kinds.js';
export * from './contracts/model.js';
export * from './contracts/loss.js';
export * from './contracts/data.js';
export * from '../core/data/kit.js';
export * from './contracts/metric.js';
export * from '../core/eval/kit.js';
export * from './contracts/tracker.js';
export * from '../core/tracking/plugin-kit.js';
export * from './contracts/executor.js';
export * from './contracts/strategy.js';
export * from '../core/slides/kit.js';
export { Module, type TorchLayout, type NamedTensorEntry } from '../core/nn/module.js';
export { Rng } from '../core/runtime/random.js';
export type { Logger } from '../core/logger.js';
export { MilkitError, DataError, ConfigError, PluginError, NumericsError, TrackingError, StorageError } from '../core/errors.js';
// Plugins that write files (executors' logs, trackers) report full or read-only disks the way core does.
export { storageError } from '../core/io/storage-errors.js';
