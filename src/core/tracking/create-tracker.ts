// Builds the tracker of a run from the tracking: section and the environment: the local record always, plus a
// mirror to a server when the URI is http(s). Both are tracker plugins named by config (tracking.local,
// tracking.remote; defaults mlflow-file and mlflow-rest), so core names no plugin.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { TrackingError } from '../errors.js';
import type { FileSystem } from '../io/file-system.js';
import { silentLogger, type Logger } from '../logger.js';
import type { Registry } from '../../registry/registry.js';
import type { MetricPoint, RunStatus, StartRunSpec, Tracker } from '../../registry/contracts/tracker.js';
import { FileStoreReader } from './file-store-reader.js';
import { MirroredTracker } from './mirror.js';
import { secretValuesFromEnv } from './redact.js';
import type { TrackingSection } from './schema.js';
import { stripUrlCredentials } from './system-tags.js';

export type TrackingTarget =
  | { readonly kind: 'local'; readonly root: string }
  | { readonly kind: 'server'; readonly uri: string; readonly root: string };

/**
 * Where runs go for a tracking URI: http(s) → a server (with ./mlruns under `cwd` as the local record);
 * a path or `file:` URI → that local store; nothing → ./mlruns. Database URIs are refused with a fix.
 */
export function resolveTrackingTarget(uri: string | undefined, cwd: string): TrackingTarget {
  const defaultRoot = path.resolve(cwd, 'mlruns');
  const value = uri?.trim();
  if (!value) return { kind: 'local', root: defaultRoot };
  if (/^https?:\/\//i.test(value)) return { kind: 'server', uri: value.replace(/\/+$/, ''), root: defaultRoot };
  if (/^file:/i.test(value)) {
    const root = value.startsWith('file://') ? fileURLToPath(value) : path.resolve(cwd, value.slice('file:'.length));
    return { kind: 'local', root };
  }
  // A scheme (but not a Windows drive letter) that is neither http(s) nor file.
  if (/^[a-z][a-z0-9+.-]+:/i.test(value)) {
    throw new TrackingError('unsupported-tracking-uri', `tracking URI "${stripUrlCredentials(value)}" is not supported: milkit writes to an MLflow server over http(s) or to a local file store.`, {
      where: { key: 'tracking.uri' },
      hint: 'For a database store run `mlflow server --backend-store-uri <that URI>` and set tracking.uri (or MLFLOW_TRACKING_URI) to http://host:5000; or give a folder such as ./mlruns.',
    });
  }
  return { kind: 'local', root: path.resolve(cwd, value) };
}

/** The local store a command reads: `override`, else a path-like MLFLOW_TRACKING_URI, else ./mlruns under `cwd`. */
export function localStoreRoot(cwd: string, env: Readonly<Record<string, string | undefined>>, override?: string): string {
  if (override) return path.resolve(cwd, override);
  const fromEnv = env.MLFLOW_TRACKING_URI;
  if (fromEnv && !/^https?:\/\//i.test(fromEnv)) return resolveTrackingTarget(fromEnv, cwd).root;
  return path.resolve(cwd, 'mlruns');
}

/** REST client settings that come from MLflow's environment variables (credentials, TLS). */
export function restEnvOptions(env: Readonly<Record<string, string | undefined>>): {
  token?: string;
  username?: string;
  password?: string;
  insecureTls?: boolean;
  caFile?: string;
  clientCertFile?: string;
} {
  const truthy = (v: string | undefined): boolean => v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());
  return {
    ...(env.MLFLOW_TRACKING_TOKEN ? { token: env.MLFLOW_TRACKING_TOKEN } : {}),
    ...(env.MLFLOW_TRACKING_USERNAME ? { username: env.MLFLOW_TRACKING_USERNAME } : {}),
    ...(env.MLFLOW_TRACKING_PASSWORD ? { password: env.MLFLOW_TRACKING_PASSWORD } : {}),
    ...(truthy(env.MLFLOW_TRACKING_INSECURE_TLS) ? { insecureTls: true } : {}),
    ...(env.MLFLOW_TRACKING_SERVER_CERT_PATH ? { caFile: env.MLFLOW_TRACKING_SERVER_CERT_PATH } : {}),
    ...(env.MLFLOW_TRACKING_CLIENT_CERT_PATH ? { clientCertFile: env.MLFLOW_TRACKING_CLIENT_CERT_PATH } : {}),
  };
}

/** Tracker of `tracking.enabled: false`: accepts everything, stores nothing. */
class DisabledTracker implements Tracker {
  async startRun(_spec: StartRunSpec): Promise<string> {
    return randomUUID().replace(/-/g, '');
  }
  async logParams(_runId: string, _params: Readonly<Record<string, string>>): Promise<void> {}
  async logMetrics(_runId: string, _metrics: readonly MetricPoint[]): Promise<void> {}
  async setTags(_runId: string, _tags: Readonly<Record<string, string>>): Promise<void> {}
  async logArtifact(_runId: string, _localPath: string, _artifactPath?: string): Promise<void> {}
  async endRun(_runId: string, _status: Exclude<RunStatus, 'RUNNING'>): Promise<void> {}
  async flush(): Promise<void> {}
}

export interface CreateTrackerContext {
  readonly registry: Registry;
  readonly logger: Logger;
  readonly cwd: string;
  readonly env: Record<string, string | undefined>;
  /** The file-system seam the local store writes through (default: the real one). */
  readonly fs?: FileSystem;
}

/**
 * Builds the tracker for a run: always the local record (tracking.local, in tracking.uri if it is a path/file:
 * URI, else ./mlruns under cwd); when the URI (tracking.uri or env MLFLOW_TRACKING_URI) is http(s), a mirror (tracking.remote)
 * that never blocks or fails training (unreachable → logged once, run marked unsynced, `milkit mlflow sync` later).
 */
export async function createTracker(section: TrackingSection, ctx: CreateTrackerContext): Promise<Tracker> {
  if (!section.enabled) return new DisabledTracker();
  const target = resolveTrackingTarget(section.uri ?? ctx.env.MLFLOW_TRACKING_URI, ctx.cwd);
  const trackerCtx = { logger: ctx.logger, cwd: ctx.cwd, ...(ctx.fs ? { fs: ctx.fs } : {}) };
  // The plugins are config defaults (tracking.local / tracking.remote); core only fills in where they write.
  const local = ctx.registry.create(await ctx.registry.resolve('tracker', { ...section.local, root: target.root }, { key: 'tracking.local' }), trackerCtx);
  let remote: Tracker | undefined;
  if (target.kind === 'server') {
    const server = section.server;
    remote = ctx.registry.create(
      await ctx.registry.resolve('tracker', {
        ...section.remote,
        uri: target.uri,
        timeoutMs: server.timeoutMs,
        retries: server.retries,
        backoffMs: server.backoffMs,
        backoffMaxMs: server.backoffMaxMs,
        ...restEnvOptions(ctx.env),
      }, { key: 'tracking.remote' }),
      trackerCtx,
    );
  }
  const reader = new FileStoreReader(target.root, silentLogger);
  const runDirs = new Map<string, string>();
  const runDir = async (runId: string): Promise<string | undefined> => {
    const known = runDirs.get(runId);
    if (known) return known;
    const run = await reader.findRun(runId, { metrics: false });
    if (run) runDirs.set(runId, run.dir);
    return run?.dir;
  };
  return new MirroredTracker({
    local,
    ...(remote ? { remote, remoteUri: stripUrlCredentials(target.kind === 'server' ? target.uri : '') } : {}),
    localRoot: target.root,
    logger: ctx.logger,
    secrets: secretValuesFromEnv(ctx.env),
    localArtifactDir: async (runId) => {
      const dir = await runDir(runId);
      return dir ? path.join(dir, 'artifacts') : undefined;
    },
    localRunTags: async (runId) => (await reader.findRun(runId, { metrics: false }))?.tags,
    reconnectAfterMs: section.server.reconnectAfterMs,
    flushTimeoutMs: section.server.flushTimeoutMs,
  });
}
