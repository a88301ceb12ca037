// The run folder's own records (docs/reliability.md): a lock so two processes never write one folder, the run's
// identity (config hash, fold count, data fingerprint) checked before `--resume` continues, and the per-fold done
// markers the summary is merged from. Every record is replaced atomically (temporary file + rename).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile, rename, rm, stat, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { ConfigError } from '../errors.js';
import { storageError, writeFileDurably } from '../io/disk.js';
import type { FileSystem } from '../io/file-system.js';
import { isSampledFeatureFile, sampleFeatureFile, type FeatureSample } from './feature-sample.js';
import type { Logger } from '../logger.js';
import type { SlideRecord } from '../../registry/contracts/data.js';

/**
 * Writes JSON through the file-system seam's atomic replace, so a reader never sees half a file; a disk error
 * becomes a StorageError naming the file.
 */
export async function writeJsonAtomic(file: string, value: unknown, fs?: FileSystem): Promise<void> {
  await writeFileDurably(file, `${JSON.stringify(value, null, 2)}\n`, { ...(fs ? { fs } : {}), action: `write ${path.basename(file)}` });
}

/** Parsed JSON, or undefined when the file is missing or unreadable (a record from before it existed). */
export async function readJsonIfAny<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Lock

const LOCK_NAME = '.milkit.lock';
const HOLDER_NAME = '.milkit.lock.json';
/** A holder refreshes its lock every LOCK_UPDATE_MS; one not refreshed for LOCK_STALE_MS is gone (another host). */
const LOCK_STALE_MS = 30_000;
const LOCK_UPDATE_MS = 10_000;

interface LockHolder {
  readonly pid: number;
  readonly host: string;
  readonly startedAt: string;
  readonly command: string;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed process not yet reaped still answers signal 0; its state in /proc says it is gone.
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true;
  }
}

const CLAIM_PREFIX = '.milkit.lock.claim.';

/** The claims on a folder's lock: written before its lock is taken, renamed to the holder record once it is. */
async function readClaims(outDir: string): Promise<{ file: string; holder: LockHolder }[]> {
  const names = (await readdir(outDir).catch(() => [] as string[])).filter((name) => name.startsWith(CLAIM_PREFIX));
  const claims: { file: string; holder: LockHolder }[] = [];
  for (const name of names) {
    const holder = await readJsonIfAny<LockHolder>(path.join(outDir, name));
    if (holder) claims.push({ file: path.join(outDir, name), holder });
  }
  return claims;
}

const goneFromThisHost = (holder: LockHolder): boolean => holder.host === hostname() && holder.pid !== process.pid && !isAlive(holder.pid);

/**
 * Takes the run folder's lock (proper-lockfile, refreshed while held) and records the holder. A second process
 * gets a ConfigError naming the holder's pid; a lock left by a process of this host that is gone (kill -9) is
 * taken over at once, one of another host once it has not been refreshed for 30 s. Returns the release.
 *
 * The holder is written as a claim before the lock is taken and renamed to the holder record after, so a process
 * killed between the two still leaves its pid behind: without the claim, such a lock named nobody and blocked
 * the folder until it went stale.
 */
export async function lockRunFolder(outDir: string, logger: Logger, command = process.argv.slice(2).join(' ')): Promise<() => Promise<void>> {
  const lockPath = path.join(outDir, LOCK_NAME);
  const holderPath = path.join(outDir, HOLDER_NAME);
  const claimPath = path.join(outDir, `${CLAIM_PREFIX}${hostname()}.${process.pid}.json`);
  const options = {
    stale: LOCK_STALE_MS,
    update: LOCK_UPDATE_MS,
    realpath: false,
    lockfilePath: lockPath,
    retries: 0,
    onCompromised: (error: Error) => logger.warn(`run folder lock ${lockPath} was compromised (${error.message}); another process may write ${outDir}.`),
  };
  const self: LockHolder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), command };
  for (let attempt = 0; attempt < 2; attempt += 1) {
    let release: () => Promise<void>;
    try {
      await writeJsonAtomic(claimPath, self);
      // proper-lockfile keys its in-process locks by the locked path, not the lock file: a sweep worker holds the
      // same folder (its job folder) under another lock file, so the run lock is keyed by its own lock path.
      release = await lockfile.lock(lockPath, options);
    } catch (error) {
      await rm(claimPath, { force: true });
      // A folder that cannot hold the lock (read-only, full, a file in the way) is a disk error naming it.
      if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw storageError(error, lockPath, 'lock the run folder');
      // Claims are read before the holder: a live taker renames its claim to the holder in between, never after.
      const claims = (await readClaims(outDir)).filter((claim) => claim.file !== claimPath);
      const holder = await readJsonIfAny<LockHolder>(holderPath);
      const deadClaims = claims.filter((claim) => goneFromThisHost(claim.holder));
      // Held by a recorded holder that is gone, or (no holder record) taken by a claimant that died before writing
      // it: every other claim on the lock belongs to a process of this host that is gone.
      const left = holder !== undefined ? (goneFromThisHost(holder) ? holder : undefined)
        : (deadClaims.length === claims.length ? (deadClaims[0]?.holder ?? { pid: 0, host: hostname(), startedAt: '', command: '' }) : undefined);
      if (left === undefined || attempt > 0) {
        const live = holder ?? claims.find((claim) => !goneFromThisHost(claim.holder))?.holder;
        const who = live ? `pid ${live.pid} on ${live.host} (since ${live.startedAt}${live.command ? `: milkit ${live.command}` : ''})` : 'another process';
        throw new ConfigError('run-folder-locked', `${outDir} is in use by ${who}.`, {
          hint: 'Wait for it to finish (or stop it), or give this run another output.dir or name.',
        });
      }
      logger.warn(`run folder lock ${lockPath} was left by ${left.pid > 0 ? `pid ${left.pid}` : 'a process'}, which is gone; taking it over.`);
      await Promise.all(deadClaims.map((claim) => rm(claim.file, { force: true })));
      // Backdating the lock makes proper-lockfile treat it as stale and replace it.
      await utimes(lockPath, new Date(0), new Date(0)).catch(() => undefined);
      continue;
    }
    try {
      await rename(claimPath, holderPath);
    } catch (error) {
      await release().catch(() => undefined);
      await rm(claimPath, { force: true });
      throw storageError(error, holderPath, 'record the run folder lock holder');
    }
    return async () => {
      // The lock goes first; the holder record after, and only while it is still this process's (a taker that
      // came in between has written its own).
      await release().catch(() => undefined);
      const current = await readJsonIfAny<LockHolder>(holderPath);
      if (current?.pid === process.pid && current.host === hostname()) await rm(holderPath, { force: true });
    };
  }
  throw new ConfigError('run-folder-locked', `${outDir} is in use by another process.`, { hint: 'Give this run another output.dir or name.' });
}

// ---------------------------------------------------------------------------------------------------------------
// Data fingerprint

/** Files bigger than this are fingerprinted by size and modification time only, smaller ones by content too. */
const CONTENT_HASH_BYTES = 1 << 20;
/** Folders with more files keep only an aggregate hash (changes are then reported per folder, not per file). */
const LISTED_FILES = 5000;

export interface FileFingerprint {
  readonly size: number;
  readonly mtimeMs: number;
  readonly sha256?: string;
  /** Feature files (h5, npy, safetensors, pt): header, attributes and sampled rows (feature-sample.ts). */
  readonly sample?: FeatureSample;
}

export interface PathFingerprint {
  /** The dataset option (dotted) the path came from. */
  readonly key: string;
  readonly path: string;
  readonly kind: 'file' | 'folder';
  /** file: its fingerprint; folder: per file (relative path), up to LISTED_FILES. */
  readonly file?: FileFingerprint;
  readonly files?: Readonly<Record<string, FileFingerprint>>;
  readonly count?: number;
  /** Size, modification time and small files' content (the same hash as before samples were recorded). */
  readonly hash: string;
  /** The feature files' samples (absent in run.json files written before they were recorded). */
  readonly sampleHash?: string;
}

export interface DataFingerprint {
  /** The validated slide table as the run sees it: ids, cases, labels (order-independent). */
  readonly slides: { readonly count: number; readonly hash: string };
  readonly featureDim: number;
  readonly classes: readonly string[];
  /** Files and folders the dataset's options name (feature folders, slide tables...). */
  readonly paths: readonly PathFingerprint[];
}

function sha256(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

async function fileFingerprint(file: string, size: number, mtimeMs: number): Promise<FileFingerprint> {
  const sample = isSampledFeatureFile(file) ? await sampleFeatureFile(file, size) : undefined;
  const content = size > CONTENT_HASH_BYTES ? {} : { sha256: sha256(await readFile(file)) };
  return { size, mtimeMs, ...content, ...(sample ? { sample } : {}) };
}

/** The part of a file's fingerprint that the path hash covers (kept as it was before samples, so old records match). */
function statPart(entry: FileFingerprint): Omit<FileFingerprint, 'sample'> {
  const { sample: _sample, ...rest } = entry;
  return rest;
}

/** Which parts of a sampled feature file differ ('header', 'attributes', 'rows'); empty when same or not sampled. */
function sampleChanges(before: FileFingerprint | undefined, now: FileFingerprint | undefined): string[] {
  if (!before?.sample || !now?.sample) return [];
  return (['header', 'attributes', 'rows'] as const).filter((part) => before.sample?.[part] !== now.sample?.[part]);
}

/** Every file under `dir` (relative paths, sorted); hidden files and milkit's own output folders are skipped. */
async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (at: string, rel: string): Promise<void> => {
    const entries = await readdir(at, { withFileTypes: true });
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(path.join(at, entry.name), childRel);
      else if (entry.isFile()) out.push(childRel);
    }
  };
  await walk(dir, '');
  return out.sort();
}

/** Option names that say they hold a path; other values count as paths only when they look like one. */
const PATH_KEY = /(dir|file|path|table|root|folder|csv)$/i;

/** A value that looks like a path on its own: a separator or a file extension (`features` alone is a key name). */
function looksLikePath(value: string): boolean {
  return value.includes('/') || value.includes(path.sep) || /\.[A-Za-z0-9]{1,8}$/.test(value);
}

/** String option values that name an existing file or folder (relative to the config's folder or the cwd). */
function pathOptions(options: unknown, bases: readonly string[], prefix = ''): Array<{ key: string; path: string }> {
  if (typeof options === 'string') {
    if (options.length === 0 || options.length > 4096 || options.includes('\n')) return [];
    const lastKey = prefix.split('.').pop()?.replace(/\[\d+\]$/, '') ?? '';
    if (!PATH_KEY.test(lastKey) && !looksLikePath(options)) return [];
    for (const base of bases) {
      const candidate = path.resolve(base, options);
      if (existsSync(candidate)) return [{ key: prefix, path: candidate }];
    }
    return [];
  }
  if (Array.isArray(options)) return options.flatMap((value, i) => pathOptions(value, bases, `${prefix}[${i}]`));
  if (options !== null && typeof options === 'object') {
    return Object.entries(options).flatMap(([key, value]) => pathOptions(value, bases, prefix ? `${prefix}.${key}` : key));
  }
  return [];
}

/**
 * A cheap fingerprint of the data a run reads: the validated slide table, the feature width and class names, and
 * every file or folder the dataset's options name — each file by size and modification time, plus a content hash
 * when it is at most 1 MiB (slide tables, split files), and each feature file (h5, npy, safetensors, pt) by its
 * header, attributes and a sample of rows (feature-sample.ts). Cost: one stat per file, the small files, and a few kB
 * per feature file. Features re-extracted by another encoder of the same width differ in attributes or rows even
 * with size and modification time kept (see docs/reliability.md#identity).
 */
export async function dataFingerprint(input: {
  readonly slides: readonly SlideRecord[];
  readonly featureDim: number;
  readonly classNames: readonly string[];
  readonly datasetOptions: unknown;
  readonly bases: readonly string[];
}): Promise<DataFingerprint> {
  const rows = input.slides.map((s) => JSON.stringify([s.slideId, s.caseId ?? null, s.label])).sort();
  const paths: PathFingerprint[] = [];
  for (const { key, path: target } of pathOptions(input.datasetOptions, input.bases)) {
    const info = await stat(target);
    if (info.isFile()) {
      const file = await fileFingerprint(target, info.size, Math.round(info.mtimeMs));
      paths.push({ key, path: target, kind: 'file', file, hash: sha256(JSON.stringify(statPart(file))), ...(file.sample ? { sampleHash: sha256(JSON.stringify(file.sample)) } : {}) });
    } else if (info.isDirectory()) {
      const names = await listFiles(target);
      const files: Record<string, FileFingerprint> = {};
      const aggregate = createHash('sha256');
      const samples = createHash('sha256');
      let sampled = 0;
      for (const name of names) {
        const s = await stat(path.join(target, name));
        const entry = await fileFingerprint(path.join(target, name), s.size, Math.round(s.mtimeMs));
        aggregate.update(JSON.stringify([name, statPart(entry)]));
        if (entry.sample) {
          samples.update(JSON.stringify([name, entry.sample]));
          sampled += 1;
        }
        if (names.length <= LISTED_FILES) files[name] = entry;
      }
      paths.push({
        key, path: target, kind: 'folder', count: names.length, hash: aggregate.digest('hex'),
        ...(sampled > 0 ? { sampleHash: samples.digest('hex') } : {}),
        ...(names.length <= LISTED_FILES ? { files } : {}),
      });
    }
  }
  return { slides: { count: rows.length, hash: sha256(rows.join('\n')) }, featureDim: input.featureDim, classes: [...input.classNames], paths };
}

function sameFile(a: FileFingerprint | undefined, b: FileFingerprint | undefined): boolean {
  return a !== undefined && b !== undefined && a.size === b.size && a.mtimeMs === b.mtimeMs && a.sha256 === b.sha256 && sampleChanges(a, b).length === 0;
}

/** ` (header, rows changed)`: which sampled parts differ, or the empty string. */
function partsNote(before: FileFingerprint | undefined, now: FileFingerprint | undefined): string {
  const parts = sampleChanges(before, now);
  return parts.length ? ` (${parts.join(', ')} changed)` : '';
}

/** A path whose size/mtime hash or (when both records have it) sample hash differs. */
function pathChanged(before: PathFingerprint, now: PathFingerprint): boolean {
  return before.hash !== now.hash || (before.sampleHash !== undefined && now.sampleHash !== undefined && before.sampleHash !== now.sampleHash);
}

function describeFolderChange(before: PathFingerprint, now: PathFingerprint): string {
  if (!before.files || !now.files) return `${now.path} (dataset option ${now.key}): ${before.count ?? '?'} → ${now.count ?? '?'} files, contents changed`;
  const added = Object.keys(now.files).filter((name) => !before.files?.[name]);
  const removed = Object.keys(before.files).filter((name) => !now.files?.[name]);
  const changed = Object.keys(now.files).filter((name) => before.files?.[name] && !sameFile(before.files[name], now.files?.[name]));
  const list = (names: string[]): string => `${names.slice(0, 3).map((name) => `${name}${partsNote(before.files?.[name], now.files?.[name])}`).join(', ')}${names.length > 3 ? ` and ${names.length - 3} more` : ''}`;
  const parts = [
    ...(changed.length ? [`${changed.length} changed (${list(changed)})`] : []),
    ...(added.length ? [`${added.length} added (${list(added)})`] : []),
    ...(removed.length ? [`${removed.length} removed (${list(removed)})`] : []),
  ];
  return `${now.path} (dataset option ${now.key}): ${parts.join(', ') || 'contents changed'}`;
}

/** What differs between the fingerprint a run recorded and the data now, one line per difference (empty: same). */
export function fingerprintChanges(before: DataFingerprint, now: DataFingerprint): string[] {
  const changes: string[] = [];
  if (before.slides.hash !== now.slides.hash) changes.push(`slide table: ${before.slides.count} → ${now.slides.count} slides${before.slides.count === now.slides.count ? ' (ids, cases or labels differ)' : ''}`);
  if (before.featureDim !== now.featureDim) changes.push(`feature width: ${before.featureDim} → ${now.featureDim}`);
  if (before.classes.join('\u0000') !== now.classes.join('\u0000')) changes.push(`classes: [${before.classes.join(', ')}] → [${now.classes.join(', ')}]`);
  const byKey = new Map(before.paths.map((p) => [p.key, p]));
  for (const current of now.paths) {
    const old = byKey.get(current.key);
    byKey.delete(current.key);
    if (!old) changes.push(`${current.path} (dataset option ${current.key}): not part of the recorded run`);
    else if (old.path !== current.path) changes.push(`dataset option ${current.key}: ${old.path} → ${current.path}`);
    else if (pathChanged(old, current)) changes.push(current.kind === 'folder' ? describeFolderChange(old, current) : `${current.path} (dataset option ${current.key}): ${old.file?.size ?? '?'} → ${current.file?.size ?? '?'} bytes, modified ${new Date(current.file?.mtimeMs ?? 0).toISOString()}${partsNote(old.file, current.file)}`);
  }
  for (const gone of byKey.values()) changes.push(`${gone.path} (dataset option ${gone.key}): no longer read`);
  return changes;
}

// ---------------------------------------------------------------------------------------------------------------
// Identity

/** run.json: what makes the results in a run folder comparable with each other. */
export interface RunIdentity {
  readonly version: 1;
  readonly configHash: string;
  /** Folds of the split (with repeats: repeats × folds). */
  readonly folds: number;
  readonly splitSeed: number;
  readonly data: DataFingerprint;
  readonly createdAt: string;
}

export const RUN_IDENTITY_FILE = 'run.json';

export interface IdentityCheck {
  /** Differences between the recorded identity and this run's (empty when the same or nothing was recorded). */
  readonly folds?: { readonly before: number; readonly now: number };
  readonly dataChanges: readonly string[];
  readonly recorded: boolean;
}

export async function checkIdentity(outDir: string, now: Omit<RunIdentity, 'createdAt' | 'version'>): Promise<IdentityCheck> {
  const before = await readJsonIfAny<RunIdentity>(path.join(outDir, RUN_IDENTITY_FILE));
  if (!before || before.version !== 1) return { dataChanges: [], recorded: false };
  return {
    ...(before.folds !== now.folds ? { folds: { before: before.folds, now: now.folds } } : {}),
    dataChanges: fingerprintChanges(before.data, now.data),
    recorded: true,
  };
}

export async function writeIdentity(outDir: string, identity: Omit<RunIdentity, 'createdAt' | 'version'>): Promise<void> {
  await writeJsonAtomic(path.join(outDir, RUN_IDENTITY_FILE), { version: 1, ...identity, createdAt: new Date().toISOString() } satisfies RunIdentity);
}

/** Fold folders (fold-<k>) of a run folder, by index. */
export async function foldFolders(outDir: string): Promise<number[]> {
  const names = await readdir(outDir).catch(() => [] as string[]);
  return names.map((name) => /^fold-(\d+)$/.exec(name)?.[1]).filter((k): k is string => k !== undefined).map(Number).sort((a, b) => a - b);
}

/** Discards the results of an earlier run in this folder (--force over a changed identity). */
export async function discardResults(outDir: string): Promise<void> {
  for (const fold of await foldFolders(outDir)) await rm(path.join(outDir, `fold-${fold}`), { recursive: true, force: true });
  for (const name of ['summary.json', 'predictions.csv', 'bootstrap.json', 'runs.json', RUN_IDENTITY_FILE]) await rm(path.join(outDir, name), { force: true });
}
