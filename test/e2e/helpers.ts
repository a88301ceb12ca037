// Runs the CLI in-process with captured output, in a temporary working directory.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/core/cli/main.js';
import { builtinManifest } from '../../plugins/index.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const QUICKSTART = path.join(REPO, 'experiments/quickstart.yaml');

/** Overrides that shrink the quickstart to a few seconds on the cpu backend. */
export const TINY = [
  'runtime.backend=cpu',
  'data.dataset.slides=16',
  'data.dataset.instances=[20,40]',
  'data.dataset.featureDim=16',
  'data.dataset.signalDim=2',
  'train.epochs=2',
  'split.folds=2',
];

export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export async function tempDir(prefix = 'milkit-e2e-'): Promise<string> {
  return mkdtemp(path.join(tmpdir(), prefix));
}

export async function runCli(args: readonly string[], cwd: string, env: Record<string, string | undefined> = {}): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const previous = process.exitCode;
  process.exitCode = undefined;
  const code = await main(args, {
    manifest: builtinManifest(),
    cwd,
    env: { ...env, MLFLOW_TRACKING_URI: env.MLFLOW_TRACKING_URI },
    io: { out: (t) => out.push(t), err: (t) => err.push(t), stdoutIsTTY: false },
  });
  process.exitCode = previous;
  return { code, out: out.join('\n'), err: err.join('\n') };
}
