// Stage-aware resume with real processes: a three-stage toy run (test/fixtures/stages/three-stages.yaml, a
// stateful test strategy loaded through `plugins:`) is SIGKILLed while fold 0 trains stage 2, then rerun with
// --resume. It must resume in stage 2 (stage 1 loaded, not retrained), end with the metrics of an uninterrupted
// run, and leave exactly three FINISHED stage runs under each fold run in the MLflow file store.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseMlruns } from '../helpers/mlruns-parser.js';
import { REPO, tempDir } from './helpers.js';

const CONFIG = path.join(REPO, 'test/fixtures/stages/three-stages.yaml');
const BIN = path.join(REPO, 'bin/milkit.mjs');

interface Child {
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }>;
  kill(): void;
}

function milkit(args: readonly string[], cwd: string): Child {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, MLFLOW_TRACKING_URI: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  return {
    done: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, out }))),
    kill: () => child.kill('SIGKILL'),
  };
}

function runDir(outRoot: string): string {
  const [hash] = readdirSync(outRoot).filter((name) => /^[0-9a-f]{8}$/.test(name));
  return path.join(outRoot, hash as string);
}

/** Fold metrics without wall-clock times (those differ between any two runs). */
function foldMetrics(dir: string, fold: number): Record<string, number | null> {
  const file = JSON.parse(readFileSync(path.join(dir, `fold-${fold}`, 'metrics.json'), 'utf8')) as { metrics: Record<string, { value: number | null }> };
  return Object.fromEntries(Object.entries(file.metrics).filter(([key]) => !key.includes('time_')).map(([key, v]) => [key, v.value]));
}

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('stages: kill in stage 2, resume', () => {
  it('resumes in stage 2, matches an uninterrupted run, and reuses the fold and stage runs', async () => {
    const cwd = await tempDir('milkit-stages-resume-');
    dirs.push(cwd);
    const common = (name: string): string[] => ['cv', CONFIG, `output.dir=${path.join(cwd, name)}`, `tracking.uri=${path.join(cwd, name, 'mlruns')}`];

    // Reference: the same config without interruption.
    const reference = await milkit(common('reference'), cwd).done;
    expect(reference.code, reference.out).toBe(0);

    // Interrupted: killed as soon as fold 0's stage 2 has written its first epoch checkpoint.
    const first = milkit(common('resumed'), cwd);
    let killedInStage2 = false;
    const watch = (async () => {
      for (;;) {
        const root = path.join(cwd, 'resumed');
        if (existsSync(root)) {
          const hashes = readdirSync(root).filter((name) => /^[0-9a-f]{8}$/.test(name));
          const stage2 = hashes.length ? path.join(root, hashes[0] as string, 'fold-0', 'stage-head') : undefined;
          if (stage2 && existsSync(path.join(stage2, 'last.ckpt'))) {
            first.kill();
            killedInStage2 = true;
            return;
          }
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const killed = await Promise.race([first.done, watch.then(() => first.done)]);
    expect(killedInStage2, killed.out).toBe(true);
    expect(killed.signal).toBe('SIGKILL');
    const dir = runDir(path.join(cwd, 'resumed'));
    const fold0 = path.join(dir, 'fold-0');
    expect(existsSync(path.join(fold0, 'stage-warmup', 'done.json'))).toBe(true);
    expect(existsSync(path.join(fold0, 'stage-head', 'done.json')), 'the kill landed after stage 2 finished').toBe(false);
    const warmupDone = readFileSync(path.join(fold0, 'stage-warmup', 'done.json'), 'utf8');

    const resumed = await milkit([...common('resumed'), '--resume'], cwd).done;
    expect(resumed.code, resumed.out).toBe(0);
    // Stage 1 was loaded, not retrained (its marker is untouched); stage 2 continued from its checkpoint.
    expect(resumed.out).toContain('stage warmup finished in an earlier run');
    expect(resumed.out).toMatch(/fold 0 stage head: resuming after epoch \d+/);
    expect(readFileSync(path.join(fold0, 'stage-warmup', 'done.json'), 'utf8')).toBe(warmupDone);

    const referenceDir = runDir(path.join(cwd, 'reference'));
    for (const fold of [0, 1]) {
      const want = foldMetrics(referenceDir, fold);
      const got = foldMetrics(dir, fold);
      expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
      for (const [key, value] of Object.entries(want)) {
        if (value === null) expect(got[key]).toBeNull();
        else expect(got[key], `fold ${fold} ${key}`).toBeCloseTo(value, 6);
      }
    }

    // Tracking: one fold run per fold (reused on resume), each with exactly three FINISHED stage runs.
    const runs = parseMlruns(path.join(cwd, 'resumed', 'mlruns')).flatMap((experiment) => experiment.runs);
    const foldRuns = runs.filter((run) => run.tags['milkit.level'] === 'fold');
    expect(foldRuns).toHaveLength(2);
    for (const foldRun of foldRuns) {
      expect(foldRun.status).toBe('FINISHED');
      const stageRuns = runs.filter((run) => run.tags['milkit.level'] === 'stage' && run.tags['mlflow.parentRunId'] === foldRun.runId);
      expect(stageRuns.map((run) => run.tags['milkit.stage']).sort()).toEqual(['head', 'tune', 'warmup']);
      expect(stageRuns.every((run) => run.status === 'FINISHED')).toBe(true);
      for (const run of stageRuns) expect(run.tags['milkit.run_key']).toBe(`${foldRun.tags['milkit.run_key']}:${run.tags['milkit.stage']}`);
    }
    expect(runs.filter((run) => run.tags['milkit.level'] === 'stage')).toHaveLength(6);
  }, 900_000);
});
