// The file-system seam (re-exported by src/core/services.ts): the calls milkit's writers go through, so a test can
// make them fail as a full disk (ENOSPC) or a read-only mount (EROFS) would. Its own module, not services.ts, so
// low-level writers (the MLflow file store, sweep state) can use it without importing the composition root.
import { appendFile, mkdir, rename, rm } from 'node:fs/promises';
import writeFileAtomic from 'write-file-atomic';

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
  writeFile: (file, data) => writeFileAtomic(file, typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)),
  appendFile: (file, data) => appendFile(file, data),
  rename: (from, to) => rename(from, to),
  remove: (file) => rm(file, { force: true }),
};
