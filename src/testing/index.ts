// The `milkit/testing` entry point: the contract suites a plugin author runs against their own plugins
// (vitest `describe`/`it` blocks, one suite per plugin kind). The suites live in ./contracts/; this file only
// re-exports them, so the entry point stays stable while suites are added.
export * from './contracts/index.js';
