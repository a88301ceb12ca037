// The tracker the engine uses: every write lands in the local store first (awaited: that is the record), then
// is mirrored to an MLflow server from a background queue that never blocks or fails training. A run whose
// writes did not all reach the server stays tagged `milkit.sync.state=unsynced` for `milkit mlflow sync`.
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hold, shouldHold } from '../io/test-hold.js';
import type { Logger } from '../logger.js';
import type { MetricPoint, RunStatus, StartRunSpec, Tracker } from '../../registry/contracts/tracker.js';
import { isSecretKeyPath, isSecretTagKey, redactStringMap, scrubSecrets } from './redact.js';
import { MlflowApiError, MlflowArtifactUriError } from './rest-errors.js';
import { isLocalOnlyTag, MILKIT_TAGS, SYNC_TAGS } from './tags.js';

export interface MirrorOptions {
  /** The record: the local file store. */
  readonly local: Tracker;
  /** The server mirror; absent when tracking is local only. */
  readonly remote?: Tracker;
  /** Server URI without credentials (tags, messages). */
  readonly remoteUri?: string;
  /** Local store root (messages). */
  readonly localRoot: string;
  readonly logger: Logger;
  /** Secret values to scrub from params, tags and text artifacts. */
  readonly secrets?: readonly string[];
  /** Folder of a local run's artifacts (uploads read the stored copy, not the caller's file). */
  readonly localArtifactDir: (runId: string) => Promise<string | undefined>;
  /** Tags of a local run written by any process (finds the server id of a parent started elsewhere). */
  readonly localRunTags?: (runId: string) => Promise<Readonly<Record<string, string>> | undefined>;
  /** After the server failed, new runs try it again once this much time has passed. */
  readonly reconnectAfterMs?: number;
  /** flush() waits at most this long for the server; what is left stays unsynced. */
  readonly flushTimeoutMs?: number;
  /** How long a child waits for a parent started by another process to reach the server. */
  readonly parentWaitMs?: number;
  readonly now?: () => number;
}

export const MIRROR_DEFAULTS = { reconnectAfterMs: 60_000, flushTimeoutMs: 120_000, parentWaitMs: 5_000 } as const;

interface MirroredRun {
  /** Server id once the run exists there. */
  remoteId: string | undefined;
  /** Why some write did not reach the server (the run stays unsynced); undefined while all is well. */
  failure: string | undefined;
  /** The failure reason last written locally as `milkit.sync.error`. */
  writtenFailure: string | undefined;
  ended: boolean;
  /**
   * A run of an earlier process reopened here whose earlier writes did not all reach the server: new writes still
   * go there, but the run stays unsynced until `milkit mlflow sync` has sent the rest.
   */
  incomplete?: string;
  /** Queued server writes not yet done. */
  pending: number;
  /** The value of `milkit.sync.state` last written locally. */
  writtenState: 'synced' | 'unsynced';
  /** Serialises writes of the sync-state tag; each decides its value when it runs. */
  stateChain: Promise<void>;
  warned: boolean;
}

// Text artifacts larger than this are not scanned for secret values (checkpoints, images).
const SCRUB_MAX_BYTES = 5 * 1024 * 1024;

function looksLikeText(bytes: Buffer): boolean {
  return !bytes.subarray(0, 8192).includes(0);
}

/** Local-first tracker with an optional, non-blocking server mirror. */
export class MirroredTracker implements Tracker {
  private readonly local: Tracker;
  private readonly remote: Tracker | undefined;
  private readonly options: MirrorOptions;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly secrets: readonly string[];
  private readonly runs = new Map<string, MirroredRun>();
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  private serverDown = false;
  private downSince = 0;
  private abandoned = false;

  constructor(options: MirrorOptions) {
    this.local = options.local;
    this.remote = options.remote;
    this.options = options;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.secrets = options.secrets ?? [];
  }

  /** Whether the server mirror is currently considered down. */
  get offline(): boolean {
    return this.remote !== undefined && this.serverDown;
  }

  private redactTags(tags: Readonly<Record<string, string>>): Record<string, string> {
    return redactStringMap(tags, this.secrets, isSecretTagKey);
  }

  async startRun(spec: StartRunSpec): Promise<string> {
    const given = spec.tags ?? {};
    const tags: Record<string, string> = this.redactTags(Object.fromEntries(Object.entries(given).filter(([key]) => !isLocalOnlyTag(key))));
    // Without a key from the engine the run still needs a stable identity for sync.
    tags[MILKIT_TAGS.runKey] ??= randomUUID().replace(/-/g, '');
    if (this.remote && this.options.remoteUri) {
      tags[SYNC_TAGS.state] = 'unsynced';
      tags[SYNC_TAGS.uri] = this.options.remoteUri;
    }
    const runName = scrubSecrets(spec.runName, this.secrets);
    const localId = await this.local.startRun({ ...spec, runName, tags });
    if (!this.remote) return localId;

    if (this.serverDown && this.now() - this.downSince >= (this.options.reconnectAfterMs ?? MIRROR_DEFAULTS.reconnectAfterMs)) {
      this.serverDown = false;
      this.logger.info(`mlflow: trying ${this.options.remoteUri ?? 'the server'} again for run "${runName}".`);
    }
    const run: MirroredRun = { remoteId: undefined, failure: undefined, writtenFailure: undefined, ended: false, pending: 0, writtenState: 'unsynced', stateChain: Promise.resolve(), warned: false };
    this.runs.set(localId, run);
    if (this.serverDown || this.abandoned) {
      run.failure = this.serverDown ? `server unavailable since ${new Date(this.downSince).toISOString()}` : 'mirror gave up at flush';
      void this.refreshState(localId, run);
      return localId;
    }
    const remoteTags = Object.fromEntries(Object.entries(tags).filter(([key]) => !isLocalOnlyTag(key)));
    remoteTags[MILKIT_TAGS.localRunId] = localId;
    this.enqueue(localId, 'start run', async (remote) => {
      let parentRunId: string | undefined;
      if (spec.parentRunId) {
        parentRunId = await this.remoteIdOf(spec.parentRunId);
        if (!parentRunId) throw new RunMirrorError(`parent run ${spec.parentRunId} did not reach the server`);
      }
      run.remoteId = await remote.startRun({ experimentName: spec.experimentName, runName, ...(parentRunId ? { parentRunId } : {}), tags: remoteTags });
      // Recorded right away: children started by other processes find their parent's server id here.
      await this.local.setTags(localId, { [SYNC_TAGS.remoteRunId]: run.remoteId });
    }, { needsRemoteId: false });
    return localId;
  }

  /** Server id of a local run: this process's mirror, or the tag another process's mirror wrote. */
  private async remoteIdOf(localId: string): Promise<string | undefined> {
    const known = this.runs.get(localId);
    if (known) return known.remoteId;
    const deadline = this.now() + (this.options.parentWaitMs ?? MIRROR_DEFAULTS.parentWaitMs);
    for (;;) {
      const tags = await this.options.localRunTags?.(localId);
      const id = tags?.[SYNC_TAGS.remoteRunId];
      if (id && tags?.[SYNC_TAGS.uri] === this.options.remoteUri) return id;
      // The parent's own mirror gave up (or it was never mirrored): no point waiting.
      if (tags?.[SYNC_TAGS.error] || tags?.[SYNC_TAGS.uri] !== this.options.remoteUri) return undefined;
      if (this.now() >= deadline || !this.options.localRunTags) return undefined;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async logParams(runId: string, params: Readonly<Record<string, string>>): Promise<void> {
    const clean = redactStringMap(params, this.secrets, isSecretKeyPath);
    await this.beforeLocalWrite(runId);
    await this.local.logParams(runId, clean);
    this.enqueue(runId, 'log params', (remote, remoteId) => remote.logParams(remoteId, clean));
  }

  async logMetrics(runId: string, metrics: readonly MetricPoint[]): Promise<void> {
    if (metrics.length === 0) return;
    const copy = metrics.map((m) => ({ ...m }));
    await this.beforeLocalWrite(runId);
    await this.local.logMetrics(runId, copy);
    this.enqueue(runId, 'log metrics', (remote, remoteId) => remote.logMetrics(remoteId, copy));
  }

  async setTags(runId: string, tags: Readonly<Record<string, string>>): Promise<void> {
    const clean = this.redactTags(Object.fromEntries(Object.entries(tags).filter(([key]) => !isLocalOnlyTag(key))));
    if (Object.keys(clean).length === 0) return;
    await this.beforeLocalWrite(runId);
    await this.local.setTags(runId, clean);
    this.enqueue(runId, 'set tags', (remote, remoteId) => remote.setTags(remoteId, clean));
  }

  async logArtifact(runId: string, localPath: string, artifactPath = ''): Promise<void> {
    const { source, cleanup } = await this.scrubbedCopy(localPath);
    try {
      await this.beforeLocalWrite(runId);
      await this.local.logArtifact(runId, source, artifactPath);
      if (!this.runs.has(runId)) return;
      // Upload from the stored copy: the caller may change or delete its file before the queue gets there.
      const storedRoot = await this.options.localArtifactDir(runId);
      if (storedRoot === undefined) {
        this.enqueue(runId, `upload ${localPath}`, () => Promise.reject(new RunMirrorError('the local store does not say where it keeps artifacts')));
        return;
      }
      const prefix = artifactPath.replace(/\\/g, '/').replace(/^\/+|\/+$/g, '');
      const files = (await stat(source)).isDirectory() ? await listFiles(source) : [path.basename(localPath)];
      for (const rel of files) {
        const relPath = [prefix, rel].filter(Boolean).join('/');
        const stored = path.join(storedRoot, ...relPath.split('/'));
        const folder = path.posix.dirname(relPath) === '.' ? '' : path.posix.dirname(relPath);
        this.enqueue(runId, `upload ${relPath}`, (remote, remoteId) => remote.logArtifact(remoteId, stored, folder));
      }
    } finally {
      await cleanup();
    }
  }

  async endRun(runId: string, status: Exclude<RunStatus, 'RUNNING'>): Promise<void> {
    await this.beforeLocalWrite(runId);
    await this.local.endRun(runId, status);
    const run = this.runs.get(runId);
    if (!run) return;
    this.enqueue(runId, 'end run', (remote, remoteId) => remote.endRun(remoteId, status));
    run.ended = true;
    void this.refreshState(runId, run);
  }

  /**
   * A resumed fold's or experiment's run, RUNNING again in the local store (the record `--resume` continues in) and
   * on the server: a run this process mirrors, or one an earlier process created there (its server id is in the
   * local tags), is set RUNNING on the server too (`runs/update`) and later writes go into it, so the server also
   * keeps one run per fold. A run that never reached the server reaches it through the next sync.
   */
  async reopenRun(runId: string): Promise<void> {
    await this.beforeLocalWrite(runId);
    await this.local.reopenRun?.(runId);
    const run = this.runs.get(runId) ?? (await this.adoptEarlierRun(runId));
    if (!run) {
      // Changed after its last sync: `milkit mlflow sync` (or the next run's flush) must send it again.
      await this.local.setTags(runId, { [SYNC_TAGS.state]: 'unsynced' });
      return;
    }
    run.ended = false;
    this.enqueue(runId, 'reopen run', (remote, remoteId) => remote.reopenRun?.(remoteId) ?? Promise.resolve());
    void this.refreshState(runId, run);
  }

  /** Mirrors from now on a run an earlier process created on this server (undefined: it never got there). */
  private async adoptEarlierRun(runId: string): Promise<MirroredRun | undefined> {
    if (!this.remote || !this.options.remoteUri) return undefined;
    const tags = await this.options.localRunTags?.(runId);
    const remoteId = tags?.[SYNC_TAGS.remoteRunId];
    if (!tags || !remoteId || tags[SYNC_TAGS.uri] !== this.options.remoteUri) return undefined;
    const complete = tags[SYNC_TAGS.state] === 'synced';
    // Its local state goes back to unsynced before anything changes (crash-safe order, as beforeLocalWrite).
    await this.local.setTags(runId, { [SYNC_TAGS.state]: 'unsynced' });
    const run: MirroredRun = {
      remoteId, failure: undefined, writtenFailure: undefined, ended: false, pending: 0, writtenState: 'unsynced', stateChain: Promise.resolve(), warned: false,
      ...(complete ? {} : { incomplete: 'writes of an earlier process did not all reach the server' }),
    };
    if (this.serverDown || this.abandoned) run.failure = this.serverDown ? `server unavailable since ${new Date(this.downSince).toISOString()}` : 'mirror gave up at flush';
    this.runs.set(runId, run);
    return run;
  }

  async flush(): Promise<void> {
    await this.local.flush();
    if (!this.remote) return;
    const remote = this.remote;
    const timeoutMs = this.options.flushTimeoutMs ?? MIRROR_DEFAULTS.flushTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    // Ctrl-C while waiting for the server: the user wants out, so the wait ends at once (docs/reliability.md#signals).
    const interrupted = signalDuringFlush();
    // Everything the server still has to do, under one budget: the queue (which may grow while it drains), the
    // sync-state tags, and the remote tracker's own flush.
    const drain = async (): Promise<'drained'> => {
      for (;;) {
        const tail = this.queue;
        await tail;
        if (tail === this.queue) break;
      }
      await Promise.all([...this.runs.values()].map((run) => run.stateChain));
      await remote.flush();
      return 'drained';
    };
    try {
      const where = this.options.remoteUri ?? 'the server';
      if (shouldHold('flush', where)) await hold('flush', where, interrupted.signal);
      const outcome = await Promise.race([drain(), timedOut, interrupted.signal]);
      if (outcome !== 'drained') {
        this.abandoned = true;
        const pending = this.queued;
        const runs = [...this.runs.values()].filter((run) => run.pending > 0 || run.failure !== undefined).length;
        // Cancel the request in flight and its retries: nothing of the server's may outlive the budget.
        remote.abort?.();
        const why = outcome === 'timeout' ? `still pending after ${timeoutMs} ms (tracking.server.flushTimeoutMs)` : `not sent: ${outcome} arrived while they were being sent`;
        this.logger.warn(
          `mlflow: ${pending} server write(s) of ${runs} run(s) ${why}; ` +
          `they stay unsynced in ${this.options.localRoot}. Run \`milkit mlflow sync\` to upload them.`,
        );
        await Promise.all([...this.runs.values()].map((run) => run.stateChain));
      }
    } finally {
      clearTimeout(timer);
      interrupted.dispose();
    }
  }

  /** Local data is about to change: a run marked synced goes back to unsynced first (crash-safe order). */
  private async beforeLocalWrite(runId: string): Promise<void> {
    const run = this.runs.get(runId);
    if (!run || run.failure !== undefined) return;
    run.pending += 1;
    try {
      if (run.writtenState === 'synced') await this.refreshState(runId, run);
    } finally {
      run.pending -= 1;
    }
  }

  private enqueue(runId: string, label: string, op: (remote: Tracker, remoteId: string) => Promise<void>, options: { needsRemoteId?: boolean } = {}): void {
    const run = this.runs.get(runId);
    const remote = this.remote;
    if (!run || !remote || run.failure !== undefined) return;
    run.pending += 1;
    this.queued += 1;
    this.queue = this.queue.then(async () => {
      try {
        if (run.failure !== undefined) return;
        if (this.serverDown || this.abandoned) {
          run.failure = this.serverDown ? `server unavailable since ${new Date(this.downSince).toISOString()}` : 'mirror gave up at flush';
          return;
        }
        if (options.needsRemoteId !== false && !run.remoteId) {
          run.failure = 'the run was not created on the server';
          return;
        }
        await op(remote, run.remoteId ?? '');
      } catch (error) {
        this.onFailure(runId, run, label, error);
      } finally {
        run.pending -= 1;
        this.queued -= 1;
        await this.refreshState(runId, run);
      }
    });
  }

  private onFailure(runId: string, run: MirroredRun, label: string, error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    run.failure = `${label}: ${reason}`;
    // Cancelled by flush's budget: its warning already says what stays unsynced and how to sync it.
    if (this.abandoned) return;
    // A request the server rejected concerns this run; anything else (down, 5xx, not MLflow) the whole server.
    if (error instanceof RunMirrorError || error instanceof MlflowArtifactUriError || (error instanceof MlflowApiError && error.status >= 400 && error.status < 500 && error.status !== 429)) {
      if (!run.warned) this.logger.warn(`mlflow: run ${runId}: the server rejected "${label}" (${reason}); the run is complete in ${this.options.localRoot} and marked unsynced.`);
      run.warned = true;
      return;
    }
    if (!this.serverDown) {
      this.serverDown = true;
      this.downSince = this.now();
      this.logger.warn(`mlflow: ${this.options.remoteUri ?? 'server'} failed during "${label}" (${reason}). Training continues; every number is kept in ${this.options.localRoot} and affected runs are marked unsynced. Upload them later with \`milkit mlflow sync\`.`);
    }
  }

  /** Writes `milkit.sync.state` (and `.error`) if they changed; the values are decided when the write runs. */
  private refreshState(runId: string, run: MirroredRun): Promise<void> {
    run.stateChain = run.stateChain.then(async () => {
      const state = run.ended && run.pending === 0 && run.failure === undefined && run.incomplete === undefined && run.remoteId ? 'synced' : 'unsynced';
      if (state === run.writtenState && run.failure === run.writtenFailure) return;
      const failure = run.failure;
      await this.local.setTags(runId, { [SYNC_TAGS.state]: state, ...(failure !== undefined ? { [SYNC_TAGS.error]: failure.slice(0, 1000) } : {}) });
      run.writtenState = state;
      run.writtenFailure = failure;
    }).catch((error: unknown) => {
      this.logger.warn(`mlflow: could not record the sync state of run ${runId}: ${error instanceof Error ? error.message : String(error)}`);
    });
    return run.stateChain;
  }

  /** A copy of `source` with known secret values scrubbed, when it (or a file in it) contains one. */
  private async scrubbedCopy(source: string): Promise<{ source: string; cleanup: () => Promise<void> }> {
    const none = { source, cleanup: async () => undefined };
    if (this.secrets.length === 0) return none;
    const isDir = (await stat(source)).isDirectory();
    const files = isDir ? await listFiles(source) : [''];
    const scrubbed = new Map<string, string>();
    for (const rel of files) {
      const file = rel ? path.join(source, rel) : source;
      if ((await stat(file)).size > SCRUB_MAX_BYTES) continue;
      const bytes = await readFile(file);
      if (!looksLikeText(bytes)) continue;
      const text = bytes.toString('utf8');
      const clean = scrubSecrets(text, this.secrets);
      if (clean !== text) scrubbed.set(rel, clean);
    }
    if (scrubbed.size === 0) return none;
    this.logger.warn(`artifact ${source}: secret values replaced by [REDACTED] before logging.`);
    const staging = await mkdtemp(path.join(os.tmpdir(), 'milkit-artifact-'));
    const target = path.join(staging, path.basename(source));
    if (!isDir) {
      await writeFile(target, scrubbed.get('') ?? '');
    } else {
      for (const rel of files) {
        const out = path.join(target, rel);
        await mkdir(path.dirname(out), { recursive: true });
        await writeFile(out, scrubbed.get(rel) ?? (await readFile(path.join(source, rel))));
      }
    }
    return { source: target, cleanup: () => rm(staging, { recursive: true, force: true }) };
  }
}

/**
 * Resolves with SIGINT/SIGTERM when one arrives while it is armed. Armed only when a command has installed its own
 * signal handlers (src/core/engine/lifecycle.ts): listening otherwise would replace Node's default of exiting.
 */
function signalDuringFlush(): { signal: Promise<'SIGINT' | 'SIGTERM'>; dispose: () => void } {
  if (process.listenerCount('SIGINT') === 0 && process.listenerCount('SIGTERM') === 0) return { signal: new Promise(() => undefined), dispose: () => undefined };
  let onInt: () => void = () => undefined;
  let onTerm: () => void = () => undefined;
  const signal = new Promise<'SIGINT' | 'SIGTERM'>((resolve) => {
    onInt = () => resolve('SIGINT');
    onTerm = () => resolve('SIGTERM');
  });
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);
  return {
    signal,
    dispose: () => {
      process.removeListener('SIGINT', onInt);
      process.removeListener('SIGTERM', onTerm);
    },
  };
}

/** A failure that concerns one run only (its parent never reached the server, its artifacts cannot be found). */
class RunMirrorError extends Error {}

/** Files under `dir`, relative, `/`-separated, sorted. */
async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(path.join(dir, entry.name), rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out.sort();
}
