// Executor plugins: run a batch of sweep/CV jobs somewhere (local child processes, Slurm array jobs).
// The engine issue fills in the job contract; this file is the seam.
import type { Logger } from '../../core/logger.js';

export interface JobSpec {
  /** Stable id = hash(resolved config, fold). */
  readonly id: string;
  /** Directory the job writes its result files to. */
  readonly outDir: string;
  /** Serialized job payload the worker reads (resolved config, fold, paths). */
  readonly manifestPath: string;
}

export interface JobOutcome {
  readonly id: string;
  readonly ok: boolean;
  readonly error?: string;
}

export interface Executor {
  run(jobs: readonly JobSpec[], onDone: (outcome: JobOutcome) => void): Promise<JobOutcome[]>;
}

export interface ExecutorContext {
  readonly logger: Logger;
  readonly cwd: string;
}

export type ExecutorCapabilities = Readonly<Record<string, never>>;
