// What tracker plugins build on, re-exported through src/registry/index.ts (plugins import nothing else from
// src/): the file-store and REST tracker implementations and their option types.
import path from 'node:path';
import type { Logger } from '../logger.js';
import type { FileSystem } from '../io/file-system.js';
import { MlflowFileStore } from './file-store.js';
import { MlflowRestTracker, type MlflowRestTrackerOptions } from './rest-tracker.js';

export { MlflowFileStore, type MlflowFileStoreOptions } from './file-store.js';
export { MlflowRestTracker, type MlflowRestTrackerOptions } from './rest-tracker.js';
export { REST_DEFAULTS } from './rest-client.js';

/** A file-store tracker rooted at `root` (relative paths resolve against `cwd`). */
export function createFileStoreTracker(options: { root: string; cwd: string; logger: Logger; fs?: FileSystem }): MlflowFileStore {
  return new MlflowFileStore({ root: path.resolve(options.cwd, options.root), logger: options.logger, ...(options.fs ? { fs: options.fs } : {}) });
}

/** A REST tracker for an `mlflow server`. */
export function createRestTracker(options: MlflowRestTrackerOptions): MlflowRestTracker {
  return new MlflowRestTracker(options);
}
