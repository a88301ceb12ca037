// Contract suites for every plugin kind, for the built-ins (test/contracts/) and for users' own plugins. Each
// suite is a plain function that declares vitest `describe`/`it` blocks for a list of plugin definitions:
//
//   // test/my-pool.contract.test.ts (vitest)
//   import { aggregatorContract } from 'milkit/testing';
//   import myPool from '../src/my-pool.js';
//   aggregatorContract([myPool], { registry, goldenDir: new URL('../src', import.meta.url).pathname });
//
// `registry` supplies what the model around an aggregator needs (the `linear` classifier slot, the losses);
// a `<name>.golden.json` in `goldenDir` (a fixed input and the output an independent implementation computes for
// it, format in golden.ts and the kind's suite) is checked when present and required with `requireGolden: true`.
// The generic checks cover shapes, declared capabilities, gradients, seeded determinism and tensor leaks; only a
// golden case pins the numbers (a max-pool turned log-sum-exp passes every generic check).
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
export * from './slide-reader.js';
export * from './tissue-detector.js';
export * from './feature-extractor.js';
