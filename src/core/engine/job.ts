// One sweep/CV job = one fold of one resolved config, run in whatever process an executor chose.
// Writes `${outDir}/result.json` atomically, and only on success, so a re-run knows what is finished.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MilkitError } from '../errors.js';
import type { Logger } from '../logger.js';
import { loadExperiment } from '../config/index.js';
import { Registry, type PluginManifest } from '../../registry/registry.js';
import type { Tracker } from '../../registry/contracts/tracker.js';
import { runExperiment } from './run.js';

export interface JobPayload {
  readonly id: string;
  readonly experimentFile: string;
  readonly overrides: readonly string[];
  readonly fold: number;
  readonly outDir: string;
  readonly cwd: string;
  readonly parentRunId?: string;
  readonly blasThreads?: number;
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
  readonly manifest: PluginManifest;
  readonly logger: Logger;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly tracker?: Tracker;
}

/** Trains and evaluates fold `payload.fold`; throws (and writes no result) when the fold fails. */
export async function runJob(payload: JobPayload, deps: JobDeps): Promise<JobResult> {
  const registry = new Registry(deps.manifest);
  const overrides = [...payload.overrides, ...(payload.blasThreads !== undefined ? [`++runtime.blasThreads=${payload.blasThreads}`] : [])];
  const env = deps.env ?? process.env;
  const resolved = await loadExperiment(payload.experimentFile, overrides, { registry, cwd: payload.cwd, env });
  const result = await runExperiment({
    resolved, registry, logger: deps.logger, cwd: payload.cwd, env, resume: true, folds: [payload.fold],
    ...(deps.tracker ? { tracking: { tracker: deps.tracker, ...(payload.parentRunId ? { parentRunId: payload.parentRunId } : {}) } } : {}),
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
  await mkdir(payload.outDir, { recursive: true });
  const file = path.join(payload.outDir, 'result.json');
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(jobResult, null, 2));
  await rename(tmp, file);
  return jobResult;
}
