// TLS options of the REST client against an https server on 127.0.0.1 with a test CA
// (test/reference/tls-test-certs.sh): untrusted → a clear, non-retried error; CA file or insecure mode → works.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MlflowRestClient } from '../../../src/core/tracking/rest-client.js';

const tls = (name: string): URL => new URL(`../../reference/fixtures/tls/${name}`, import.meta.url);
let server: https.Server;
let uri: string;
let requests = 0;

beforeAll(async () => {
  server = https.createServer({ cert: readFileSync(tls('server.pem')), key: readFileSync(tls('server-key.pem')) }, (_req, res) => {
    requests += 1;
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('3.6.1.dev0');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  uri = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('MLflow REST client TLS', () => {
  it('refuses an untrusted certificate with a hint and without retrying', async () => {
    requests = 0;
    const error = await new MlflowRestClient({ uri, retries: 3, sleep: async () => undefined }).version().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'mlflow-tls-error' });
    expect((error as { hint: string }).hint).toMatch(/MLFLOW_TRACKING_SERVER_CERT_PATH/);
    expect(requests).toBe(0);
  });

  it('trusts the server through a CA file, or skips the check when asked', async () => {
    await expect(new MlflowRestClient({ uri, caFile: tls('ca.pem').pathname }).version()).resolves.toBe('3.6.1.dev0');
    await expect(new MlflowRestClient({ uri, insecureTls: true }).version()).resolves.toBe('3.6.1.dev0');
  });
});
