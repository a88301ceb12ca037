// `milkit worker --manifest M --index I`: runs one job of a sweep's job manifest (each Slurm array task runs it
// with SLURM_ARRAY_TASK_ID). Exit 0 = done, 75 = another worker holds the job.
// `milkit worker --manifest M --serve`: runs the job indices read from stdin one after another (the local
// executor's long-lived workers), writing a report line per job to stderr.
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { loadActionCode, type CliApp } from '../app.js';

function parseCount(value: string, flag: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) throw new ConfigError('invalid-cli-value', `${flag} expects a whole number ≥ 0, got "${value}".`, { hint: `Example: ${flag} 3.` });
  return parsed;
}

export function register(program: Command, app: CliApp): void {
  program
    .command('worker')
    .description('run jobs of a sweep job manifest (launched by executors): one with --index / SLURM_ARRAY_TASK_ID, or many with --serve')
    .requiredOption('--manifest <file>', 'job manifest written by `milkit sweep` (outputs/sweeps/<name>-<hash>/manifests/<hash>.json)')
    .option('--index <n>', 'job index in the manifest (default: $SLURM_ARRAY_TASK_ID)')
    .option('--serve', 'read job indices from stdin, one per line, and run them in this process; report each on stderr')
    .option('--blas-threads <n>', 'OpenBLAS threads for this process (the executor passes cores ÷ workers)')
    .action(async (opts: { manifest: string; index?: string; serve?: boolean; blasThreads?: string }) => {
      const blasThreads = opts.blasThreads === undefined ? undefined : parseCount(opts.blasThreads, '--blas-threads');
      const threads = blasThreads !== undefined && blasThreads > 0 ? { blasThreads } : {};
      // Loaded here, not at the top: the job runner pulls in tfjs and every engine module.
      const [{ runJob }, { SourcePool }, { runWorker, serveWorker }, { formatWorkerReport, WORKER_EXIT_BUSY }] = await loadActionCode('worker', () => Promise.all([
        import('../../engine/job.js'),
        import('../../data/source-pool.js'),
        import('../../engine/sweep/worker.js'),
        import('../../../registry/contracts/executor.js'),
      ]));
      // Jobs served by this process that share a dataset config share its open source (generated/read once).
      const sources = new SourcePool(1);
      // The manifest's job kind picks the runner: experiment folds (sweep, CV) or one slide of `milkit extract`.
      const runAny = async (payload: Parameters<typeof runJob>[0]): Promise<Awaited<ReturnType<typeof runJob>>> => {
        if (payload.jobKind === 'extract-slide') {
          const { runExtractSlideJob } = await loadActionCode('worker', () => import('../../extract/run.js'));
          return runExtractSlideJob(payload, { registry: app.createRegistry(), logger: app.logger });
        }
        return runJob(payload, { services: app.services, env: app.env, sources });
      };
      const deps = { runJob: runAny, logger: app.logger };
      if (opts.serve) {
        if (opts.index !== undefined) throw new ConfigError('worker-serve-with-index', '--serve reads job indices from stdin; do not pass --index as well.', { hint: 'Drop --index, or drop --serve to run one job.' });
        const requests = createInterface({ input: process.stdin, crlfDelay: Infinity });
        try {
          await serveWorker({ manifestPath: opts.manifest, ...threads }, deps, { requests, report: (report) => process.stderr.write(formatWorkerReport(report)) });
        } finally {
          requests.close();
          process.stdin.destroy();
          await sources.close();
        }
        return;
      }
      const indexText = opts.index ?? app.env.SLURM_ARRAY_TASK_ID;
      if (indexText === undefined) {
        throw new ConfigError('worker-missing-index', 'no job index: pass --index, or run as a Slurm array task (SLURM_ARRAY_TASK_ID), or use --serve.', { hint: 'Example: milkit worker --manifest M --index 0.' });
      }
      const index = parseCount(indexText, '--index');
      const outcome = await runWorker({ manifestPath: opts.manifest, index, ...threads }, deps).finally(() => sources.close());
      if (outcome.status === 'busy') process.exitCode = WORKER_EXIT_BUSY;
    });
}
