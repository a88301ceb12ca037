// `milkit --help` (and every command's help and usage errors) must not load what the commands' actions need:
// tfjs alone costs about 0.9 s of CPU per process (BENCHMARKS.md "coldstart"), and every sweep worker and every
// `--help` would pay it. A fresh CLI process runs with a module recorder; the test reads what it loaded.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const RECORDER = path.join(REPO, 'test/core/cli/record-module-loads.mjs');
const scratch = mkdtempSync(path.join(tmpdir(), 'milkit-help-imports-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Packages the help path must not load: numerics, schemas, images, plots, native bindings, HTTP. */
const HEAVY = ['@tensorflow', 'zod', 'sharp', 'h5wasm', 'koffi', 'vega', 'vega-lite', 'axios', 'yaml', 'execa'];

interface Recorded {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Every module the process resolved (file: URLs, absolute paths, node: builtins). */
  readonly modules: readonly string[];
}

let runs = 0;
function runRecorded(args: readonly string[], source: boolean): Recorded {
  runs += 1;
  const record = path.join(scratch, `modules-${runs}.txt`);
  const env: NodeJS.ProcessEnv = { ...process.env, MILKIT_RECORD_MODULES: record };
  delete env.NODE_OPTIONS;
  if (source) env.MILKIT_SOURCE = '1';
  else delete env.MILKIT_SOURCE;
  const child = spawnSync(process.execPath, ['--import', RECORDER, path.join(REPO, 'bin/milkit.mjs'), ...args], { cwd: scratch, env, encoding: 'utf8' });
  const modules = existsSync(record) ? readFileSync(record, 'utf8').split('\n').filter(Boolean) : [];
  return { status: child.status, stdout: child.stdout, stderr: child.stderr, modules };
}

/** The installed packages among the recorded modules (`@scope/name` or `name`), sorted. */
function packagesOf(modules: readonly string[]): string[] {
  const names = new Set<string>();
  for (const module of modules) {
    const match = /[\\/]node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)[\\/]/.exec(module);
    if (match?.[1]) names.add(match[1].replace(/\\/g, '/'));
  }
  return [...names].sort();
}

function heavyAmong(modules: readonly string[]): string[] {
  return packagesOf(modules).filter((name) => HEAVY.some((heavy) => name === heavy || name.startsWith(`${heavy}/`)));
}

// The compiled package is checked only when dist/ is at least as new as the CLI sources (a stale build would
// report the old imports, not this code's).
const compiledMain = path.join(REPO, 'dist/src/core/cli/main.js');
const freshBuild = existsSync(compiledMain) && statSync(compiledMain).mtimeMs >= statSync(path.join(REPO, 'src/core/cli/main.ts')).mtimeMs;

describe('CLI help loads no action code', () => {
  for (const source of [true, ...(freshBuild ? [false] : [])]) {
    const mode = source ? 'sources through tsx' : 'compiled dist/';
    it(`--help prints every command and loads neither tfjs nor the other heavy packages (${mode})`, () => {
      const run = runRecorded(['--help'], source);
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toContain('Usage: milkit');
      for (const command of ['run', 'cv', 'sweep', 'worker', 'plugins', 'weights', 'runs', 'data']) expect(run.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
      // The recorder saw the CLI itself load, so an empty list cannot pass for a clean one.
      expect(run.modules.some((m) => /[\\/]cli[\\/]main\.(ts|js)$/.test(m))).toBe(true);
      expect(packagesOf(run.modules)).toContain('commander');
      expect(heavyAmong(run.modules)).toEqual([]);
    });
  }

  it('a command\'s own help and a usage error load none of them either', () => {
    const help = runRecorded(['sweep', '--help'], true);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('--executor-option <key=value>');
    expect(heavyAmong(help.modules)).toEqual([]);

    const usage = runRecorded(['run'], true);
    expect(usage.status).toBe(1);
    expect(usage.stderr).toContain("missing required argument 'experiment'");
    expect(heavyAmong(usage.modules)).toEqual([]);
  });

  it('an action still loads what it needs (the recorder sees tfjs when a command uses it)', () => {
    const run = runRecorded(['weights', 'import', 'missing.safetensors', '-o', 'out.safetensors'], true);
    // ConfigError (exit 2) from the action, after it loaded the model code.
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('--input-dim: expected a positive integer, got nothing.');
    expect(packagesOf(run.modules)).toContain('@tensorflow/tfjs');
  });
});
