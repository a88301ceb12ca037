#!/usr/bin/env node
// Composition root of the CLI: runs the TypeScript sources through tsx (so `npx milkit` works right after
// `npm ci`, no build step) and hands the built-in plugin manifest to core, which never imports plugins by path.
import { register } from 'tsx/esm/api';

register();
// A reader that closes the pipe early (`milkit schema | head`) has what it wanted: end quietly, not with a stack trace.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  throw error;
});
const { builtinManifest } = await import('../plugins/index.ts');
const { main } = await import('../src/core/cli/main.ts');
const code = await main(process.argv.slice(2), { manifest: builtinManifest() });
process.exitCode = code;
