// One sweep/CV job = one fold of one resolved config, run in whatever process an executor chose.
// Writes `${outDir}/result.json` atomically, and only on success, so a re-run knows what is finished.
import path from 'node:path';
import { MilkitError } from '../errors.js';
import { loadExperiment } from '../config/index.js';
import type { Services } from '../services.js';
import { runExperiment } from './run.js';
import type { SourcePool } from '../data/source-pool.js';
import { epochProgress } from './progress.js';

export interface JobPayload {
  readonly id: string;
  readonly experimentFile: string;
  readonly overrides: readonly string[];
  readonly fold: number;
  readonly outDir: string;
  readonly cwd: string;
  readonly parentRunId?: string;
  readonly blasThreads?: number;
  /** The manifest's job kind (absent: an experiment fold); the worker command picks the runner by it. */
  readonly jobKind?: 'experiment-fold' | 'extract-slide';
}

export interface JobResult {
  readonly id: string;
  readonly fold: number;
  readonly metrics: Readonly<Record<string, number | null>>;
  readonly secondsPerSlide: number;
  readonly epochs: number;
  readonly runId?: string;
}

export interface JobDeps {
  /** The worker process's services (src/core/services.ts): registry, logger, tracker factory, file system. */
  readonly services: Pick<Services, 'createRegistry' | 'logger' | 'createTracker' | 'fs'>;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Bag sources kept open across the jobs of this process (`milkit worker --serve`). */
  readonly sources?: SourcePool;
}

/** Trains and evaluates fold `payload.fold`; throws (and writes no result) when the fold fails. */
export async function runJob(payload: JobPayload, deps: JobDeps): Promise<JobResult> {
  const { services } = deps;
  const registry = services.createRegistry();
  const env = deps.env ?? process.env;
  const resolved = await loadExperiment(payload.experimentFile, payload.overrides, { registry, cwd: payload.cwd, env });
  const { tracking } = resolved.config;
  const tracker = tracking.enabled ? await services.createTracker(tracking, { registry, logger: services.logger, cwd: payload.cwd, env }) : undefined;
  // The job's outputs (checkpoints, predictions, plots) live in its own folder, so parallel folds of one cell
  // never write the same files; its fold run nests under the sweep cell's run when there is one.
  const result = await runExperiment({
    resolved, registry, logger: services.logger, cwd: payload.cwd, env, resume: true, folds: [payload.fold], outDir: payload.outDir,
    ...(deps.sources ? { sources: deps.sources } : {}),
    ...(payload.blasThreads !== undefined ? { runtime: { blasThreads: payload.blasThreads } } : {}),
    ...(payload.parentRunId !== undefined || tracker
      ? { tracking: { ...(tracker ? { tracker } : {}), ...(payload.parentRunId !== undefined ? { parentRunId: payload.parentRunId, foldsOnly: true } : {}) } }
      : {}),
    events: (fold) => epochProgress({ fold, stdoutIsTTY: false, logger: services.logger }),
  });
  const outcome = result.folds[0];
  if (!outcome) throw new MilkitError('fold-not-found', `job ${payload.id}: the experiment has no fold ${payload.fold}.`, { hint: 'Check split.folds.' });
  if (!outcome.ok) throw new MilkitError('job-failed', `job ${payload.id} (fold ${payload.fold}) failed: ${outcome.error ?? 'unknown error'}`);
  const metrics: Record<string, number | null> = {};
  for (const [name, value] of Object.entries(outcome.metrics)) metrics[name] = value.value;
  if (outcome.instanceAuc) metrics.instance_auc = outcome.instanceAuc.value;
  const jobResult: JobResult = {
    id: payload.id, fold: payload.fold, metrics, secondsPerSlide: outcome.secondsPerSlide ?? 0, epochs: outcome.epochsRun ?? 0,
    ...(outcome.runId ? { runId: outcome.runId } : {}),
  };
  await services.fs.mkdir(payload.outDir);
  const file = path.join(payload.outDir, 'result.json');
  const tmp = `${file}.tmp-${process.pid}`;
  await services.fs.writeFile(tmp, JSON.stringify(jobResult, null, 2));
  await services.fs.rename(tmp, file);
  return jobResult;
}
