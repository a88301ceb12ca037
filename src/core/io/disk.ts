// Every results writer of milkit (run folders, sweep state, checkpoints, exports, the local MLflow store) writes
// through here: whole files replaced atomically through the file-system seam (src/core/services.ts), so a full
// disk or a crash leaves the previous file or none, never a 0-byte or half-written one; failures become a
// StorageError naming the path (storage-errors.ts).
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { StorageError } from '../errors.js';
import { nodeFileSystem, type FileSystem } from './file-system.js';
import { storageError } from './storage-errors.js';

export { asStorageError, errnoCode, storageError } from './storage-errors.js';

export interface DurableWriteOptions {
  /** The file-system seam (default: the real one). */
  readonly fs?: FileSystem;
  /** What the file is, for the error (`write the cross-fold summary`); default `write <file name>`. */
  readonly action?: string;
}

/**
 * Replaces `file` atomically with `data`, creating its folder: readers see the old content or the new one, never
 * a mix, and a failure leaves no partial file. File-system failures throw a StorageError naming the file.
 */
export async function writeFileDurably(file: string, data: string | Uint8Array, options: DurableWriteOptions = {}): Promise<void> {
  const fs = options.fs ?? nodeFileSystem;
  const action = options.action ?? `write ${path.basename(file)}`;
  try {
    await fs.mkdir(path.dirname(file));
    await fs.writeFile(file, data);
  } catch (error) {
    throw await clarify(storageError(error, file, action), file);
  }
}

/** Creates a folder (and its parents); failures become a StorageError naming it. */
export async function makeFolder(dir: string, options: DurableWriteOptions = {}): Promise<void> {
  const fs = options.fs ?? nodeFileSystem;
  try {
    await fs.mkdir(dir);
  } catch (error) {
    throw await clarify(storageError(error, dir, options.action ?? 'create the folder'), dir);
  }
}

/** Appends to a file (MLflow metric lines); a failure truncates nothing already there and names the file. */
export async function appendToFile(file: string, data: string, options: DurableWriteOptions = {}): Promise<void> {
  const fs = options.fs ?? nodeFileSystem;
  try {
    await fs.appendFile(file, data);
  } catch (error) {
    throw storageError(error, file, options.action ?? `append to ${path.basename(file)}`);
  }
}

/**
 * ENOENT on a write usually means a parent is missing, and on a read-only mount some systems report ENOENT for
 * a folder that cannot be created: name the missing ancestor so the message is never a bare "no such file".
 */
async function clarify(error: unknown, target: string): Promise<unknown> {
  if (!(error instanceof StorageError) || error.code !== 'folder-missing') return error;
  let missing = path.dirname(target);
  for (let dir = path.dirname(missing); dir !== missing; missing = dir, dir = path.dirname(dir)) {
    if (await stat(dir).then(() => true, () => false)) break;
  }
  return new StorageError('folder-missing', `${error.message.replace(/\.$/, '')}; the first missing folder is ${missing}.`, { where: error.where ?? {}, hint: error.hint ?? '', cause: error.cause });
}
