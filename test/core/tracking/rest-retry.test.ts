// Retry policy of the REST client: what is retried (network errors, timeouts, 429, 5xx), how long it waits
// (exponential backoff with jitter, Retry-After honoured and capped), and what is never retried (other 4xx).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MlflowRestClient, parseRetryAfter } from '../../../src/core/tracking/rest-client.js';
import { isServerUnavailable, MlflowInternalError, MlflowThrottledError, MlflowUnreachableError } from '../../../src/core/tracking/rest-errors.js';
import { fixture, ReplayServer } from '../../helpers/mlflow-replay-server.js';

let server: ReplayServer;
const sleeps: number[] = [];
const client = (options: { retries?: number; random?: number; timeoutMs?: number; uri?: string; retryAfterMaxMs?: number } = {}): MlflowRestClient =>
  new MlflowRestClient({
    uri: options.uri ?? server.uri,
    retries: options.retries ?? 3,
    backoffBaseMs: 100,
    backoffMaxMs: 1000,
    ...(options.retryAfterMaxMs !== undefined ? { retryAfterMaxMs: options.retryAfterMaxMs } : {}),
    timeoutMs: options.timeoutMs ?? 5000,
    random: () => options.random ?? 0.5,
    sleep: async (ms) => void sleeps.push(ms),
  });

const ok = { status: 200, body: {} };
const err500 = { status: 500, body: { error_code: 'INTERNAL_ERROR', message: 'boom' } };

beforeAll(async () => {
  server = await ReplayServer.start();
});
afterAll(async () => server.close());
afterEach(() => {
  server.received.length = 0;
  sleeps.length = 0;
});

describe('MLflow REST client retries', () => {
  it('retries 5xx with exponential backoff and jitter in [d/2, d], d = min(max, base·2^n)', async () => {
    server.answer(err500, { status: 502, contentType: 'text/html', rawBody: '<h1>Bad Gateway</h1>' }, { status: 503, body: { error_code: 'TEMPORARILY_UNAVAILABLE', message: 'x' } }, ok);
    await client({ random: 0.5 }).logParam('r', 'k', 'v');
    expect(server.received).toHaveLength(4);
    // random 0.5 → 0.75·d for d = 100, 200, 400.
    expect(sleeps).toEqual([75, 150, 300]);
    sleeps.length = 0;
    server.answer(err500, err500, ok);
    await client({ random: 0 }).logParam('r', 'k', 'v');
    expect(sleeps).toEqual([50, 100]);
    sleeps.length = 0;
    server.answer(err500, err500, err500, err500, err500, ok);
    await client({ random: 0.999999, retries: 5 }).logParam('r', 'k', 'v');
    // The cap: the 4th and 5th waits stay at most 1000 ms.
    expect(sleeps.map(Math.round)).toEqual([100, 200, 400, 800, 1000]);
  });

  it('gives up after the configured retries with the typed error of the last answer', async () => {
    server.answer(err500, err500, err500);
    await expect(client({ retries: 2 }).logParam('r', 'k', 'v')).rejects.toBeInstanceOf(MlflowInternalError);
    expect(server.received).toHaveLength(3);
  });

  it('honours Retry-After (seconds or HTTP date) on 429, capped by retryAfterMaxMs', async () => {
    server.answer({ status: 429, headers: { 'Retry-After': '2' }, body: { error_code: 'REQUEST_LIMIT_EXCEEDED', message: 'slow down' } }, ok);
    await client().logParam('r', 'k', 'v');
    expect(sleeps).toEqual([2000]);
    sleeps.length = 0;
    server.answer({ status: 429, headers: { 'Retry-After': '600' }, body: { error_code: 'REQUEST_LIMIT_EXCEEDED', message: 'x' } }, ok);
    await client({ retryAfterMaxMs: 5000 }).logParam('r', 'k', 'v');
    expect(sleeps).toEqual([5000]);
    sleeps.length = 0;
    // Without the header a 429 backs off like a 5xx.
    server.answer({ status: 429, body: { error_code: 'REQUEST_LIMIT_EXCEEDED', message: 'x' } }, ok);
    await client().logParam('r', 'k', 'v');
    expect(sleeps).toEqual([75]);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(10_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });

  it('a 429 that never clears ends in a throttled error that counts as server-unavailable', async () => {
    server.answer(...Array.from({ length: 2 }, () => ({ status: 429, headers: { 'Retry-After': '0' }, body: { error_code: 'REQUEST_LIMIT_EXCEEDED', message: 'x' } })));
    const error = await client({ retries: 1 }).logParam('r', 'k', 'v').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MlflowThrottledError);
    expect(isServerUnavailable(error)).toBe(true);
  });

  it('never retries a 4xx other than 429', async () => {
    for (const id of ['02', '04', '21', '80', '51']) {
      server.answer(fixture(id));
      await client().logParam('r', 'k', 'v').catch(() => undefined);
      expect(server.received, id).toHaveLength(1);
      expect(sleeps, id).toEqual([]);
      server.received.length = 0;
    }
  });

  it('retries a refused connection, then reports the server unreachable with the attempt count', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await client({ uri: `http://127.0.0.1:${port}`, retries: 2 }).logParam('r', 'k', 'v').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MlflowUnreachableError);
    expect(error).toMatchObject({ code: 'mlflow-unreachable', attempts: 3 });
    expect((error as Error).message).toMatch(/ECONNREFUSED/);
    expect(sleeps).toEqual([75, 150]);
  });

  it('treats an answer slower than the timeout as a retryable network failure', async () => {
    server.answer({ ...ok, delayMs: 400 }, ok);
    await client({ timeoutMs: 100 }).logParam('r', 'k', 'v');
    expect(server.received).toHaveLength(2);
    expect(sleeps).toHaveLength(1);
    server.answer({ ...ok, delayMs: 400 }, { ...ok, delayMs: 400 });
    const error = await client({ timeoutMs: 100, retries: 1 }).logParam('r', 'k', 'v').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MlflowUnreachableError);
    expect((error as Error).message).toMatch(/no answer within 100 ms/);
    // Let the slow answers drain before the next test.
    await new Promise((resolve) => setTimeout(resolve, 500));
  });

  it('creates runs without blind retries (a lost answer must not create a second run)', async () => {
    server.answer(err500);
    await expect(client().createRun({ experimentId: '1' })).rejects.toBeInstanceOf(MlflowInternalError);
    expect(server.received).toHaveLength(1);
  });
});
