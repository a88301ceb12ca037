// MLflow REST client (axios) for the endpoints milkit needs (docs/methods/mlflow.md#rest-api), with the behaviour the
// recorded server demands (docs/methods/mlflow.md#server-behaviour): JSON content type always, NaN/∞ as strings, int64 read
// from numbers or strings, get-history always with max_results, log-batch chunked to the server's limits,
// artifacts through the `mlflow-artifacts` proxy. Retries: network errors, 429 (Retry-After) and 5xx only.
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import { z } from 'zod';
import { TrackingError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { Rng } from '../runtime/random.js';
import type { MetricPoint } from '../../registry/contracts/tracker.js';
import { chunkLogBatch, metricValueFromJson, metricValueToJson, type KeyValue, type MlflowRunInfo, type MlflowRunStatus } from './limits.js';
import {
  isServerUnavailable,
  MlflowArtifactUriError,
  mlflowApiError,
  MlflowBadResponseError,
  MlflowHttpError,
  MlflowResourceAlreadyExistsError,
  MlflowResourceDoesNotExistError,
  MlflowUnreachableError,
} from './rest-errors.js';

export interface MlflowRestOptions {
  /** `http(s)://host[:port][/prefix]` */
  readonly uri: string;
  /** Bearer token (MLFLOW_TRACKING_TOKEN). */
  readonly token?: string;
  /** Basic auth (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD). */
  readonly username?: string;
  readonly password?: string;
  /** Skip TLS certificate checks (MLFLOW_TRACKING_INSECURE_TLS=true). */
  readonly insecureTls?: boolean;
  /** CA bundle that signs the server's certificate (MLFLOW_TRACKING_SERVER_CERT_PATH). */
  readonly caFile?: string;
  /** Client certificate and key for mutual TLS (MLFLOW_TRACKING_CLIENT_CERT_PATH, PEM with the key or a pair). */
  readonly clientCertFile?: string;
  readonly clientKeyFile?: string;
  /** Per-request timeout. */
  readonly timeoutMs?: number;
  /** Retries after the first attempt (network errors, 429, 5xx). */
  readonly retries?: number;
  /** Backoff of retry n is in [d/2, d], d = min(backoffMaxMs, backoffBaseMs·2^n). */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** Upper bound on a server's Retry-After. */
  readonly retryAfterMaxMs?: number;
  readonly logger?: Logger;
  /** Jitter source in [0, 1) (tests pin it). */
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

export const REST_DEFAULTS = { timeoutMs: 15_000, retries: 4, backoffBaseMs: 500, backoffMaxMs: 15_000, retryAfterMaxMs: 120_000 } as const;

/** The Python client's page size for get-history; without max_results MLflow ≥ 3.4 returns nothing (fixture 58). */
export const HISTORY_PAGE_SIZE = 25_000;

export interface RemoteExperiment {
  readonly experimentId: string;
  readonly name: string;
  readonly artifactLocation: string;
  readonly lifecycleStage: string;
  readonly tags: Record<string, string>;
}

export type RemoteRunInfo = MlflowRunInfo;

export interface RemoteRun {
  readonly info: RemoteRunInfo;
  /** Latest value per key (MLflow's runs/get and runs/search give only that). */
  readonly metrics: Record<string, MetricPoint>;
  readonly params: Record<string, string>;
  readonly tags: Record<string, string>;
}

export interface RemoteArtifact {
  readonly path: string;
  readonly isDir: boolean;
  readonly size: number | undefined;
}

export interface SearchRunsRequest {
  readonly experimentIds: readonly string[];
  readonly filter?: string;
  readonly runViewType?: 'ACTIVE_ONLY' | 'DELETED_ONLY' | 'ALL';
  readonly maxResults?: number;
  readonly orderBy?: readonly string[];
  readonly pageToken?: string;
}

// ---- response shapes (loose: MLflow adds fields between versions) ----
const Int64 = z.union([z.number(), z.string().regex(/^-?\d+$/).transform(Number)]);
const KeyValueJson = z.looseObject({ key: z.string(), value: z.string().optional() });
const ExperimentJson = z.looseObject({
  experiment_id: z.string(),
  name: z.string(),
  artifact_location: z.string().optional(),
  lifecycle_stage: z.string().optional(),
  tags: z.array(KeyValueJson).optional(),
});
const RunInfoJson = z.looseObject({
  run_id: z.string().optional(),
  run_uuid: z.string().optional(),
  experiment_id: z.string(),
  run_name: z.string().optional(),
  user_id: z.string().optional(),
  status: z.string().optional(),
  start_time: Int64.optional(),
  end_time: Int64.optional(),
  artifact_uri: z.string().optional(),
  lifecycle_stage: z.string().optional(),
});
const MetricJson = z.looseObject({ key: z.string(), value: z.union([z.number(), z.string()]), timestamp: Int64.optional(), step: Int64.optional() });
const RunJson = z.looseObject({
  info: RunInfoJson,
  data: z.looseObject({ metrics: z.array(MetricJson).optional(), params: z.array(KeyValueJson).optional(), tags: z.array(KeyValueJson).optional() }).optional(),
});
const ArtifactJson = z.looseObject({ path: z.string(), is_dir: z.boolean().optional(), file_size: Int64.optional() });
const Empty = z.looseObject({});

const STATUSES = new Set(['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED']);

function toExperiment(json: z.output<typeof ExperimentJson>): RemoteExperiment {
  return {
    experimentId: json.experiment_id,
    name: json.name,
    artifactLocation: json.artifact_location ?? '',
    lifecycleStage: json.lifecycle_stage ?? 'active',
    tags: Object.fromEntries((json.tags ?? []).map((t) => [t.key, t.value ?? ''])),
  };
}

function toRunInfo(json: z.output<typeof RunInfoJson>): RemoteRunInfo {
  return {
    runId: json.run_id ?? json.run_uuid ?? '',
    experimentId: json.experiment_id,
    runName: json.run_name ?? '',
    userId: json.user_id ?? '',
    status: (json.status && STATUSES.has(json.status) ? json.status : 'RUNNING') as MlflowRunStatus,
    startTime: json.start_time,
    endTime: json.end_time,
    artifactUri: json.artifact_uri ?? '',
    lifecycleStage: json.lifecycle_stage ?? 'active',
  };
}

function toMetric(json: z.output<typeof MetricJson>): MetricPoint {
  return { key: json.key, value: metricValueFromJson(json.value), timestamp: json.timestamp ?? 0, step: json.step ?? 0 };
}

function toRun(json: z.output<typeof RunJson>): RemoteRun {
  const metrics: Record<string, MetricPoint> = {};
  for (const m of json.data?.metrics ?? []) metrics[m.key] = toMetric(m);
  return {
    info: toRunInfo(json.info),
    metrics,
    params: Object.fromEntries((json.data?.params ?? []).map((p) => [p.key, p.value ?? ''])),
    tags: Object.fromEntries((json.data?.tags ?? []).map((t) => [t.key, t.value ?? ''])),
  };
}

const toKeyValues = (values: Readonly<Record<string, string>>): KeyValue[] => Object.entries(values).map(([key, value]) => ({ key, value }));

const RETRYABLE_NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_NETWORK', 'ERR_SOCKET_CONNECTION_TIMEOUT', 'EPROTO']);

const TLS_ERROR_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
]);

/** Milliseconds a Retry-After header asks for (seconds or an HTTP date); undefined when absent or unreadable. */
export function parseRetryAfter(header: unknown, now = Date.now()): number | undefined {
  if (typeof header !== 'string' || header.trim() === '') return undefined;
  const seconds = Number(header.trim());
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

interface CallOptions {
  readonly query?: Readonly<Record<string, string | number | undefined>>;
  readonly body?: unknown;
  readonly raw?: Buffer;
  readonly rawContentType?: string;
  /** Override of the retry count (0 for calls whose caller retries a larger step itself). */
  readonly retries?: number;
  readonly binary?: boolean;
}

/** Thin typed client of MLflow's REST API. Every method either returns parsed data or throws a typed error. */
export class MlflowRestClient {
  readonly uri: string;
  private readonly http: AxiosInstance;
  private readonly options: MlflowRestOptions;
  private readonly logger: Logger;
  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  /**
   * Set while a `withRetries` operation runs: its requests make one attempt each, because the operation retries as a
   * whole. Nested loops would multiply the documented budget (5 × 5 = 25 requests for one lookup on a slow server).
   */
  private readonly retriedOutside = new AsyncLocalStorage<true>();
  /** Aborted by `abort()`: in-flight requests are cancelled and no request or retry starts after it. */
  private readonly aborter = new AbortController();

  constructor(options: MlflowRestOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.uri);
    } catch (cause) {
      throw new TrackingError('invalid-tracking-uri', `tracking URI "${options.uri}" is not a URL.`, { hint: 'Use http(s)://host:port of an `mlflow server`.', cause });
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new TrackingError('invalid-tracking-uri', `tracking URI "${options.uri}" is not http(s).`, { hint: 'The REST client talks to `mlflow server`; local paths use the file store.' });
    }
    // Credentials in the URI become basic auth (and never appear in logs or tags).
    const username = options.username ?? (parsed.username ? decodeURIComponent(parsed.username) : undefined);
    const password = options.password ?? (parsed.password ? decodeURIComponent(parsed.password) : undefined);
    parsed.username = '';
    parsed.password = '';
    this.uri = parsed.href.replace(/\/+$/, '');
    this.options = { ...options, ...(username !== undefined ? { username } : {}), ...(password !== undefined ? { password } : {}) };
    this.logger = options.logger ?? silentLogger;
    const rng = new Rng(`mlflow-retry-jitter/${process.pid}`);
    this.random = options.random ?? (() => rng.next());
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'milkit-mlflow-client' };
    if (options.token) headers.Authorization = `Bearer ${options.token}`;
    else if (username !== undefined) headers.Authorization = `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}`;
    const tls: https.AgentOptions = { keepAlive: true };
    if (options.insecureTls) tls.rejectUnauthorized = false;
    if (options.caFile) tls.ca = readFileSync(options.caFile);
    if (options.clientCertFile) tls.cert = readFileSync(options.clientCertFile);
    if (options.clientKeyFile) tls.key = readFileSync(options.clientKeyFile);
    else if (options.clientCertFile) tls.key = readFileSync(options.clientCertFile);
    this.http = axios.create({
      baseURL: this.uri,
      timeout: options.timeoutMs ?? REST_DEFAULTS.timeoutMs,
      headers,
      httpAgent: new http.Agent({ keepAlive: true }),
      httpsAgent: new https.Agent(tls),
      validateStatus: () => true,
      transformResponse: [(data: unknown) => data],
      transformRequest: [(data: unknown) => data],
      maxBodyLength: Infinity,
      maxContentLength: Infinity,
      maxRedirects: 0,
    });
  }

  // ---------------- transport ----------------

  private backoffMs(attempt: number): number {
    const base = this.options.backoffBaseMs ?? REST_DEFAULTS.backoffBaseMs;
    const cap = this.options.backoffMaxMs ?? REST_DEFAULTS.backoffMaxMs;
    const ceiling = Math.min(cap, base * 2 ** attempt);
    return ceiling / 2 + this.random() * (ceiling / 2);
  }

  /**
   * Runs `step` with this client's retry policy: retried while the failure is the server's (down, 429, 5xx). The
   * requests inside `step` are not retried on their own, so one operation makes at most `retries + 1` attempts.
   */
  async withRetries<T>(label: string, step: () => Promise<T>, retries = this.options.retries ?? REST_DEFAULTS.retries): Promise<T> {
    if (this.retriedOutside.getStore()) return step();
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.retriedOutside.run(true, step);
      } catch (error) {
        if (attempt >= retries || !isServerUnavailable(error) || this.aborted) throw error;
        const wait = this.backoffMs(attempt);
        this.logger.debug(`mlflow: ${label} failed (${error instanceof Error ? error.message : String(error)}); retry ${attempt + 1}/${retries} in ${Math.round(wait)} ms`);
        await this.pause(wait);
      }
    }
  }

  /** True once `abort()` was called. */
  get aborted(): boolean {
    return this.aborter.signal.aborted;
  }

  /**
   * Gives up on the server for the rest of this process: cancels in-flight requests and makes every later call fail
   * at once (MlflowUnreachableError). The mirror calls it when its flush budget is spent, so no request outlives it.
   */
  abort(): void {
    this.aborter.abort();
  }

  private abortedError(label: string, attempts: number): MlflowUnreachableError {
    return new MlflowUnreachableError(label, attempts, 'the client gave up (tracking.server.flushTimeoutMs spent)', undefined);
  }

  /** Sleeps `ms`, or less when the client is aborted meanwhile. */
  private async pause(ms: number): Promise<void> {
    if (this.aborted) return;
    const signal = this.aborter.signal;
    let onAbort: (() => void) | undefined;
    await Promise.race([
      this.sleep(ms),
      new Promise<void>((resolve) => {
        onAbort = resolve;
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }

  private async call(method: 'GET' | 'POST' | 'PUT', endpoint: string, options: CallOptions = {}): Promise<AxiosResponse<string | Buffer>> {
    const retries = this.retriedOutside.getStore() ? 0 : options.retries ?? this.options.retries ?? REST_DEFAULTS.retries;
    const label = `${method} ${endpoint}`;
    let lastError: unknown;
    for (let attempt = 0; ; attempt += 1) {
      if (this.aborted) throw this.abortedError(label, attempt);
      let response: AxiosResponse<string | Buffer> | undefined;
      try {
        response = await this.http.request<string | Buffer>({
          method,
          url: endpoint,
          signal: this.aborter.signal,
          ...(options.query ? { params: Object.fromEntries(Object.entries(options.query).filter(([, v]) => v !== undefined)) } : {}),
          paramsSerializer: { serialize: (params: Record<string, string | number>) => new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])).toString() },
          ...(options.raw
            ? { data: options.raw, headers: { 'Content-Type': options.rawContentType ?? 'application/octet-stream' } }
            : options.body !== undefined
              ? { data: JSON.stringify(options.body), headers: { 'Content-Type': 'application/json' } }
              : {}),
          responseType: options.binary ? 'arraybuffer' : 'text',
        });
      } catch (error) {
        const code = (error as { code?: string }).code ?? '';
        if (this.aborted) throw this.abortedError(label, attempt + 1);
        // A certificate problem does not go away by retrying.
        if (TLS_ERROR_CODES.has(code) || /certificate|self[- ]signed/i.test(error instanceof Error ? error.message : '')) {
          throw new TrackingError('mlflow-tls-error', `${label}: TLS check of ${this.uri} failed (${code || (error instanceof Error ? error.message : String(error))}).`, {
            hint: 'Point MLFLOW_TRACKING_SERVER_CERT_PATH at the CA bundle that signed the server certificate, or (trusted networks only) set MLFLOW_TRACKING_INSECURE_TLS=true.',
            cause: error,
          });
        }
        const reason = code === 'ECONNABORTED' || code === 'ETIMEDOUT' ? `no answer within ${this.options.timeoutMs ?? REST_DEFAULTS.timeoutMs} ms` : code || (error instanceof Error ? error.message : String(error));
        if (!RETRYABLE_NETWORK_CODES.has(code) && !axios.isAxiosError(error)) throw error;
        lastError = new MlflowUnreachableError(label, attempt + 1, reason, error);
        if (attempt >= retries) throw lastError;
        const wait = this.backoffMs(attempt);
        this.logger.debug(`mlflow: ${label}: ${reason}; retry ${attempt + 1}/${retries} in ${Math.round(wait)} ms`);
        await this.pause(wait);
        continue;
      }
      if (response.status >= 200 && response.status < 300) return response;
      const failure = this.errorFor(label, response);
      if ((response.status === 429 || response.status >= 500) && attempt < retries) {
        const retryAfter = response.status === 429 ? parseRetryAfter(response.headers['retry-after']) : undefined;
        const wait = retryAfter !== undefined ? Math.min(retryAfter, this.options.retryAfterMaxMs ?? REST_DEFAULTS.retryAfterMaxMs) : this.backoffMs(attempt);
        this.logger.debug(`mlflow: ${label} → ${response.status}; retry ${attempt + 1}/${retries} in ${Math.round(wait)} ms`);
        await this.pause(wait);
        continue;
      }
      throw failure;
    }
  }

  private errorFor(label: string, response: AxiosResponse<string | Buffer>): Error {
    const contentType = String(response.headers['content-type'] ?? '');
    const body = Buffer.isBuffer(response.data) ? response.data.toString('utf8') : String(response.data ?? '');
    if (contentType.includes('json')) {
      try {
        const parsed = JSON.parse(body) as { error_code?: unknown; message?: unknown };
        if (typeof parsed.error_code === 'string') return mlflowApiError(parsed.error_code, typeof parsed.message === 'string' ? parsed.message : '', { endpoint: label, status: response.status });
      } catch {
        // Not MLflow's JSON error: reported as an HTTP error below.
      }
    }
    return new MlflowHttpError({ endpoint: label, status: response.status, contentType, body });
  }

  private async json<S extends z.ZodType>(schema: S, method: 'GET' | 'POST', endpoint: string, options: CallOptions = {}): Promise<z.output<S>> {
    const response = await this.call(method, endpoint, options);
    const text = Buffer.isBuffer(response.data) ? response.data.toString('utf8') : String(response.data ?? '');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new MlflowBadResponseError(`${method} ${endpoint}`, response.status, `body is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
    }
    const result = schema.safeParse(parsed);
    if (!result.success) throw new MlflowBadResponseError(`${method} ${endpoint}`, response.status, `unexpected JSON shape: ${result.error.issues[0]?.message ?? ''} at ${result.error.issues[0]?.path.join('.') ?? ''}`);
    return result.data as z.output<S>;
  }

  // ---------------- experiments ----------------

  /** The experiment called `name`, or undefined when there is none. */
  async getExperimentByName(name: string): Promise<RemoteExperiment | undefined> {
    try {
      const out = await this.json(z.looseObject({ experiment: ExperimentJson }), 'GET', '/api/2.0/mlflow/experiments/get-by-name', { query: { experiment_name: name } });
      return toExperiment(out.experiment);
    } catch (error) {
      if (error instanceof MlflowResourceDoesNotExistError) return undefined;
      throw error;
    }
  }

  async getExperiment(experimentId: string): Promise<RemoteExperiment> {
    const out = await this.json(z.looseObject({ experiment: ExperimentJson }), 'GET', '/api/2.0/mlflow/experiments/get', { query: { experiment_id: experimentId } });
    return toExperiment(out.experiment);
  }

  /** Creates an experiment; returns its id (a string). */
  async createExperiment(name: string, options: { artifactLocation?: string; tags?: Readonly<Record<string, string>> } = {}): Promise<string> {
    const body = {
      name,
      ...(options.artifactLocation !== undefined ? { artifact_location: options.artifactLocation } : {}),
      ...(options.tags && Object.keys(options.tags).length > 0 ? { tags: toKeyValues(options.tags) } : {}),
    };
    const out = await this.json(z.looseObject({ experiment_id: z.string() }), 'POST', '/api/2.0/mlflow/experiments/create', { body });
    return out.experiment_id;
  }

  /** Id of the active experiment `name`, creating it when absent (a concurrent creator wins gracefully). */
  async getOrCreateExperiment(name: string, options: { artifactLocation?: string; tags?: Readonly<Record<string, string>> } = {}): Promise<string> {
    const existing = await this.getExperimentByName(name);
    if (existing) {
      if (existing.lifecycleStage !== 'active') {
        throw new TrackingError('experiment-deleted', `experiment "${name}" on ${this.uri} is deleted.`, { hint: 'Restore it in the MLflow UI (or `mlflow experiments restore`), or use another tracking.experimentName.' });
      }
      return existing.experimentId;
    }
    try {
      return await this.createExperiment(name, options);
    } catch (error) {
      if (!(error instanceof MlflowResourceAlreadyExistsError)) throw error;
      const raced = await this.getExperimentByName(name);
      if (!raced) throw error;
      return raced.experimentId;
    }
  }

  async searchExperiments(request: { maxResults?: number; filter?: string; orderBy?: readonly string[]; pageToken?: string } = {}): Promise<{ experiments: RemoteExperiment[]; nextPageToken?: string }> {
    const body = {
      ...(request.maxResults !== undefined ? { max_results: request.maxResults } : {}),
      ...(request.filter !== undefined ? { filter: request.filter } : {}),
      ...(request.orderBy ? { order_by: [...request.orderBy] } : {}),
      ...(request.pageToken !== undefined ? { page_token: request.pageToken } : {}),
    };
    const out = await this.json(z.looseObject({ experiments: z.array(ExperimentJson).optional(), next_page_token: z.string().optional() }), 'POST', '/api/2.0/mlflow/experiments/search', { body });
    return { experiments: (out.experiments ?? []).map(toExperiment), ...(out.next_page_token ? { nextPageToken: out.next_page_token } : {}) };
  }

  async deleteExperiment(experimentId: string): Promise<void> {
    await this.json(Empty, 'POST', '/api/2.0/mlflow/experiments/delete', { body: { experiment_id: experimentId } });
  }

  // ---------------- runs ----------------

  /**
   * Creates a run. Not retried here (a retry after a lost answer would create a second run): callers that
   * need retries look the run up by its key first (see MlflowRestTracker).
   */
  async createRun(request: { experimentId: string; runName?: string; startTime?: number; tags?: Readonly<Record<string, string>>; userId?: string }, options: { retries?: number } = {}): Promise<RemoteRun> {
    const body = {
      experiment_id: request.experimentId,
      ...(request.userId !== undefined ? { user_id: request.userId } : {}),
      ...(request.startTime !== undefined ? { start_time: request.startTime } : {}),
      ...(request.runName !== undefined ? { run_name: request.runName } : {}),
      ...(request.tags && Object.keys(request.tags).length > 0 ? { tags: toKeyValues(request.tags) } : {}),
    };
    const out = await this.json(z.looseObject({ run: RunJson }), 'POST', '/api/2.0/mlflow/runs/create', { body, retries: options.retries ?? 0 });
    return toRun(out.run);
  }

  async updateRun(runId: string, update: { status?: MlflowRunStatus; endTime?: number; runName?: string }): Promise<RemoteRunInfo> {
    const body = {
      run_id: runId,
      ...(update.status !== undefined ? { status: update.status } : {}),
      ...(update.endTime !== undefined ? { end_time: update.endTime } : {}),
      ...(update.runName !== undefined ? { run_name: update.runName } : {}),
    };
    const out = await this.json(z.looseObject({ run_info: RunInfoJson }), 'POST', '/api/2.0/mlflow/runs/update', { body });
    const info = toRunInfo(out.run_info);
    // MLflow ignores a status it does not know and answers 200 (fixture 49): never let that pass silently.
    if (update.status !== undefined && out.run_info.status !== update.status) {
      throw new MlflowBadResponseError('POST /api/2.0/mlflow/runs/update', 200, `asked for status ${update.status}, the run is still ${out.run_info.status ?? 'unknown'}`);
    }
    return info;
  }

  /** The run, or undefined when the server does not know it. */
  async getRun(runId: string): Promise<RemoteRun | undefined> {
    try {
      const out = await this.json(z.looseObject({ run: RunJson }), 'GET', '/api/2.0/mlflow/runs/get', { query: { run_id: runId } });
      return toRun(out.run);
    } catch (error) {
      if (error instanceof MlflowResourceDoesNotExistError) return undefined;
      throw error;
    }
  }

  async deleteRun(runId: string): Promise<void> {
    await this.json(Empty, 'POST', '/api/2.0/mlflow/runs/delete', { body: { run_id: runId } });
  }

  async restoreRun(runId: string): Promise<void> {
    await this.json(Empty, 'POST', '/api/2.0/mlflow/runs/restore', { body: { run_id: runId } });
  }

  /** One page of runs/search. An empty result is `{}` on the wire (fixture 55). */
  async searchRuns(request: SearchRunsRequest): Promise<{ runs: RemoteRun[]; nextPageToken?: string }> {
    const body = {
      experiment_ids: [...request.experimentIds],
      ...(request.filter !== undefined ? { filter: request.filter } : {}),
      ...(request.runViewType !== undefined ? { run_view_type: request.runViewType } : {}),
      ...(request.maxResults !== undefined ? { max_results: request.maxResults } : {}),
      ...(request.orderBy ? { order_by: [...request.orderBy] } : {}),
      ...(request.pageToken !== undefined ? { page_token: request.pageToken } : {}),
    };
    const out = await this.json(z.looseObject({ runs: z.array(RunJson).optional(), next_page_token: z.string().optional() }), 'POST', '/api/2.0/mlflow/runs/search', { body });
    return { runs: (out.runs ?? []).map(toRun), ...(out.next_page_token ? { nextPageToken: out.next_page_token } : {}) };
  }

  /** Every run matching the request, following page tokens. */
  async searchAllRuns(request: Omit<SearchRunsRequest, 'pageToken'>): Promise<RemoteRun[]> {
    const runs: RemoteRun[] = [];
    let pageToken: string | undefined;
    do {
      const page = await this.searchRuns({ maxResults: 1000, ...request, ...(pageToken ? { pageToken } : {}) });
      runs.push(...page.runs);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return runs;
  }

  // ---------------- logging ----------------

  /** Logs everything through runs/log-batch, split into calls within the server's limits. */
  async logBatch(runId: string, batch: { metrics?: readonly MetricPoint[]; params?: Readonly<Record<string, string>>; tags?: Readonly<Record<string, string>> }): Promise<number> {
    const chunks = chunkLogBatch({ metrics: batch.metrics ?? [], params: toKeyValues(batch.params ?? {}), tags: toKeyValues(batch.tags ?? {}) });
    for (const chunk of chunks) {
      const body = {
        run_id: runId,
        ...(chunk.metrics.length > 0 ? { metrics: chunk.metrics.map((m) => ({ key: m.key, value: metricValueToJson(m.value), timestamp: m.timestamp, step: m.step })) } : {}),
        ...(chunk.params.length > 0 ? { params: chunk.params } : {}),
        ...(chunk.tags.length > 0 ? { tags: chunk.tags } : {}),
      };
      await this.json(Empty, 'POST', '/api/2.0/mlflow/runs/log-batch', { body });
    }
    return chunks.length;
  }

  async logMetric(runId: string, point: { key: string; value: number; timestamp: number; step?: number }): Promise<void> {
    await this.json(Empty, 'POST', '/api/2.0/mlflow/runs/log-metric', {
      body: { run_id: runId, key: point.key, value: metricValueToJson(point.value), timestamp: point.timestamp, ...(point.step !== undefined ? { step: point.step } : {}) },
    });
  }

  async logParam(runId: string, key: string, value: string): Promise<void> {
    await this.json(Empty, 'POST', '/api/2.0/mlflow/runs/log-parameter', { body: { run_id: runId, key, value } });
  }

  async setTag(runId: string, key: string, value: string): Promise<void> {
    await this.json(Empty, 'POST', '/api/2.0/mlflow/runs/set-tag', { body: { run_id: runId, key, value } });
  }

  async deleteTag(runId: string, key: string): Promise<void> {
    await this.json(Empty, 'POST', '/api/2.0/mlflow/runs/delete-tag', { body: { run_id: runId, key } });
  }

  /** Full history of one metric: always sends max_results and follows next_page_token (fixtures 58-61). */
  async getMetricHistory(runId: string, key: string, options: { pageSize?: number } = {}): Promise<MetricPoint[]> {
    const points: MetricPoint[] = [];
    let pageToken: string | undefined;
    const seenTokens = new Set<string>();
    for (;;) {
      const out = await this.json(z.looseObject({ metrics: z.array(MetricJson).optional(), next_page_token: z.string().optional() }), 'GET', '/api/2.0/mlflow/metrics/get-history', {
        query: { run_id: runId, metric_key: key, max_results: options.pageSize ?? HISTORY_PAGE_SIZE, page_token: pageToken },
      });
      const page = (out.metrics ?? []).map(toMetric);
      points.push(...page);
      // A token that does not advance (MLflow bug, fixture 58) or an empty page ends the walk.
      if (!out.next_page_token || page.length === 0 || seenTokens.has(out.next_page_token)) break;
      seenTokens.add(out.next_page_token);
      pageToken = out.next_page_token;
    }
    return points;
  }

  // ---------------- artifacts ----------------

  async listArtifacts(runId: string, path?: string): Promise<{ rootUri: string; files: RemoteArtifact[] }> {
    const out = await this.json(z.looseObject({ root_uri: z.string().optional(), files: z.array(ArtifactJson).optional() }), 'GET', '/api/2.0/mlflow/artifacts/list', {
      query: { run_id: runId, path },
    });
    return { rootUri: out.root_uri ?? '', files: (out.files ?? []).map((f) => ({ path: f.path, isDir: f.is_dir ?? false, size: f.file_size })) };
  }

  /** Every file under a run's artifacts, recursively (directories expanded). */
  async listAllArtifacts(runId: string): Promise<RemoteArtifact[]> {
    const out: RemoteArtifact[] = [];
    const walk = async (dir: string | undefined): Promise<void> => {
      for (const file of (await this.listArtifacts(runId, dir)).files) {
        if (file.isDir) await walk(file.path);
        else out.push(file);
      }
    };
    await walk(undefined);
    return out.sort((a, b) => a.path.localeCompare(b.path));
  }

  /** `mlflow-artifacts:/x/<run>/artifacts` → proxy path `x/<run>/artifacts`; other schemes cannot be written over HTTP. */
  proxyPath(artifactUri: string): string {
    const match = /^mlflow-artifacts:(?:\/\/[^/]*)?\/*(.*)$/.exec(artifactUri);
    if (!match) {
      throw new MlflowArtifactUriError('artifact-uri-not-proxied', `the run's artifact location "${artifactUri}" is not served through the MLflow artifact proxy, so artifacts cannot be uploaded over HTTP.`, {
        hint: 'Start the server with --serve-artifacts (the default since MLflow 2.0) and no file/S3 --default-artifact-root, or create the experiment with artifact_location "mlflow-artifacts:/<name>".',
      });
    }
    return (match[1] ?? '').replace(/\/+$/, '');
  }

  /** Uploads bytes to `<artifactUri>/<relativePath>` through the proxy (PUT, idempotent: overwrites). */
  async uploadArtifact(artifactUri: string, relativePath: string, data: Buffer, contentType = 'application/octet-stream'): Promise<void> {
    const base = this.proxyPath(artifactUri);
    const encoded = [...base.split('/'), ...relativePath.split('/')].filter(Boolean).map(encodeURIComponent).join('/');
    await this.call('PUT', `/api/2.0/mlflow-artifacts/artifacts/${encoded}`, { raw: data, rawContentType: contentType });
  }

  async downloadArtifact(artifactUri: string, relativePath: string): Promise<Buffer> {
    const base = this.proxyPath(artifactUri);
    const encoded = [...base.split('/'), ...relativePath.split('/')].filter(Boolean).map(encodeURIComponent).join('/');
    const response = await this.call('GET', `/api/2.0/mlflow-artifacts/artifacts/${encoded}`, { binary: true });
    return Buffer.isBuffer(response.data) ? response.data : Buffer.from(response.data as unknown as ArrayBuffer);
  }

  // ---------------- server ----------------

  /** `OK` from /health (plain text). */
  async health(): Promise<string> {
    const response = await this.call('GET', '/health', { retries: 0 });
    return String(response.data).trim();
  }

  /** The server's version string from /version (plain text). */
  async version(): Promise<string> {
    const response = await this.call('GET', '/version', { retries: 0 });
    return String(response.data).trim();
  }
}
