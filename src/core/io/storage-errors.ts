// File-system refusals (full disk, read-only mount, permissions, a file where a folder belongs) as one
// StorageError (exit 8) that names the path, what was being done, why it failed and what to do
// (docs/reliability.md#disk-and-file-system). Free of heavy imports: the CLI's error handler loads it at start-up.
import path from 'node:path';
import { MilkitError, StorageError } from '../errors.js';

interface Cause {
  /** Stable error code (`disk-full`, `read-only`...). */
  readonly code: string;
  /** Why, in words. */
  readonly why: string;
  readonly fix: string;
}

const RESUME = 'Runs already finished and files already written are kept; rerun the same command with --resume to continue.';

const CAUSES: Readonly<Record<string, Cause>> = {
  ENOSPC: { code: 'disk-full', why: 'the disk is full (ENOSPC)', fix: `Free space on that disk or point output.dir / tracking.uri to another disk. ${RESUME}` },
  EDQUOT: { code: 'disk-full', why: 'the disk quota is exhausted (EDQUOT)', fix: `Free space within your quota or point output.dir / tracking.uri elsewhere. ${RESUME}` },
  EROFS: { code: 'read-only', why: 'the file system is mounted read-only (EROFS)', fix: 'Choose a writable folder (output.dir, tracking.uri, --out) or remount the disk read-write.' },
  EACCES: { code: 'read-only', why: 'the folder is read-only for this user (permission denied, EACCES)', fix: 'Give this user write permission on the folder (chmod u+w) or choose a writable folder (output.dir, tracking.uri, --out).' },
  EPERM: { code: 'read-only', why: 'the operation is not permitted on this folder (EPERM; read-only or owned by another user)', fix: 'Give this user write permission on the folder or choose a writable folder (output.dir, tracking.uri, --out).' },
  ENOTDIR: { code: 'not-a-folder', why: 'a part of the path is a file where a folder is needed (ENOTDIR)', fix: 'Move that file away or choose another folder (output.dir, tracking.uri, --out).' },
  EISDIR: { code: 'not-a-file', why: 'a folder is in the way of the file (EISDIR)', fix: 'Move that folder away or choose another output path.' },
  EEXIST: { code: 'not-a-folder', why: 'a file is in the way of a folder (EEXIST)', fix: 'Move that file away or choose another folder (output.dir, tracking.uri, --out).' },
  ENOENT: { code: 'folder-missing', why: 'its folder does not exist or was removed while milkit ran (ENOENT)', fix: `Check that the folder exists and is not removed by another process. ${RESUME}` },
  EMFILE: { code: 'too-many-files', why: 'the process has too many open files (EMFILE)', fix: 'Raise the open-file limit (ulimit -n) or run fewer workers.' },
  EIO: { code: 'io-error', why: 'the disk reported an input/output error (EIO)', fix: 'Check the disk (dmesg, the network mount) and rerun with --resume.' },
};

/** The Node error code of a file-system failure (`ENOSPC`...), or undefined for anything else. */
export function errnoCode(error: unknown): string | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : undefined;
}

/** The path a Node file-system error names (`error.path`), if any. */
function errnoPath(error: unknown): string | undefined {
  const value = error !== null && typeof error === 'object' ? (error as { path?: unknown }).path : undefined;
  return typeof value === 'string' ? value : undefined;
}

/**
 * A file-system failure as a StorageError (exit 8) naming `file`, the action (`write summary.json`), the
 * cause and the fix; errors that are not file-system failures (and milkit errors) are returned unchanged.
 */
export function storageError(error: unknown, file: string, action: string): unknown {
  if (error instanceof MilkitError) return error;
  const code = errnoCode(error);
  const cause = code === undefined ? undefined : CAUSES[code];
  if (code === undefined || cause === undefined) return error;
  const where = errnoPath(error) ?? file;
  return new StorageError(cause.code, `could not ${action}: ${cause.why}.`, { where: { file: where }, hint: cause.fix, cause: error });
}

/** A raw Node file-system error (one that escaped every writer) as a StorageError; anything else unchanged. */
export function asStorageError(error: unknown): unknown {
  if (error instanceof MilkitError) return error;
  const file = errnoPath(error);
  if (file === undefined) return error;
  const syscall = (error as { syscall?: unknown }).syscall;
  return storageError(error, file, typeof syscall === 'string' ? `${syscall} ${path.basename(file)}` : `write ${path.basename(file)}`);
}

