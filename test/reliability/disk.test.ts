// Disk and file-system faults (docs/reliability.md#disk-and-file-system): a full disk, a read-only mount, missing
// permissions or a file where a folder belongs end in one StorageError (exit 8) that names the path, what failed and
// what to do; files already written stay whole (never 0-byte or half-written); runs are never left RUNNING; a sweep
// never dies of an unhandled 'error' event. Faults are injected through the file-system seam (createServices via
// main()) where a real full or read-only disk cannot be made, and made for real where the machine allows it.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { builtinManifest } from '../../plugins/index.js';
import localExecutor from '../../plugins/executors/local.js';
import { main } from '../../src/core/cli/main.js';
import { runSweep } from '../../src/core/engine/sweep/engine.js';
import { StorageError } from '../../src/core/errors.js';
import { writeFileDurably } from '../../src/core/io/disk.js';
import { storageError } from '../../src/core/io/storage-errors.js';
import { MemoryLogger, silentLogger } from '../../src/core/logger.js';
import { nodeFileSystem, type FileSystem } from '../../src/core/services.js';
import { MlflowFileStore } from '../../src/core/tracking/file-store.js';
import { fakeCompose, fakeExpand } from '../core/engine/sweep/fixtures/fake-job.js';
import { QUICKSTART, REPO, TINY, tempDir } from '../e2e/helpers.js';
import { parseMlruns } from '../helpers/mlruns-parser.js';

type Errno = 'ENOSPC' | 'EROFS' | 'EACCES' | 'ENOTDIR';

function errnoError(code: Errno, syscall: string, file: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${file}'`), { code, syscall, path: file });
}

/** The real file system, except that writes (whole-file and appends) to paths matching `failing` throw `code`. */
function faultyFs(code: Errno, failing: (file: string) => boolean): FileSystem & { refused: string[] } {
  const refused: string[] = [];
  const guard = (file: string, syscall: string): void => {
    if (!failing(file)) return;
    refused.push(file);
    throw errnoError(code, syscall, file);
  };
  return {
    ...nodeFileSystem,
    refused,
    writeFile: async (file, data) => {
      guard(file, 'open');
      await nodeFileSystem.writeFile(file, data);
    },
    appendFile: async (file, data) => {
      guard(file, 'open');
      await nodeFileSystem.appendFile(file, data);
    },
  };
}

async function cli(args: readonly string[], cwd: string, fs?: FileSystem): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const previous = process.exitCode;
  process.exitCode = undefined;
  const code = await main(args, { manifest: builtinManifest(), cwd, env: {}, ...(fs ? { services: { fs } } : {}), io: { out: (t) => out.push(t), err: (t) => err.push(t), stdoutIsTTY: false } });
  process.exitCode = previous;
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** Every run of the local MLflow store as `<run name>: <status>`. */
function runStatuses(mlruns: string): string[] {
  return parseMlruns(mlruns).flatMap((e) => e.runs.map((r) => `${String(r.meta.run_name).replace(/-[0-9a-f]{8}$/, '-<hash>')}: ${r.status}`)).sort();
}

/** Files under `dir` whose size is 0 or whose name marks a temporary left behind. */
function brokenFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (at: string): void => {
    for (const name of readdirSync(at)) {
      const full = path.join(at, name);
      const info = statSync(full);
      if (info.isDirectory()) walk(full);
      else if (info.size === 0 || /\.tmp|\.\d+$/.test(name)) out.push(path.relative(dir, full));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

describe('storage errors', () => {
  it('names the path, the action, the cause and the fix for each refusal, with a documented exit code', () => {
    const cases: Array<[Errno, string, RegExp]> = [
      ['ENOSPC', 'disk-full', /the disk is full \(ENOSPC\)\. Free space on that disk/],
      ['EROFS', 'read-only', /the file system is mounted read-only \(EROFS\)\. Choose a writable folder/],
      ['EACCES', 'read-only', /the folder is read-only for this user \(permission denied, EACCES\)\. Give this user write permission/],
      ['ENOTDIR', 'not-a-folder', /a part of the path is a file where a folder is needed \(ENOTDIR\)/],
    ];
    for (const [code, expectedCode, text] of cases) {
      const error = storageError(errnoError(code, 'open', '/data/out/summary.json'), '/data/out/summary.json', 'write summary.json');
      expect(error).toBeInstanceOf(StorageError);
      const storage = error as StorageError;
      expect(storage.code).toBe(expectedCode);
      expect(storage.exitCode).toBe(8);
      expect(storage.render()).toMatch(new RegExp(`^/data/out/summary\\.json: could not write summary\\.json: ${text.source}`));
    }
    // Anything that is not a file-system refusal passes through unchanged.
    const other = new Error('boom');
    expect(storageError(other, '/x', 'write x')).toBe(other);
  });

  it('names the first missing folder when a folder vanished, instead of a bare ENOENT', async () => {
    const dir = await tempDir('milkit-disk-enoent-');
    const target = path.join(dir, 'gone', 'deeper', 'summary.json');
    // A seam whose mkdir "succeeds" without creating anything: the folder is missing when the file is written.
    const vanishing: FileSystem = { ...nodeFileSystem, mkdir: async () => undefined };
    const error = await writeFileDurably(target, '{}', { fs: vanishing }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).render()).toContain(`the first missing folder is ${path.join(dir, 'gone')}.`);
  });

  it('on a really full disk keeps the previous file whole and leaves no temporary file (tmpfs; skipped where mounting is not allowed)', async (ctx) => {
    const dir = await tempDir('milkit-disk-tmpfs-');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir], { stdio: 'ignore' });
    } catch {
      ctx.skip();
      return;
    }
    try {
      const file = path.join(dir, 'summary.json');
      await writeFileDurably(file, 'previous summary\n');
      const error = await writeFileDurably(file, Buffer.alloc(1024 * 1024, 120)).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).code).toBe('disk-full');
      expect((error as StorageError).render()).toContain(file);
      expect(readFileSync(file, 'utf8')).toBe('previous summary\n');
      expect(readdirSync(dir)).toEqual(['summary.json']);
    } finally {
      execFileSync('umount', [dir]);
    }
  });
});

describe('cv on a failing disk (fs seam)', () => {
  it('disk full at summary.json: exit 8 naming the file, the previous summary kept whole, no run left RUNNING', async () => {
    const cwd = await tempDir('milkit-disk-cv-');
    const first = await cli(['cv', QUICKSTART, ...TINY], cwd);
    expect(first.code, first.err).toBe(0);
    const [hashDir] = readdirSync(path.join(cwd, 'outputs', 'quickstart'));
    const outDir = path.join(cwd, 'outputs', 'quickstart', hashDir as string);
    const summaryBefore = readFileSync(path.join(outDir, 'summary.json'));
    const full = faultyFs('ENOSPC', (file) => path.basename(file) === 'summary.json');
    const second = await cli(['cv', QUICKSTART, ...TINY], cwd, full);
    expect(second.code).toBe(8);
    expect(full.refused).toEqual([path.join(outDir, 'summary.json')]);
    const errorLines = second.err.split('\n').filter((l) => l.startsWith('error') || l.startsWith('  caused by'));
    expect(errorLines[0]).toBe(`error [disk-full]: ${path.join(outDir, 'summary.json')}: could not write summary.json: the disk is full (ENOSPC). Free space on that disk or point output.dir / tracking.uri to another disk. Runs already finished and files already written are kept; rerun the same command with --resume to continue.`);
    expect(second.err).not.toMatch(/\n\s+at /); // no stack trace
    expect(readFileSync(path.join(outDir, 'summary.json'))).toEqual(summaryBefore);
    expect(brokenFiles(outDir)).toEqual([]);
    // First invocation: parent and both folds FINISHED; second: new fold runs FINISHED (the first ones tagged
    // milkit.superseded_by), and the folder's one parent run, reopened, FAILED (not RUNNING) (docs/reliability.md#resume).
    expect(runStatuses(path.join(cwd, 'mlruns'))).toEqual([
      'fold-0: FINISHED', 'fold-0: FINISHED', 'fold-1: FINISHED', 'fold-1: FINISHED', 'quickstart-<hash>: FAILED',
    ]);
  }, 120_000);

  it('read-only mount at a fold file: exit 8 saying read-only; the fold and the parent are FAILED and later folds do not start', async () => {
    const cwd = await tempDir('milkit-disk-erofs-');
    const readOnly = faultyFs('EROFS', (file) => file.endsWith(`${path.sep}fold-0${path.sep}metrics.json`));
    const result = await cli(['cv', QUICKSTART, ...TINY], cwd, readOnly);
    expect(result.code).toBe(8);
    expect(result.err).toMatch(/^error \[read-only\]: .*fold-0\/metrics\.json: could not write metrics\.json: the file system is mounted read-only \(EROFS\)\. Choose a writable folder/m);
    expect(runStatuses(path.join(cwd, 'mlruns'))).toEqual(['fold-0: FAILED', 'quickstart-<hash>: FAILED']);
  }, 120_000);
});

describe('cv on a really full disk (tmpfs; skipped where mounting is not allowed)', () => {
  it('output folder on a 64 kB tmpfs: exit 8 saying the disk is full, no 0-byte or temporary file, no run RUNNING', async (ctx) => {
    const cwd = await tempDir('milkit-disk-real-');
    const outputs = path.join(cwd, 'small-disk');
    mkdirSync(outputs);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', outputs], { stdio: 'ignore' });
    } catch {
      ctx.skip();
      return;
    }
    try {
      const result = await cli(['cv', QUICKSTART, ...TINY, `output.dir=${outputs}`], cwd);
      expect(result.code, result.err).toBe(8);
      expect(result.err).toMatch(new RegExp(`^error \\[disk-full\\]: ${outputs.replace(/[/.]/g, '\\$&')}/.*: could not .*: the disk is full \\(ENOSPC\\)\\. Free space on that disk`, 'm'));
      expect(result.err).not.toMatch(/\n\s+at /);
      expect(brokenFiles(outputs)).toEqual([]);
      const statuses = runStatuses(path.join(cwd, 'mlruns'));
      expect(statuses.length).toBeGreaterThan(0);
      expect(statuses.filter((s) => s.endsWith('RUNNING'))).toEqual([]);
      expect(statuses).toContain('quickstart-<hash>: FAILED');
    } finally {
      execFileSync('umount', [outputs]);
    }
  }, 120_000);
});

describe('tracking on a failing disk (fs seam)', () => {
  it('a metric append on a full disk names the metric file; a partial line never stays behind', async () => {
    const root = path.join(await tempDir('milkit-disk-store-'), 'mlruns');
    let landed = false;
    // A disk that fills during the append: half of the text lands, then ENOSPC (what a real appendFile can do).
    const filling: FileSystem = {
      ...nodeFileSystem,
      appendFile: async (file, data) => {
        if (landed) {
          await nodeFileSystem.appendFile(file, data.slice(0, Math.floor(data.length / 2)));
          throw errnoError('ENOSPC', 'write', file);
        }
        landed = true;
        await nodeFileSystem.appendFile(file, data);
      },
    };
    const store = new MlflowFileStore({ root, logger: silentLogger, fs: filling, now: () => 1000 });
    const runId = await store.startRun({ experimentName: 'disk', runName: 'r' });
    await store.logMetrics(runId, [{ key: 'train/loss', value: 0.5, step: 0, timestamp: 1000 }]);
    const error = await store.logMetrics(runId, [{ key: 'train/loss', value: 0.25, step: 1, timestamp: 1001 }]).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    const metricFile = path.join(root, parseMlruns(root).find((e) => e.name === 'disk')?.id ?? '?', runId, 'metrics', 'train', 'loss');
    expect((error as StorageError).render()).toBe(`${metricFile}: could not append metric "train/loss" of run ${runId}: the disk is full (ENOSPC). Free space on that disk or point output.dir / tracking.uri to another disk. Runs already finished and files already written are kept; rerun the same command with --resume to continue.`);
    expect(readFileSync(metricFile, 'utf8')).toBe('1000 0.5 0\n');
    await store.endRun(runId, 'FAILED');
    expect(runStatuses(root)).toEqual(['r: FAILED']);
  });

  it('cv whose store refuses metric files: exit 8 naming the store file, the runs marked FAILED', async () => {
    const cwd = await tempDir('milkit-disk-cv-store-');
    const storeFull = faultyFs('ENOSPC', (file) => file.includes(`${path.sep}metrics${path.sep}`) && file.startsWith(path.join(cwd, 'mlruns')));
    const result = await cli(['cv', QUICKSTART, ...TINY], cwd, storeFull);
    expect(result.code).toBe(8);
    expect(result.err).toMatch(/^error \[disk-full\]: .*\/mlruns\/\d+\/[0-9a-f]{32}\/metrics\/.*: could not append metric/m);
    expect(runStatuses(path.join(cwd, 'mlruns')).every((line) => line.endsWith('FAILED'))).toBe(true);
  }, 120_000);
});

describe('sweep on a failing disk', () => {
  const here = path.join(REPO, 'test', 'core', 'engine', 'sweep');
  const fakeWorker = { command: process.execPath, args: ['--conditions=milkit-source', '--import', 'tsx', path.join(here, 'fixtures', 'fake-worker.ts')] };
  const definition = { name: 'disk', experimentFile: 'experiments/fake.yaml', grid: ['a=1,2', 'b=x'], zip: [] };

  it('a job log that cannot be written is reported, not an unhandled error event; a full disk at table.md is a StorageError', async () => {
    const stateDir = path.join(await tempDir('milkit-disk-sweep-'), 'state');
    const logger = new MemoryLogger();
    const executor = localExecutor.create(localExecutor.options.parse({ workers: 2 }), { logger, cwd: process.cwd(), cores: 2, env: { ...process.env, FAKE_JOB_MS: '20' } });
    const base = { definition, expand: fakeExpand, compose: fakeCompose, executor, worker: fakeWorker, cwd: process.cwd(), logger, stateDir };
    await runSweep({ ...base, dryRun: true });
    // A folder where each job's log file belongs: opening the log stream fails (EISDIR) as on a broken disk.
    const jobs = readdirSync(path.join(stateDir, 'jobs'));
    expect(jobs.length).toBe(6);
    for (const id of jobs) mkdirSync(path.join(stateDir, 'jobs', id, 'worker.log'));
    const full = faultyFs('ENOSPC', (file) => path.basename(file) === 'table.md');
    const error = await runSweep({ ...base, fs: full }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).render()).toContain(`${path.join(stateDir, 'table.md')}: could not write the sweep file table.md: the disk is full (ENOSPC).`);
    // Every job ran (results written) although no log could be.
    expect(jobs.filter((id) => existsSync(path.join(stateDir, 'jobs', id, 'result.json')))).toHaveLength(6);
    const warnings = logger.lines.map((l) => l.message).filter((l) => l.includes('job logs are incomplete'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/worker\.log: could not write the job log: a folder is in the way of the file \(EISDIR\)/);
  }, 120_000);
});

/** A path's folder and every folder above it, up to the root. */
function ancestors(dir: string): string[] {
  const parent = path.dirname(dir);
  return parent === dir ? [dir] : [dir, ...ancestors(parent)];
}

describe('a real read-only folder', () => {
  // As root, chmod does not stop writes (CAP_DAC_OVERRIDE): the CLI then runs as the unprivileged user "nobody".
  const asRoot = process.getuid?.() === 0;

  it('cv into a read-only output folder, and with mlruns being a file: exit 2 before anything runs, saying why', async () => {
    const cwd = await tempDir('milkit-disk-ro-');
    chmodSync(cwd, 0o777);
    await mkdir(path.join(cwd, 'outputs'));
    chmodSync(path.join(cwd, 'outputs'), 0o555);
    await writeFile(path.join(cwd, 'mlruns'), 'not a folder\n');
    const env = { ...process.env, MILKIT_SOURCE: '1', HOME: cwd };
    // "nobody" must reach the checkout: a clone under `mktemp -d` (mode 700) has a parent closed to other users. Those
    // folders get the traverse bit (not read) for the run and their modes back afterwards.
    const closed = asRoot ? ancestors(REPO).filter((dir) => (statSync(dir).mode & 0o001) === 0).map((dir) => ({ dir, mode: statSync(dir).mode & 0o7777 })) : [];
    for (const { dir, mode } of closed) chmodSync(dir, mode | 0o001);
    const result = await execa(process.execPath, [path.join(REPO, 'bin', 'milkit.mjs'), 'cv', QUICKSTART, ...TINY], {
      cwd, env, reject: false, ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
    }).finally(() => {
      for (const { dir, mode } of closed) chmodSync(dir, mode);
    });
    expect(result.exitCode, result.stderr).toBe(2);
    expect(result.stderr).toContain(`output.dir: cannot write to ${path.join(cwd, 'outputs', 'quickstart', '')}`);
    expect(result.stderr).toContain(': the folder is read-only for this user (permission denied, EACCES). Point output.dir at a writable folder');
    expect(result.stderr).toMatch(new RegExp(`tracking.uri: cannot write to ${path.join(cwd, 'mlruns').replace(/[/.]/g, '\\$&')}: (a part of the path is a file where a folder is needed \\(ENOTDIR\\)|a file is in the way of a folder \\(EEXIST\\))`));
    expect(result.stderr).not.toContain('ENOENT');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(path.join(cwd, 'outputs'))).toEqual([]);
    chmodSync(path.join(cwd, 'outputs'), 0o755);
    rmSync(cwd, { recursive: true, force: true });
  }, 120_000);
});
