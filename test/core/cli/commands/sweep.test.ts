// `milkit sweep` and `milkit worker` argument handling, through the CLI entry with captured output. Running
// jobs is covered by test/core/engine/sweep/ (fake runner) and its e2e test (real runner).
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../../../src/core/cli/main.js';
import type { CliIo } from '../../../../src/core/cli/app.js';
import { builtinManifest } from '../../../../plugins/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

async function milkit(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io: CliIo = { out: (t) => stdout.push(t), err: (t) => stderr.push(t), stdoutIsTTY: false };
  const code = await main(args, { manifest: builtinManifest(), io, cwd: root, env: {} });
  return { code, out: stdout.join('\n'), err: stderr.join('\n') };
}

afterEach(() => {
  process.exitCode = undefined;
});

describe('milkit sweep', () => {
  it('composes every cell of the example ablation file on a dry run and prints its rows × datasets table', async () => {
    const dir = path.join(await mkdtemp(path.join(tmpdir(), 'milkit-sweep-cli-')), 'state');
    const { code, out, err } = await milkit(['sweep', '--file', 'experiments/sweeps/ablation-synthetic.yaml', '--dry-run', '--dir', dir]);
    expect(code, err).toBe(0);
    expect(err).toContain('sweep ablation-synthetic: 6 cells; composing and validating each before any job starts.');
    expect(err).toContain('18 jobs: 0 finished, 18 to run.');
    expect(out.split('\n').slice(0, 5)).toEqual([
      '| row | easy auc | easy accuracy | hard auc | hard accuracy | Average auc | Average accuracy |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      '| Mean pooling | — | — | — | — | — | — |',
      '| Max pooling | — | — | — | — | — | — |',
      '| ABMIL | — | — | — | — | — | — |',
    ]);
    // Each job folder carries its resolved config and the overrides that made it.
    const record = JSON.parse(await readFile(path.join(dir, 'sweep.json'), 'utf8')) as { cells: Array<{ name: string; overrides: string[]; jobIds: string[] }> };
    expect(record.cells.map((c) => c.name)).toEqual(['Mean pooling | easy', 'Mean pooling | hard', 'Max pooling | easy', 'Max pooling | hard', 'ABMIL | easy', 'ABMIL | hard']);
    const job = record.cells[5]?.jobIds[2] as string;
    expect(await readFile(path.join(dir, 'jobs', job, 'config.yaml'), 'utf8')).toMatch(/name: abmil/);
    expect(await readFile(path.join(dir, 'jobs', job, 'overrides.yaml'), 'utf8')).toContain('- "data.dataset.signalStrength=1.5"');
  });

  it('expands Hydra sweep syntax and zips paired keys', async () => {
    const dir = path.join(await mkdtemp(path.join(tmpdir(), 'milkit-sweep-cli-')), 'state');
    const { code, out, err } = await milkit([
      'sweep', 'experiments/quickstart.yaml', 'train.epochs=range(1,3)', 'train.optimizer.lr=0.001,0.002', 'model/aggregator=mean-pool,max-pool',
      '--zip', 'train.epochs,train.optimizer.lr', '--dry-run', '--dir', dir,
    ]);
    expect(code, err).toBe(0);
    expect(out.split('\n').slice(2, 6)).toEqual([
      '| 1 | 0.001 | mean-pool | 0/5 | — |',
      '| 1 | 0.001 | max-pool | 0/5 | — |',
      '| 2 | 0.002 | mean-pool | 0/5 | — |',
      '| 2 | 0.002 | max-pool | 0/5 | — |',
    ]);
    expect(out.split('\n')[0]).toBe('| train.epochs | train.optimizer.lr | model/aggregator | folds | s/slide |');
  });

  it('refuses to start when any cell is invalid, grouping the cells an error hits', async () => {
    const { code, err } = await milkit(['sweep', 'experiments/quickstart.yaml', 'train.epochs=2,0', '--dry-run', '--dir', path.join(tmpdir(), 'never')]);
    expect(code).toBe(2);
    expect(err).toContain('error [sweep-invalid-cells]: 1 of 2 sweep cells do not compose; no job was started:');
    expect(err).toContain('  cell 2 "train.epochs=0" [train.epochs=0]:');
  });

  it.each([
    [['--zip', 'lr,b', 'a=1,2', 'b=3,4'], 2, 'error [sweep-zip-unknown-key]: --zip names "lr", which no sweep argument sets.'],
    [['a=1,2', '--executor', 'slurmm'], 3, 'unknown executor "slurmm". Did you mean "slurm"?'],
    [['a=1,2', '--workers', '0'], 2, 'error [invalid-cli-value]: --workers expects a whole number ≥ 1, got "0".'],
    [['a=1,2', '--executor-option', 'partition'], 2, 'error [invalid-cli-value]: --executor-option expects key=value, got "partition".'],
    [['a=1,2', '--executor', 'slurm', '--executor-option', 'pollSecond=1'], 2, 'error [invalid-option]: executor.pollSecond: unknown key (got 1).'],
  ])('rejects bad sweep arguments %j', async (args, exitCode, message) => {
    const { code, err } = await milkit(['sweep', 'experiments/quickstart.yaml', ...args, '--dry-run']);
    expect(code).toBe(exitCode);
    expect(err).toContain(message);
  });

  it('needs an experiment from the command line or the sweep file', async () => {
    const { code, err } = await milkit(['sweep']);
    expect(code).toBe(2);
    expect(err).toContain('error [sweep-missing-experiment]: no experiment config given.');
  });
});

describe('milkit worker', () => {
  it('asks for an index when neither --index nor SLURM_ARRAY_TASK_ID is given', async () => {
    const { code, err } = await milkit(['worker', '--manifest', 'm.json']);
    expect(code).toBe(2);
    expect(err).toContain('error [worker-missing-index]: no job index: pass --index, or run as a Slurm array task (SLURM_ARRAY_TASK_ID), or use --serve.');
  });

  it('names a missing manifest', async () => {
    const { code, err } = await milkit(['worker', '--manifest', 'nowhere/m.json', '--index', '0']);
    expect(code).toBe(2);
    expect(err).toContain('error [job-manifest-unreadable]: cannot read job manifest nowhere/m.json.');
  });
});
