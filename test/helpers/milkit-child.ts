// A milkit CLI child process (from sources) that a test can signal while it runs and whose output it can watch:
// the reliability suites interrupt real runs with real signals.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO } from '../e2e/helpers.js';

const BIN = path.join(REPO, 'bin/milkit.mjs');

export interface Ended {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly out: string;
}

export interface MilkitChild {
  readonly done: Promise<Ended>;
  signal(name: NodeJS.Signals): void;
  /** Output so far (stdout and stderr). */
  output(): string;
}

/** Starts `milkit <args>` in `cwd` with no MLflow URI from the environment (each test names its own store). */
export function spawnMilkit(args: readonly string[], cwd: string, env: Record<string, string> = {}): MilkitChild {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, MILKIT_SOURCE: '1', MLFLOW_TRACKING_URI: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  return {
    done: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, out }))),
    signal: (name) => child.kill(name),
    output: () => out,
  };
}
