// Placeholder so the `milkit/testing` entry point resolves: the per-kind contract suites are added in this
// folder, each re-exported from here.
export {};
