// The Slurm executor against a real slurmctld + slurmd on localhost (test/slurm/local-slurm.sh; CI installs
// `slurm-wlm munge`). When the daemons cannot start here, the test is skipped with the reason in its name.
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import slurmExecutor, { arrayRanges, renderArrayScript } from '../../../plugins/executors/slurm.js';
import { runSweep } from '../../../src/core/engine/sweep/engine.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { fakeCompose, fakeExpand } from '../../core/engine/sweep/fixtures/fake-job.js';
import { startLocalSlurm } from '../../slurm/cluster.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fakeWorker = { command: process.execPath, args: ['--conditions=milkit-source', '--import', 'tsx', path.join(here, '..', '..', 'core', 'engine', 'sweep', 'fixtures', 'fake-worker.ts')] };

describe('executor/slurm script', () => {
  it('compresses task ids into sbatch array ranges', () => {
    expect(arrayRanges([0, 1, 2, 3, 7, 9, 10])).toBe('0-3,7,9-10');
    expect(arrayRanges([5])).toBe('5');
  });

  it('writes one array whose task t runs the worker on manifest index I_t with the options as #SBATCH lines', () => {
    const options = slurmExecutor.options.parse({ partition: 'gpu', time: '01:00:00', cpusPerTask: 4, maxParallel: 2, sbatchArgs: ['--gres=gpu:1'], setup: ['module load nodejs'] });
    const jobs = [3, 8].map((index) => ({ index, id: `id${index}`, label: `j${index}`, resultPath: `/s/jobs/${index}/result.json`, errorPath: `/s/jobs/${index}/error.json`, logPath: `/s/jobs/${index}/worker.log` }));
    const script = renderArrayScript(
      { name: 'abl', stateDir: '/s', manifestPath: "/s/manifests/it's.json", jobs, worker: { command: '/usr/bin/node', args: ['/app/bin/milkit.mjs', 'worker'] }, cwd: '/work' },
      jobs, options, '/s/slurm/x_%a.out', '/s/slurm/x_',
    );
    expect(script).toBe([
      '#!/bin/bash',
      `# milkit sweep "abl": 2 jobs of /s/manifests/it's.json`,
      '#SBATCH --job-name=milkit-abl',
      '#SBATCH --array=0-1%2',
      '#SBATCH --output=/s/slurm/x_%a.out',
      '#SBATCH --ntasks=1',
      '#SBATCH --cpus-per-task=4',
      '#SBATCH --partition=gpu',
      '#SBATCH --time=01:00:00',
      '#SBATCH --gres=gpu:1',
      'set -u',
      "cd '/work'",
      'module load nodejs',
      'indices=(3 8)',
      "logs=('/s/jobs/3/worker.log' '/s/jobs/8/worker.log')",
      'task=${SLURM_ARRAY_TASK_ID:?not running as a Slurm array task}',
      'index=${indices[$task]}',
      'log=${logs[$task]}',
      'mkdir -p "$(dirname "$log")"',
      'echo "--- $(date -Is) slurm task ${SLURM_ARRAY_JOB_ID:-?}_${task} (manifest index ${index}) on $(hostname)" >> "$log"',
      `'/usr/bin/node' '/app/bin/milkit.mjs' 'worker' --manifest '/s/manifests/it'\\''s.json' --index "$index" --blas-threads 4 >> "$log" 2>&1`,
      'code=$?',
      `echo "$code" > '/s/slurm/x_'"$task.exit"`,
      'exit "$code"',
      '',
    ].join('\n'));
  });
});

const cluster = await startLocalSlurm();
if (cluster.reason) console.warn(`\n*** Slurm executor test SKIPPED: ${cluster.reason} ***\n`);
afterAll(async () => cluster.stop());

describe('executor/slurm on a real single-node cluster', () => {
  it.skipIf(cluster.reason !== undefined)(
    cluster.reason ? `skipped: ${cluster.reason}` : 'submits a sweep as an sbatch array, tracks it with squeue, collects results, and re-runs only failed jobs',
    async () => {
      const stateDir = path.join(await mkdtemp(path.join(tmpdir(), 'milkit-slurm-sweep-')), 'state');
      const trainLog = `${stateDir}-trained.log`;
      const run = async (extraEnv: Record<string, string>) => {
        const logger = new MemoryLogger();
        const executor = slurmExecutor.create(slurmExecutor.options.parse({ pollSeconds: 0.5 }), {
          logger, cwd: process.cwd(), cores: 2, env: { ...process.env, ...cluster.env, FAKE_TRAIN_LOG: trainLog, FAKE_JOB_MS: '100', ...extraEnv },
        });
        const report = await runSweep({
          definition: { name: 'slurm', experimentFile: 'experiments/fake.yaml', grid: ['a=1,2', 'folds=2'], zip: [] },
          expand: fakeExpand, compose: fakeCompose, executor, worker: fakeWorker, cwd: process.cwd(), logger, stateDir,
        });
        return { report, logger };
      };

      // First submission: fold 1 of every cell fails.
      const first = await run({ FAKE_FAIL_FOLD: '1' });
      expect(first.report).toMatchObject({ jobs: 4, launched: 4, succeeded: 2, missing: 2 });
      expect(first.report.failed.map((f) => f.error)).toEqual(['error [fake-failure]: fold 1 fails on purpose.', 'error [fake-failure]: fold 1 fails on purpose.']);
      expect(first.logger.text()).toMatch(/submitted Slurm array job \d+ \(4 tasks\)/);
      const scripts = (await readdir(path.join(stateDir, 'slurm'))).filter((f) => f.endsWith('.sh'));
      expect(scripts).toHaveLength(1);
      expect(await readFile(path.join(stateDir, 'slurm', scripts[0] as string), 'utf8')).toContain('#SBATCH --array=0-3\n');
      const firstTrained = (await readFile(trainLog, 'utf8')).trim().split('\n');
      expect(firstTrained).toHaveLength(4);
      expect(firstTrained.every((l) => l.endsWith('blas=1'))).toBe(true);

      // Second submission: only the two failed jobs go to Slurm, and the table is complete.
      const second = await run({});
      expect(second.report).toMatchObject({ jobs: 4, alreadyDone: 2, launched: 2, succeeded: 2, failed: [], missing: 0 });
      expect(second.logger.text()).toMatch(/submitted Slurm array job \d+ \(2 tasks\)/);
      expect((await readFile(trainLog, 'utf8')).trim().split('\n')).toHaveLength(6);
      expect(second.report.markdown).toBe([
        '| a | folds | auc | accuracy | s/slide |',
        '| --- | --- | --- | --- | --- |',
        '| 1 | 2/2 | 0.6050 ± 0.0071 | 0.4100 ± 0.0141 | 0.2500 ± 0.0000 |',
        '| 2 | 2/2 | 0.7050 ± 0.0071 | 0.4100 ± 0.0141 | 0.2500 ± 0.0000 |',
      ].join('\n'));
      const workerLog = await readFile(path.join(stateDir, 'jobs', (await readdir(path.join(stateDir, 'jobs')))[0] as string, 'worker.log'), 'utf8');
      expect(workerLog).toMatch(/--- .* slurm task \d+_\d \(manifest index \d\) on /);
    },
    120_000,
  );
});
