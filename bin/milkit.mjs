#!/usr/bin/env node
// Composition root of the CLI: hands the built-in plugin manifest to core (which never imports plugins by path)
// and runs it. It runs the compiled JavaScript in dist/ (built by `npm ci` / `npm run build`); with
// MILKIT_SOURCE=1 (`npm run dev`, the tests) it runs the TypeScript sources through tsx instead, and a checkout
// without dist/ falls back to the sources too.
import { existsSync, readFileSync } from 'node:fs';
import { register as registerHooks } from 'node:module';

// A reader that closes the pipe early (`milkit schema | head`) has what it wanted: end quietly, not with a stack trace.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  throw error;
});

// `--version` alone needs no module graph (loading it costs about a second of CPU, BENCHMARKS.md "coldstart").
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`);
  process.exit(0);
}

const built = existsSync(new URL('../dist/src/core/cli/main.js', import.meta.url));
const sources = existsSync(new URL('../src/core/cli/main.ts', import.meta.url));
const fromSource = sources && (process.env.MILKIT_SOURCE === '1' || !built);
if (!built && !fromSource) {
  process.stderr.write('milkit: this package has no compiled CLI (dist/ is missing). Run `npm run build` in the milkit package folder, or reinstall it.\n');
  process.exit(1);
}

let loaded;
if (fromSource) {
  // Sweep workers inherit the environment, so they run the same code as this process.
  process.env.MILKIT_SOURCE = '1';
  const { register: registerTsx } = await import('tsx/esm/api');
  registerTsx();
  registerHooks('./source-conditions.mjs', import.meta.url);
  const [{ builtinManifest }, { main }] = await Promise.all([import('../plugins/index.ts'), import('../src/core/cli/main.ts')]);
  loaded = { builtinManifest, main };
} else {
  const [{ builtinManifest }, { main }] = await Promise.all([import('../dist/plugins/index.js'), import('../dist/src/core/cli/main.js')]);
  loaded = { builtinManifest, main };
}
process.exitCode = await loaded.main(args, { manifest: loaded.builtinManifest() });
