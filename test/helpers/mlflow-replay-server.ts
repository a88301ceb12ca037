// An HTTP server on 127.0.0.1 that answers queued exchanges exactly as the recorded MLflow server did
// (status, content type, body) and records every request the client sent, for contract tests.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface RecordedExchange {
  readonly method: string;
  readonly path: string;
  readonly request_body: unknown;
  readonly request_body_is_raw_text?: boolean;
  readonly request_content_type?: string;
  readonly request_headers?: Record<string, string>;
  readonly status: number;
  readonly response_content_type: string;
  readonly response_body: unknown;
  readonly response_body_is_raw_text?: boolean;
  readonly notes: string;
  readonly volatile: readonly string[];
}

/** An answer to give: a recorded exchange, or a hand-made one (pages the recording did not capture). */
export interface Answer {
  readonly status: number;
  readonly contentType?: string;
  /** JSON value (serialized) or raw text. */
  readonly body?: unknown;
  readonly rawBody?: string;
  readonly headers?: Record<string, string>;
  /** Wait before answering (slow server). */
  readonly delayMs?: number;
}

export interface ReceivedRequest {
  readonly method: string;
  /** Path with query string, as sent. */
  readonly url: string;
  readonly pathname: string;
  readonly query: URLSearchParams;
  readonly headers: http.IncomingHttpHeaders;
  readonly raw: Buffer;
  /** Parsed JSON body when the body is JSON. */
  readonly json: unknown;
}

let cached: Record<string, RecordedExchange> | undefined;

/** The recorded exchanges by name (`01-experiments-create` ...). */
export function mlflowFixtures(): Record<string, RecordedExchange> {
  if (!cached) {
    const file = new URL('../reference/fixtures/mlflow-fixtures.json.gz', import.meta.url);
    cached = (JSON.parse(gunzipSync(readFileSync(file)).toString('utf8')) as { exchanges: Record<string, RecordedExchange> }).exchanges;
  }
  return cached;
}

/** Names of the exchanges tests asked for (a test checks that every relevant one is replayed). */
export const usedFixtures = new Set<string>();

/** The exchange whose name starts with `prefix` (`'09'` or `'09-runs-log-batch'`). */
export function fixture(prefix: string): RecordedExchange {
  const all = mlflowFixtures();
  const name = Object.keys(all).find((n) => n === prefix || n.startsWith(`${prefix}-`));
  if (!name) throw new Error(`no MLflow fixture ${prefix}`);
  usedFixtures.add(name);
  return all[name] as RecordedExchange;
}

/** The answer the recorded server gave. */
export function answerOf(exchange: RecordedExchange): Answer {
  return exchange.response_body_is_raw_text || typeof exchange.response_body === 'string'
    ? { status: exchange.status, contentType: exchange.response_content_type, rawBody: String(exchange.response_body) }
    : { status: exchange.status, contentType: exchange.response_content_type, body: exchange.response_body };
}

export class ReplayServer {
  readonly received: ReceivedRequest[] = [];
  private readonly answers: Answer[] = [];
  private readonly sockets = new Set<import('node:net').Socket>();

  private constructor(private readonly server: http.Server, readonly uri: string) {}

  static async start(): Promise<ReplayServer> {
    let self: ReplayServer | undefined;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => void self?.handle(req, res, Buffer.concat(chunks)));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    self = new ReplayServer(server, `http://127.0.0.1:${port}`);
    server.on('connection', (socket) => {
      self?.sockets.add(socket);
      socket.on('close', () => self?.sockets.delete(socket));
    });
    return self;
  }

  /** Queues answers, given in the order requests will arrive. */
  answer(...answers: Array<Answer | RecordedExchange>): this {
    for (const a of answers) this.answers.push('method' in a ? answerOf(a) : a);
    return this;
  }

  get pending(): number {
    return this.answers.length;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let json: unknown;
    try {
      json = raw.length > 0 && String(req.headers['content-type'] ?? '').includes('json') ? JSON.parse(raw.toString('utf8')) : undefined;
    } catch {
      json = undefined;
    }
    this.received.push({ method: req.method ?? '', url: req.url ?? '', pathname: url.pathname, query: url.searchParams, headers: req.headers, raw, json });
    const answer = this.answers.shift() ?? { status: 599, body: { error_code: 'TEST_NO_ANSWER_QUEUED', message: `unexpected ${req.method} ${req.url}` } };
    if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
    const body = answer.rawBody ?? (answer.body === undefined ? '' : JSON.stringify(answer.body));
    res.writeHead(answer.status, { 'Content-Type': answer.contentType ?? 'application/json', ...answer.headers });
    res.end(body);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
