// `milkit worker --manifest M --index I`: runs one job of a sweep's job manifest (what executors launch; each
// Slurm array task runs it with SLURM_ARRAY_TASK_ID). Exit 0 = done, 75 = another worker holds the job.
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { WORKER_EXIT_BUSY } from '../../../registry/contracts/executor.js';
import { runWorker } from '../../engine/sweep/worker.js';
import type { CliApp } from '../app.js';

function parseCount(value: string, flag: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) throw new ConfigError('invalid-cli-value', `${flag} expects a whole number ≥ 0, got "${value}".`, { hint: `Example: ${flag} 3.` });
  return parsed;
}

export function register(program: Command, app: CliApp): void {
  program
    .command('worker')
    .description('run one job of a sweep job manifest (launched by executors; index from --index or SLURM_ARRAY_TASK_ID)')
    .requiredOption('--manifest <file>', 'job manifest written by `milkit sweep` (outputs/sweeps/<name>-<hash>/manifests/<hash>.json)')
    .option('--index <n>', 'job index in the manifest (default: $SLURM_ARRAY_TASK_ID)')
    .option('--blas-threads <n>', 'OpenBLAS threads for this process (the executor passes cores ÷ workers)')
    .action(async (opts: { manifest: string; index?: string; blasThreads?: string }) => {
      const indexText = opts.index ?? app.env.SLURM_ARRAY_TASK_ID;
      if (indexText === undefined) {
        throw new ConfigError('worker-missing-index', 'no job index: pass --index, or run as a Slurm array task (SLURM_ARRAY_TASK_ID).', { hint: 'Example: milkit worker --manifest M --index 0.' });
      }
      const index = parseCount(indexText, '--index');
      const blasThreads = opts.blasThreads === undefined ? undefined : parseCount(opts.blasThreads, '--blas-threads');
      // Loaded here, not at the top: the job runner pulls in tfjs and every engine module.
      const { runJob } = await import('../../engine/job.js');
      const outcome = await runWorker(
        { manifestPath: opts.manifest, index, ...(blasThreads !== undefined && blasThreads > 0 ? { blasThreads } : {}) },
        { runJob: (payload) => runJob(payload, { manifest: app.manifest, logger: app.logger, env: app.env }), logger: app.logger },
      );
      if (outcome.status === 'busy') process.exitCode = WORKER_EXIT_BUSY;
    });
}
