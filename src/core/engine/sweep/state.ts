// The sweep state directory `outputs/sweeps/<name>-<hash>/`: the plan (cells → job ids), immutable job
// manifests the workers read, and one folder per job id holding its config, result, error and log. A job is
// finished exactly when its result.json exists; every file is written atomically, so concurrent workers and
// killed processes never leave a half-written result.
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { z } from 'zod';
import { ConfigError } from '../../errors.js';
import type { JobResult } from '../job.js';

export const STATE_VERSION = 1;

/** One job as the worker reads it from the manifest. */
export const ManifestJob = z.strictObject({
  index: z.int().min(0),
  id: z.string().regex(/^[0-9a-f]{16}$/),
  fold: z.int().min(0),
  label: z.string(),
  overrides: z.array(z.string()),
  /** Job folder, relative to the sweep directory. */
  dir: z.string(),
  /** Tracking run the job's fold run nests under (its sweep cell's run). */
  parentRunId: z.string().optional(),
});
export type ManifestJob = z.output<typeof ManifestJob>;

/** What `milkit worker --manifest M --index I` reads: the jobs of one submission, indexed 0..n-1. */
export const JobManifest = z.strictObject({
  version: z.literal(STATE_VERSION),
  sweep: z.string(),
  /** Absolute path of the experiment config every job composes. */
  experimentFile: z.string(),
  /** Absolute working directory of the jobs (relative paths in the config resolve from here). */
  cwd: z.string(),
  parentRunId: z.string().optional(),
  /** Milliseconds after which a job lock whose holder stopped refreshing it counts as abandoned. */
  lockStaleMs: z.int().min(2000),
  /**
   * What the worker runs for each job: absent = a fold of an experiment (sweep, CV); `extract-slide` = one slide
   * of `milkit extract`, whose spec file stands in `experimentFile` and whose slide is the `slide=<id>` override.
   */
  jobKind: z.enum(['experiment-fold', 'extract-slide']).optional(),
  jobs: z.array(ManifestJob),
});
export type JobManifest = z.output<typeof JobManifest>;

export const PlannedCellRecord = z.strictObject({
  index: z.int().min(0),
  name: z.string(),
  row: z.string().optional(),
  dataset: z.string().optional(),
  params: z.record(z.string(), z.string()),
  overrides: z.array(z.string()),
  configHash: z.string(),
  folds: z.int().min(1),
  /** Job id of each fold, in fold order. */
  jobIds: z.array(z.string()),
});
export type PlannedCellRecord = z.output<typeof PlannedCellRecord>;

/** `sweep.json`: the whole sweep, rewritten on every invocation (it is a pure function of the inputs). */
export const SweepRecord = z.strictObject({
  version: z.literal(STATE_VERSION),
  name: z.string(),
  specHash: z.string(),
  experimentFile: z.string(),
  cwd: z.string(),
  grid: z.array(z.string()),
  zip: z.array(z.array(z.string())),
  metrics: z.array(z.string()).optional(),
  cells: z.array(PlannedCellRecord),
});
export type SweepRecord = z.output<typeof SweepRecord>;

/** result.json as runJob writes it (extra keys allowed, so newer runners stay readable). */
export const JobResultFile = z.looseObject({
  id: z.string(),
  fold: z.int().min(0),
  metrics: z.record(z.string(), z.number().nullable()),
  secondsPerSlide: z.number(),
  epochs: z.number(),
  runId: z.string().optional(),
});

/** error.json as the worker writes it when a job fails. */
export const JobErrorFile = z.looseObject({
  message: z.string(),
  code: z.string().optional(),
  at: z.string().optional(),
});
export type JobErrorFile = z.output<typeof JobErrorFile>;

/** Paths inside one sweep directory. */
export class SweepLayout {
  constructor(readonly dir: string) {}

  get recordPath(): string {
    return path.join(this.dir, 'sweep.json');
  }
  manifestPath(hash: string): string {
    return path.join(this.dir, 'manifests', `${hash}.json`);
  }
  jobDir(id: string): string {
    return path.join(this.dir, 'jobs', id);
  }
  resultPath(id: string): string {
    return path.join(this.jobDir(id), 'result.json');
  }
  errorPath(id: string): string {
    return path.join(this.jobDir(id), 'error.json');
  }
  logPath(id: string): string {
    return path.join(this.jobDir(id), 'worker.log');
  }
  ownerPath(id: string): string {
    return path.join(this.jobDir(id), 'owner.json');
  }
  get tableMarkdownPath(): string {
    return path.join(this.dir, 'table.md');
  }
  get summaryCsvPath(): string {
    return path.join(this.dir, 'summary.csv');
  }
  get foldsCsvPath(): string {
    return path.join(this.dir, 'folds.csv');
  }
  get comparisonJsonPath(): string {
    return path.join(this.dir, 'comparison.json');
  }
  get forestPlotPath(): string {
    return path.join(this.dir, 'forest.png');
  }
}

/** Writes a file atomically (temp file + rename), creating its folder. */
export async function writeAtomic(file: string, content: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, content);
}

export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** Reads and validates a job manifest; errors name the file and what is wrong with it. */
export async function readJobManifest(file: string): Promise<JobManifest> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ConfigError('job-manifest-unreadable', `cannot read job manifest ${file}.`, {
      hint: 'Pass the manifest the sweep wrote (outputs/sweeps/<name>-<hash>/manifests/<hash>.json); the path must be visible on this machine.', cause,
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError('job-manifest-invalid', `${file} is not valid JSON.`, { hint: 'Re-run `milkit sweep` to rewrite it.', cause });
  }
  const parsed = JobManifest.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new ConfigError('job-manifest-invalid', `${file} is not a milkit job manifest (${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'unknown shape'}).`, {
      hint: `This milkit reads manifest version ${STATE_VERSION}; re-run \`milkit sweep\` to rewrite it.`,
    });
  }
  return parsed.data;
}

/** The job's result, or undefined when it has none; a corrupt result file is an error (it is never half-written). */
export async function readJobResult(file: string): Promise<JobResult | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError('job-result-invalid', `${file} is not valid JSON.`, { hint: 'Delete it to re-run that job.', cause });
  }
  const parsed = JobResultFile.safeParse(raw);
  if (!parsed.success) throw new ConfigError('job-result-invalid', `${file} does not look like a job result.`, { hint: 'Delete it to re-run that job.' });
  const { id, fold, metrics, secondsPerSlide, epochs, runId } = parsed.data;
  return { id, fold, metrics, secondsPerSlide, epochs, ...(runId !== undefined ? { runId } : {}) };
}

export async function readJobError(file: string): Promise<JobErrorFile | undefined> {
  try {
    const parsed = JobErrorFile.safeParse(JSON.parse(await readFile(file, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
