// An in-memory MLflow tracking server on 127.0.0.1 for fault and sync tests: the REST subset milkit uses,
// with the recorded server's rules (string ids, JSON content type required, NaN/∞ as strings, null value
// rejected, batch limits, immutable params, get-history empty without max_results, artifact proxy) and faults
// to inject: stop/restart (kill), queued failures (500, 429 + Retry-After), slow answers.
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeMetric {
  readonly key: string;
  readonly value: number;
  readonly timestamp: number;
  readonly step: number;
}

export interface FakeRun {
  readonly runId: string;
  readonly experimentId: string;
  runName: string;
  status: string;
  startTime: number;
  endTime: number | undefined;
  readonly artifactUri: string;
  lifecycleStage: string;
  userId: string;
  readonly params: Map<string, string>;
  readonly tags: Map<string, string>;
  readonly metrics: FakeMetric[];
}

export interface Failure {
  readonly status: number;
  readonly retryAfter?: string;
  readonly body?: unknown;
}

const DOUBLE_MAX = 1.7976931348623157e308;

class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

function parseValue(raw: unknown): number {
  if (raw === null || raw === undefined) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', "Missing value for required parameter 'value'.");
  if (typeof raw === 'number') return raw;
  if (raw === 'NaN') return NaN;
  if (raw === 'Infinity') return DOUBLE_MAX;
  if (raw === '-Infinity') return -DOUBLE_MAX;
  throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Invalid value ${JSON.stringify(raw)} for parameter 'value' supplied`);
}

const metricJson = (m: FakeMetric): Record<string, unknown> => ({ key: m.key, value: Number.isNaN(m.value) ? 'NaN' : m.value, timestamp: m.timestamp, step: m.step });

export class FakeMlflowServer {
  readonly experiments = new Map<string, { id: string; name: string; lifecycleStage: string; artifactLocation: string }>();
  readonly runs = new Map<string, FakeRun>();
  readonly artifacts = new Map<string, Buffer>();
  /** Every metric point received (duplicates included), and every request. */
  metricsReceived = 0;
  requests = 0;
  readonly log: string[] = [];
  private failures: Failure[] = [];
  private delayMs = 0;
  private delayOnly: string | undefined;
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private nextExperiment = 1;
  private nextRun = 1;
  port = 0;

  get uri(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts listening (again, on the same port after stop()). */
  async start(port = this.port): Promise<this> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => void this.handle(req, res, Buffer.concat(chunks)));
    });
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  /** Kills the server: open connections are cut, new ones refused; state survives (it is the database). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The next requests get these answers instead of being served. */
  failNext(...failures: Failure[]): void {
    this.failures.push(...failures);
  }

  /** Answers (all, or those whose path contains `onlyPath`) wait this long; the request is applied first. */
  setDelay(ms: number, onlyPath?: string): void {
    this.delayMs = ms;
    this.delayOnly = onlyPath;
  }

  metricCount(): number {
    let n = 0;
    for (const run of this.runs.values()) n += run.metrics.length;
    return n;
  }

  runsWithTag(key: string, value: string): FakeRun[] {
    return [...this.runs.values()].filter((r) => r.tags.get(key) === value);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer): Promise<void> {
    this.requests += 1;
    const url = new URL(req.url ?? '/', 'http://x');
    this.log.push(`${req.method} ${url.pathname}`);
    const failure = this.failures.shift();
    if (failure) {
      res.writeHead(failure.status, { 'Content-Type': 'application/json', ...(failure.retryAfter !== undefined ? { 'Retry-After': failure.retryAfter } : {}) });
      res.end(JSON.stringify(failure.body ?? { error_code: failure.status === 429 ? 'REQUEST_LIMIT_EXCEEDED' : 'INTERNAL_ERROR', message: 'injected failure' }));
      return;
    }
    let status = 200;
    let contentType = 'application/json';
    let body: string;
    try {
      const out = this.route(req.method ?? 'GET', url, req.headers, raw);
      if (Buffer.isBuffer(out)) {
        contentType = 'application/octet-stream';
        body = out.toString('latin1');
      } else {
        body = JSON.stringify(out);
      }
    } catch (error) {
      if (error instanceof ApiError) {
        status = error.status;
        body = JSON.stringify({ error_code: error.code, message: error.message });
      } else if (error instanceof NotFound) {
        status = 404;
        contentType = 'text/html; charset=utf-8';
        body = '<!doctype html><title>404 Not Found</title>';
      } else {
        status = 500;
        body = JSON.stringify({ error_code: 'INTERNAL_ERROR', message: String(error) });
      }
    }
    if (this.delayMs > 0 && (this.delayOnly === undefined || url.pathname.includes(this.delayOnly))) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    if (res.destroyed) return;
    res.writeHead(status, { 'Content-Type': contentType });
    res.end(contentType === 'application/octet-stream' ? Buffer.from(body, 'latin1') : body);
  }

  private route(method: string, url: URL, headers: http.IncomingHttpHeaders, raw: Buffer): unknown {
    const p = url.pathname;
    const q = url.searchParams;
    if (method === 'PUT' && p.startsWith('/api/2.0/mlflow-artifacts/artifacts/')) {
      this.artifacts.set(decodeURIComponent(p.slice('/api/2.0/mlflow-artifacts/artifacts/'.length)), raw);
      return {};
    }
    if (method === 'GET' && p.startsWith('/api/2.0/mlflow-artifacts/artifacts/')) {
      const data = this.artifacts.get(decodeURIComponent(p.slice('/api/2.0/mlflow-artifacts/artifacts/'.length)));
      if (!data) throw new ApiError(500, 'INTERNAL_ERROR', 'No such file');
      return data;
    }
    let body: Record<string, unknown> = {};
    if (method === 'POST') {
      const type = String(headers['content-type'] ?? '');
      if (!type) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', 'Bad Request. Content-Type header is missing.');
      if (!type.startsWith('application/json')) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', "Bad Request. Content-Type must be one of ['application/json'].");
      try {
        body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
      } catch {
        body = {};
      }
    }
    const need = (value: unknown, name: string): string => {
      if (value === undefined || value === null || value === '') throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Missing value for required parameter '${name}'.`);
      return String(value);
    };
    const run = (id: string): FakeRun => {
      const r = this.runs.get(id);
      if (!r) throw new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', `Run with id=${id} not found`);
      return r;
    };
    const activeRun = (id: string): FakeRun => {
      const r = run(id);
      if (r.lifecycleStage !== 'active') throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `The run ${id} must be in the 'active' state.`);
      return r;
    };
    const api = '/api/2.0/mlflow/';
    const route = `${method} ${p.startsWith(api) ? p.slice(api.length) : p}`;
    switch (route) {
      case 'GET experiments/get-by-name': {
        const e = [...this.experiments.values()].find((x) => x.name === q.get('experiment_name'));
        if (!e) throw new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', `Could not find experiment with name '${q.get('experiment_name')}'`);
        return { experiment: this.experimentJson(e) };
      }
      case 'GET experiments/get': {
        const e = this.experiments.get(q.get('experiment_id') ?? '');
        if (!e) throw new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', 'No Experiment');
        return { experiment: this.experimentJson(e) };
      }
      case 'POST experiments/create': {
        const name = need(body.name, 'name');
        if ([...this.experiments.values()].some((x) => x.name === name)) throw new ApiError(400, 'RESOURCE_ALREADY_EXISTS', `Experiment(name=${name}) already exists.`);
        const id = String(this.nextExperiment++);
        this.experiments.set(id, { id, name, lifecycleStage: 'active', artifactLocation: typeof body.artifact_location === 'string' ? body.artifact_location : `mlflow-artifacts:/${id}` });
        return { experiment_id: id };
      }
      case 'POST experiments/search':
        return { experiments: [...this.experiments.values()].map((e) => this.experimentJson(e)) };
      case 'POST runs/create': {
        const experimentId = need(body.experiment_id, 'experiment_id');
        const e = this.experiments.get(experimentId);
        if (!e) throw new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', 'No Experiment');
        const runId = `fake${String(this.nextRun++).padStart(28, '0')}`;
        const tags = new Map<string, string>();
        for (const t of (body.tags as Array<{ key: string; value: string }> | undefined) ?? []) tags.set(t.key, t.value);
        const runName = typeof body.run_name === 'string' ? body.run_name : `generated-${runId.slice(-4)}`;
        tags.set('mlflow.runName', runName);
        const r: FakeRun = {
          runId, experimentId, runName, status: 'RUNNING', startTime: Number(body.start_time ?? 0), endTime: undefined,
          artifactUri: `${e.artifactLocation}/${runId}/artifacts`, lifecycleStage: 'active', userId: String(body.user_id ?? ''),
          params: new Map(), tags, metrics: [],
        };
        this.runs.set(runId, r);
        return { run: this.runJson(r) };
      }
      case 'POST runs/update': {
        const r = run(need(body.run_id, 'run_id'));
        if (typeof body.status === 'string' && ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'].includes(body.status)) r.status = body.status;
        if (body.end_time !== undefined) r.endTime = Number(body.end_time);
        if (typeof body.run_name === 'string') r.runName = body.run_name;
        return { run_info: this.runJson(r).info };
      }
      case 'GET runs/get':
        return { run: this.runJson(run(need(q.get('run_id'), 'run_id'))) };
      case 'POST runs/search': {
        const ids = (body.experiment_ids as string[] | undefined) ?? [];
        const view = String(body.run_view_type ?? 'ACTIVE_ONLY');
        const conditions = parseTagFilter(typeof body.filter === 'string' ? body.filter : '');
        let found = [...this.runs.values()].filter((r) => ids.includes(r.experimentId)
          && (view === 'ALL' || (view === 'DELETED_ONLY' ? r.lifecycleStage === 'deleted' : r.lifecycleStage === 'active'))
          && conditions.every(([k, v]) => r.tags.get(k) === v));
        found.sort((a, b) => b.startTime - a.startTime);
        const total = found.length;
        const offset = body.page_token ? Number(JSON.parse(Buffer.from(String(body.page_token), 'base64').toString()).offset) : 0;
        const max = Number(body.max_results ?? 1000);
        const page = found.slice(offset, offset + max);
        found = page;
        const next = offset + max < total ? Buffer.from(JSON.stringify({ offset: offset + max })).toString('base64') : undefined;
        return found.length === 0 ? {} : { runs: found.map((r) => this.runJson(r)), ...(next ? { next_page_token: next } : {}) };
      }
      case 'POST runs/log-batch': {
        const r = activeRun(need(body.run_id, 'run_id'));
        const metrics = (body.metrics as Array<Record<string, unknown>> | undefined) ?? [];
        const params = (body.params as Array<{ key: string; value: string }> | undefined) ?? [];
        const tags = (body.tags as Array<{ key: string; value: string }> | undefined) ?? [];
        if (metrics.length > 1000) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `A batch logging request can contain at most 1000 metrics. Got ${metrics.length} metrics.`);
        if (params.length > 100) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', 'at most 100 params');
        if (tags.length > 100) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', 'at most 100 tags');
        if (metrics.length + params.length + tags.length > 1000) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', 'at most 1000 metrics, params, and tags');
        for (const item of [...metrics, ...params, ...tags]) {
          if (String(item.key).length > 250) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', 'key exceeds the maximum length of 250 characters');
        }
        const seen = new Set<string>();
        for (const p of params) {
          if (seen.has(p.key)) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Duplicate parameter keys have been submitted: ['${p.key}'].`);
          seen.add(p.key);
          const old = r.params.get(p.key);
          if (old !== undefined && old !== p.value) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Changing param values is not allowed. Param with key='${p.key}'`);
        }
        const parsed = metrics.map((m) => ({ key: need(m.key, 'key'), value: parseValue(m.value), timestamp: Number(need(m.timestamp, 'timestamp')), step: Number(m.step ?? 0) }));
        for (const p of params) r.params.set(p.key, p.value.slice(0, 6000));
        for (const t of tags) r.tags.set(t.key, t.value.slice(0, 8000));
        for (const m of parsed) this.addMetric(r, m);
        return {};
      }
      case 'POST runs/log-metric': {
        const r = activeRun(need(body.run_id, 'run_id'));
        this.addMetric(r, { key: need(body.key, 'key'), value: parseValue(body.value), timestamp: Number(need(body.timestamp, 'timestamp')), step: Number(body.step ?? 0) });
        return {};
      }
      case 'POST runs/set-tag': {
        const r = activeRun(need(body.run_id, 'run_id'));
        r.tags.set(need(body.key, 'key'), String(body.value ?? ''));
        return {};
      }
      case 'GET metrics/get-history': {
        const r = run(need(q.get('run_id'), 'run_id'));
        const all = r.metrics.filter((m) => m.key === q.get('metric_key'));
        const offset = q.get('page_token') ? Number(JSON.parse(Buffer.from(q.get('page_token') ?? '', 'base64').toString()).offset) : 0;
        // The recorded bug: no max_results → no metrics, a token that never advances (fixture 58).
        if (!q.get('max_results')) return { next_page_token: Buffer.from(JSON.stringify({ offset: 0 })).toString('base64') };
        const max = Number(q.get('max_results'));
        const page = all.slice(offset, offset + max);
        const next = offset + max < all.length ? Buffer.from(JSON.stringify({ offset: offset + max })).toString('base64') : undefined;
        return page.length === 0 ? {} : { metrics: page.map(metricJson), ...(next ? { next_page_token: next } : {}) };
      }
      case 'GET artifacts/list': {
        const r = run(need(q.get('run_id'), 'run_id'));
        const root = r.artifactUri.replace(/^mlflow-artifacts:\/+/, '');
        const dir = q.get('path') ?? '';
        const prefix = dir ? `${root}/${dir}/` : `${root}/`;
        const entries = new Map<string, { path: string; is_dir: boolean; file_size?: number }>();
        for (const [key, data] of this.artifacts) {
          if (!key.startsWith(prefix)) continue;
          const rest = key.slice(prefix.length);
          const first = rest.split('/')[0] ?? rest;
          const rel = dir ? `${dir}/${first}` : first;
          entries.set(rel, rest.includes('/') ? { path: rel, is_dir: true } : { path: rel, is_dir: false, file_size: data.length });
        }
        return entries.size === 0 ? { root_uri: r.artifactUri } : { root_uri: r.artifactUri, files: [...entries.values()] };
      }
      case 'GET health':
      case 'GET /health':
        return 'OK';
      default:
        throw new NotFound();
    }
  }

  private addMetric(r: FakeRun, m: FakeMetric): void {
    this.metricsReceived += 1;
    // Like MLflow's SQL store: an identical (key, timestamp, step, value) point is stored once.
    const same = (x: FakeMetric): boolean => x.key === m.key && x.timestamp === m.timestamp && x.step === m.step && (x.value === m.value || (Number.isNaN(x.value) && Number.isNaN(m.value)));
    if (!r.metrics.some(same)) r.metrics.push(m);
  }

  private experimentJson(e: { id: string; name: string; lifecycleStage: string; artifactLocation: string }): Record<string, unknown> {
    return { experiment_id: e.id, name: e.name, artifact_location: e.artifactLocation, lifecycle_stage: e.lifecycleStage, last_update_time: 1, creation_time: 1 };
  }

  private runJson(r: FakeRun): { info: Record<string, unknown>; data: Record<string, unknown> } {
    const latest = new Map<string, FakeMetric>();
    for (const m of r.metrics) {
      const best = latest.get(m.key);
      if (!best || m.step > best.step || (m.step === best.step && m.timestamp >= best.timestamp)) latest.set(m.key, m);
    }
    return {
      info: {
        run_uuid: r.runId, run_id: r.runId, experiment_id: r.experimentId, run_name: r.runName, user_id: r.userId, status: r.status,
        start_time: r.startTime, ...(r.endTime !== undefined ? { end_time: r.endTime } : {}), artifact_uri: r.artifactUri, lifecycle_stage: r.lifecycleStage,
      },
      data: {
        ...(latest.size > 0 ? { metrics: [...latest.values()].map(metricJson) } : {}),
        ...(r.params.size > 0 ? { params: [...r.params].map(([key, value]) => ({ key, value })) } : {}),
        ...(r.tags.size > 0 ? { tags: [...r.tags].map(([key, value]) => ({ key, value })) } : {}),
      },
    };
  }
}

class NotFound extends Error {}

/** `tags.\`a\` = 'x' and tags.\`b\` = 'y'` → [[a, x], [b, y]] (the only filters milkit sends). */
function parseTagFilter(filter: string): Array<[string, string]> {
  if (filter.trim() === '') return [];
  return filter.split(/\s+and\s+/i).map((clause) => {
    const m = /^tags\.(?:`([^`]+)`|"([^"]+)"|([\w.]+))\s*=\s*'([^']*)'$/.exec(clause.trim());
    if (!m) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `unsupported filter clause ${clause}`);
    return [m[1] ?? m[2] ?? m[3] ?? '', m[4] ?? ''];
  });
}
