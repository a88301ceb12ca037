/**
 * MLflow tracking server over REST (tracker/mlflow-rest)
 * Paper: none (infrastructure). API: MLflow REST 2.0, docs/methods/mlflow.md#rest-api; behaviour pinned by the recorded exchanges in test/reference/fixtures/mlflow-fixtures.json.gz (docs/methods/mlflow.md#server-behaviour).
 * Implements: the Tracker contract with experiments get-or-create, runs found again by milkit.run_key before any
 *   create, everything through runs/log-batch chunked to the server limits, artifacts through the mlflow-artifacts proxy.
 * Choices: NaN/±Infinity sent as strings; get-history always with max_results; retries with exponential backoff and
 *   jitter on network errors, 429 (Retry-After) and 5xx only; errors typed by error_code.
 * Checked against: test/core/tracking/rest-contract.test.ts (fixture replay) and test/core/tracking/faults.test.ts.
 */
import { z } from 'zod';
import { createRestTracker, definePlugin, REST_DEFAULTS } from '../../src/registry/index.js';

export const MlflowRestOptions = z.strictObject({
  uri: z.string().regex(/^https?:\/\//i, 'must start with http:// or https://').describe('tracking server URI, http(s)://host:port[/prefix]'),
  token: z.string().optional().describe('bearer token (MLFLOW_TRACKING_TOKEN)'),
  username: z.string().optional().describe('basic-auth user (MLFLOW_TRACKING_USERNAME)'),
  password: z.string().optional().describe('basic-auth password (MLFLOW_TRACKING_PASSWORD)'),
  insecureTls: z.boolean().default(false).describe('skip TLS certificate verification (MLFLOW_TRACKING_INSECURE_TLS)'),
  caFile: z.string().optional().describe('CA bundle for the server certificate (MLFLOW_TRACKING_SERVER_CERT_PATH)'),
  clientCertFile: z.string().optional().describe('client certificate for mutual TLS, PEM (MLFLOW_TRACKING_CLIENT_CERT_PATH)'),
  clientKeyFile: z.string().optional().describe('client key for mutual TLS when not inside clientCertFile'),
  timeoutMs: z.int().positive().default(REST_DEFAULTS.timeoutMs).describe('per-request timeout, ms'),
  retries: z.int().min(0).max(20).default(REST_DEFAULTS.retries).describe('retries after the first attempt (network errors, 429, 5xx)'),
  backoffMs: z.int().positive().default(REST_DEFAULTS.backoffBaseMs).describe('first backoff, ms; doubles per retry, with jitter'),
  backoffMaxMs: z.int().positive().default(REST_DEFAULTS.backoffMaxMs).describe('upper bound of one backoff, ms'),
  retryAfterMaxMs: z.int().positive().default(REST_DEFAULTS.retryAfterMaxMs).describe('upper bound on a server Retry-After, ms'),
});
export type MlflowRestOptions = z.output<typeof MlflowRestOptions>;

export default definePlugin({
  kind: 'tracker',
  name: 'mlflow-rest',
  summary: 'MLflow tracking server through its REST API (axios; retries, limits, artifact proxy)',
  options: MlflowRestOptions,
  capabilities: {},
  create: (options, ctx) =>
    createRestTracker({
      uri: options.uri,
      logger: ctx.logger,
      insecureTls: options.insecureTls,
      timeoutMs: options.timeoutMs,
      retries: options.retries,
      backoffBaseMs: options.backoffMs,
      backoffMaxMs: options.backoffMaxMs,
      retryAfterMaxMs: options.retryAfterMaxMs,
      ...(options.token !== undefined ? { token: options.token } : {}),
      ...(options.username !== undefined ? { username: options.username } : {}),
      ...(options.password !== undefined ? { password: options.password } : {}),
      ...(options.caFile !== undefined ? { caFile: options.caFile } : {}),
      ...(options.clientCertFile !== undefined ? { clientCertFile: options.clientCertFile } : {}),
      ...(options.clientKeyFile !== undefined ? { clientKeyFile: options.clientKeyFile } : {}),
    }),
});
