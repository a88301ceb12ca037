// The `milkit` entry point: everything a plugin or an experiment script imports from the framework — plugin
// definition and kinds, the contract types of every kind, errors, Rng, Module, and the data/eval/tracking kits.
// Layers and tensor ops a plugin builds models from are in `milkit/nn`; contract suites are in `milkit/testing`.
export * from './registry/index.js';
