// Runs the executor contract over every built-in executor, golden case required. `local` runs its worker
// processes here; `slurm` submits to a stand-in scheduler (test/contracts/fake-slurm: sbatch/squeue/scancel on
// PATH running array tasks locally), so the contract needs no cluster. The real-cluster test stays in
// test/plugins/executors/slurm.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { executorContract, type ExecutorHarness } from '../../src/testing/contracts/index.js';
import { builtinDefinitions, goldenDirOf, REPO_ROOT } from './builtins.js';

const FAKE_SLURM = path.join(REPO_ROOT, 'test', 'contracts', 'fake-slurm');

const HARNESSES: Readonly<Record<string, () => ExecutorHarness>> = {
  local: () => ({ options: { workers: 2 }, env: process.env, cwd: process.cwd(), cores: 2, close: async () => {} }),
  slurm: () => {
    const state = mkdtempSync(path.join(tmpdir(), 'milkit-fake-slurm-'));
    return {
      options: { pollSeconds: 0.1 },
      env: { ...process.env, PATH: `${FAKE_SLURM}${path.delimiter}${process.env['PATH'] ?? ''}`, FAKE_SLURM_STATE: state },
      cwd: process.cwd(),
      cores: 2,
      close: async () => rmSync(state, { recursive: true, force: true }),
    };
  },
};

executorContract(await builtinDefinitions('executor'), {
  goldenDir: goldenDirOf('executor'),
  requireGolden: true,
  harnessFor: async (name) => {
    const make = HARNESSES[name];
    if (!make) throw new Error(`executor/${name}: add a harness to test/contracts/executor.contract.test.ts`);
    return make();
  },
});
