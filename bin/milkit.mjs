#!/usr/bin/env node
// Composition root of the CLI: runs the TypeScript sources through tsx (so `npx milkit` works right after
// `npm ci`, no build step) and hands the built-in plugin manifest to core, which never imports plugins by path.
import { register } from 'tsx/esm/api';

register();
const { builtinManifest } = await import('../plugins/index.ts');
const { main } = await import('../src/core/cli/main.ts');
const code = await main(process.argv.slice(2), { manifest: builtinManifest() });
process.exitCode = code;
