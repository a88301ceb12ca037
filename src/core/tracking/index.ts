// Public entry of milkit's MLflow tracking: what the engine and the CLI use. The engine needs only
// createTracker, flattenParams and systemTags; the rest serves sync, `milkit runs` and tests.
export { createTracker, resolveTrackingTarget, restEnvOptions, localStoreRoot, type CreateTrackerContext, type TrackingTarget } from './create-tracker.js';
export { flattenParams, type FlattenedParams } from './params.js';
export { systemTags, readGitInfo, stripUrlCredentials, type GitInfo } from './system-tags.js';
export { redactConfig, isSecretKeyPath, secretValuesFromEnv, secretEnvExpressions, scrubSecrets, REDACTED, SECRET_KEY_PATTERN, type SecretExpression } from './redact.js';
export { MLFLOW_TAGS, MILKIT_TAGS, SYNC_TAGS } from './tags.js';
export { MLFLOW_LIMITS, keyProblem } from './limits.js';
export { TrackingSection, TrackingServerSection } from './schema.js';
export { logCappedArtifact } from './artifacts.js';
export { syncStore, type SyncOptions, type SyncReport, type RunSyncResult } from './sync.js';
