// Tag keys milkit reads or writes on MLflow runs: MLflow's own system tags (docs/methods/mlflow.md#system-tags) and milkit's.
// One list, so the engine, the trackers, sync and `milkit runs` never spell a key twice.

/** MLflow system tags (the UI gives them meaning). */
export const MLFLOW_TAGS = {
  runName: 'mlflow.runName',
  parentRunId: 'mlflow.parentRunId',
  user: 'mlflow.user',
  sourceName: 'mlflow.source.name',
  sourceType: 'mlflow.source.type',
  gitCommit: 'mlflow.source.git.commit',
  gitBranch: 'mlflow.source.git.branch',
  gitRepoUrl: 'mlflow.source.git.repoURL',
  note: 'mlflow.note.content',
} as const;

/** milkit's tags. */
export const MILKIT_TAGS = {
  /** Identity of the work a run does: hash of the resolved config (+ fold); set by the engine. */
  runKey: 'milkit.run_key',
  /** The run's id in the local store; with `runKey` it identifies the run on a server (sync never duplicates). */
  localRunId: 'milkit.local_run_id',
  /** `sweep` | `cell` | `experiment` | `fold`: where the run sits in a run tree. */
  level: 'milkit.level',
  /** Fold runs of a repeated split (`split.repeats` > 1): the repeat, and the fold's position within it. */
  repeat: 'milkit.repeat',
  foldInRepeat: 'milkit.fold_in_repeat',
  /** Params that exceeded MLflow's limits and went to an artifact instead (comma-separated keys). */
  oversizedParams: 'milkit.params.oversized',
  /** Tags that exceeded MLflow's limits and went to an artifact instead (comma-separated keys). */
  oversizedTags: 'milkit.tags.oversized',
} as const;

/**
 * Local-store-only bookkeeping of the server mirror. Never sent to a server: they describe the local copy.
 * `state` is `unsynced` until every write of the run reached `uri`, then `synced` with `remote_run_id`.
 */
export const SYNC_TAGS = {
  state: 'milkit.sync.state',
  uri: 'milkit.sync.uri',
  remoteRunId: 'milkit.sync.remote_run_id',
  /** Why the mirror stopped for this run (empty once a sync completed it). */
  error: 'milkit.sync.error',
} as const;

export const SYNC_TAG_PREFIX = 'milkit.sync.';

/** True for tags that stay in the local store (sync and the mirror skip them). */
export function isLocalOnlyTag(key: string): boolean {
  return key.startsWith(SYNC_TAG_PREFIX);
}
