// Size-capped artifact logging (best checkpoints): a file over the cap is not logged and a warning says so,
// so a large model never stalls a sync or fills a server by surprise.
import { stat } from 'node:fs/promises';
import type { Logger } from '../logger.js';
import type { Tracker } from '../../registry/contracts/tracker.js';

/** Logs `file` when it is at most `maxMb` megabytes; returns whether it was logged. */
export async function logCappedArtifact(tracker: Tracker, runId: string, file: string, options: { maxMb: number; logger: Logger; artifactPath?: string }): Promise<boolean> {
  const { size } = await stat(file);
  const limit = options.maxMb * 1024 * 1024;
  if (size > limit) {
    options.logger.warn(`run ${runId}: ${file} is ${(size / 1024 / 1024).toFixed(1)} MB, over tracking.checkpointMaxMb = ${options.maxMb}; not logged as an artifact (it stays on disk).`);
    return false;
  }
  await tracker.logArtifact(runId, file, options.artifactPath ?? '');
  return true;
}
