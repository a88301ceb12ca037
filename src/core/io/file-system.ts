// The file-system seam (re-exported by src/core/services.ts): the calls milkit's writers go through, so a test can
// make them fail as a full disk (ENOSPC) or a read-only mount (EROFS) would. Its own module, not services.ts, so
// low-level writers (the MLflow file store, sweep state) can use it without importing the composition root.
import { randomInt } from 'node:crypto';
import { rmSync } from 'node:fs';
import { appendFile, mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { hold, shouldHold } from './test-hold.js';

/** Paths are absolute or relative to the process's working directory. */
export interface FileSystem {
  /** Creates the folder and its missing parents; an existing folder is fine. */
  mkdir(dir: string): Promise<void>;
  /**
   * Replaces the file's content atomically (a temporary file in the same folder, flushed, then renamed over it):
   * readers see the old content or the new, and a failure leaves no partial file.
   */
  writeFile(file: string, data: string | Uint8Array): Promise<void>;
  /** Appends to the file, creating it when absent (append-only logs such as MLflow metric files). */
  appendFile(file: string, data: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Removes a file; a missing one is fine. */
  remove(file: string): Promise<void>;
}

export const nodeFileSystem: FileSystem = {
  mkdir: async (dir) => {
    await mkdir(dir, { recursive: true });
  },
  writeFile: (file, data) => replaceFileAtomically(file, data),
  appendFile: (file, data) => appendFile(file, data),
  rename: (from, to) => rename(from, to),
  remove: (file) => rm(file, { force: true }),
};

/**
 * Temp file in the target's folder, every byte written, flushed to disk, then renamed over the target. Not
 * write-file-atomic: it issues one write() and ignores a short count, so on a filling disk it renamed a truncated
 * file over the target and reported success (seen on a 256 kB tmpfs); FileHandle.writeFile loops until every byte
 * is written, so a full disk surfaces as ENOSPC before the rename. The temp name ends in `.<10 digits>`, the
 * suffix the store readers skip.
 */
async function replaceFileAtomically(file: string, data: string | Uint8Array): Promise<void> {
  const temp = `${file}.${randomInt(1_000_000_000, 9_999_999_999)}`;
  inFlight.add(temp);
  watchExit();
  // Keep the permissions of the file being replaced (a user's chmod survives rewrites).
  const mode = await stat(file).then((info) => info.mode & 0o7777, () => 0o666);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, 'wx', mode);
    if (shouldHold('write', file)) {
      // Test-only (src/core/io/test-hold.ts): half the bytes land, then the write holds for a signal to arrive.
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      const half = Math.floor(bytes.length / 2);
      await handle.writeFile(bytes.subarray(0, half));
      await hold('write', file);
      await handle.writeFile(bytes.subarray(half));
    } else {
      await handle.writeFile(data);
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, file);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(temp, { force: true }).catch(() => undefined);
    throw error;
  } finally {
    inFlight.delete(temp);
  }
}

/** Temporary files of writes in progress: a process leaving mid-write (a second Ctrl-C) removes them on its way out. */
const inFlight = new Set<string>();
let exitWatched = false;

function watchExit(): void {
  if (exitWatched) return;
  exitWatched = true;
  // process.exit() runs 'exit' listeners synchronously; kill -9 runs nothing (its temp files are skipped by readers).
  process.on('exit', () => {
    for (const temp of inFlight) {
      try {
        rmSync(temp, { force: true });
      } catch {
        // Leaving anyway: a temp file that cannot be removed is skipped by every reader (its suffix).
      }
    }
  });
}
