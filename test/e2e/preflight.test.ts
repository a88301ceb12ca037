// Preflight through the real CLI process: a bad pairing in a 5-fold `cv`, or in one cell of a sweep, stops the
// command with exit 2 before anything trains, launches or opens an MLflow run.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseMlruns } from '../helpers/mlruns-parser.js';
import { QUICKSTART, REPO, tempDir } from './helpers.js';

const BIN = path.join(REPO, 'bin/milkit.mjs');

function milkit(args: readonly string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, MLFLOW_TRACKING_URI: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, seconds: (Date.now() - started) / 1000 }));
  });
}

/** Every run of the local store that is still RUNNING (none is the contract), or [] when there is no store. */
function runningRuns(cwd: string): string[] {
  const store = path.join(cwd, 'mlruns');
  if (!existsSync(store)) return [];
  return parseMlruns(store).flatMap((experiment) => experiment.runs).filter((run) => run.status === 'RUNNING').map((run) => run.runId);
}

/** Files below `dir` (preflight may leave the folders it probed, never a file). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => path.join(entry.parentPath, entry.name));
}

describe('preflight through the CLI process', () => {
  it('fails a 5-fold cv with a loss the aggregator cannot feed once, with exit 2, before training', async () => {
    const cwd = await tempDir();
    const result = await milkit(['cv', QUICKSTART, 'split.folds=5', '+model.losses.inst={name: clam-instance}'], cwd);
    expect(result.code).toBe(2);
    // Start-up (tsx, plugins) included; training the five folds would take far longer.
    expect(result.seconds).toBeLessThan(60);
    const errors = result.stderr.split('\n').filter((line) => line.startsWith('error'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/model\.losses\.inst, model\.aggregator: loss "clam-instance" needs .* but aggregator "mean-pool" provides no extras/);
    expect(result.stderr).not.toMatch(/fold 0|epoch/);
    expect(runningRuns(cwd)).toEqual([]);
    expect(filesUnder(cwd)).toEqual([]);
  });

  it('fails a sweep with one bad cell before any job launches, naming that cell', async () => {
    const cwd = await tempDir();
    const result = await milkit(['sweep', QUICKSTART, 'model/aggregator=clam-sb,mean-pool', '+model.losses.inst={name: clam-instance}', 'train.epochs=1', '--workers', '1'], cwd);
    expect(result.code).toBe(2);
    const errors = result.stderr.split('\n').filter((line) => line.startsWith('error'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/model\.losses\.inst, model\.aggregator: .*"mean-pool".* \[model\/aggregator=mean-pool\]/);
    expect(runningRuns(cwd)).toEqual([]);
    // Not even the sweep's state file or a job folder was written: nothing launched.
    expect(filesUnder(cwd)).toEqual([]);
  });
});
