// Contract suites for every plugin kind, for built-ins (test/contracts/) and for users' own plugins: call the
// kind's suite inside a vitest file with your definitions and, optionally, a folder of golden cases.
export * from './golden.js';
export * from './shared.js';
export * from './aggregator.js';
export * from './classifier.js';
export * from './prescreener.js';
export * from './loss.js';
export * from './metric.js';
export * from './dataset.js';
export * from './tracker.js';
export * from './executor.js';
export * from './strategy.js';
