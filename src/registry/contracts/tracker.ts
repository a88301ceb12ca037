// Tracker plugins: where runs, params, metrics and artifacts go (MLflow file store by default).
import type { FileSystem } from '../../core/io/file-system.js';
import type { Logger } from '../../core/logger.js';

export type RunStatus = 'RUNNING' | 'FINISHED' | 'FAILED' | 'KILLED';

export interface MetricPoint {
  readonly key: string;
  readonly value: number;
  readonly step: number;
  /** Milliseconds since the epoch. */
  readonly timestamp: number;
}

export interface StartRunSpec {
  readonly experimentName: string;
  readonly runName: string;
  readonly parentRunId?: string;
  readonly tags?: Readonly<Record<string, string>>;
}

export interface Tracker {
  /** Creates a run and returns its id. */
  startRun(spec: StartRunSpec): Promise<string>;
  logParams(runId: string, params: Readonly<Record<string, string>>): Promise<void>;
  logMetrics(runId: string, metrics: readonly MetricPoint[]): Promise<void>;
  setTags(runId: string, tags: Readonly<Record<string, string>>): Promise<void>;
  /**
   * Copies a local file under the run's artifacts, at `artifactPath` (a folder, '' for the root); a local folder's
   * contents go into `artifactPath` (MLflow's log_artifacts).
   */
  logArtifact(runId: string, localPath: string, artifactPath?: string): Promise<void>;
  endRun(runId: string, status: Exclude<RunStatus, 'RUNNING'>): Promise<void>;
  /**
   * Optional: marks an existing run RUNNING again (end time cleared), when a resumed run continues logging into
   * it (`--resume` reuses a fold's and its stages' runs instead of creating new ones).
   */
  reopenRun?(runId: string): Promise<void>;
  /** Waits for buffered writes; called before the process exits. */
  flush(): Promise<void>;
  /**
   * Stops talking to a remote store for good: cancels in-flight requests, no new ones start (a mirror's flush budget
   * is spent; what was not sent stays in the local store for a later sync). Local trackers need not implement it.
   */
  abort?(): void;
}

export interface TrackerContext {
  readonly logger: Logger;
  /** Working directory the local store path resolves against. */
  readonly cwd: string;
  /** The file-system seam a local store writes through (default: the real one; tests inject a full disk here). */
  readonly fs?: FileSystem;
}

export type TrackerCapabilities = Readonly<Record<string, never>>;
