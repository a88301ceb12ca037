import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Plugins import the package by name (`milkit`, `milkit/nn`); tests run them from the TypeScript sources.
  ssr: {
    resolve: { conditions: ['milkit-source'] },
  },
  test: {
    include: ['test/**/*.test.ts'],
    // tfjs backends are process-global; forks keep each file's backend choice to itself.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // CLI processes a test spawns (`node bin/milkit.mjs`, sweep workers) run the sources too, not a stale dist/.
    env: { MILKIT_SOURCE: '1' },
  },
});
