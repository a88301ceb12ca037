// tracking: section of an experiment.
import { z } from 'zod';
import { PluginRef } from '../config/plugin-ref.js';

export const TrackingServerSection = z.strictObject({
  timeoutMs: z.int().positive().default(15_000).describe('per-request timeout of the MLflow REST client, ms'),
  retries: z.int().min(0).max(20).default(4).describe('retries after the first attempt, on network errors, timeouts, 429 and 5xx (never on other 4xx)'),
  backoffMs: z.int().positive().default(500).describe('backoff before the first retry, ms; doubles with each retry, with jitter (a 429 Retry-After wins)'),
  backoffMaxMs: z.int().positive().default(15_000).describe('upper bound of one backoff, ms'),
  reconnectAfterMs: z.int().min(0).default(60_000).describe('after the server failed, runs started this long later try it again (earlier ones stay local until `milkit mlflow sync`)'),
  flushTimeoutMs: z.int().positive().default(120_000).describe('how long the end of a run waits for the server before leaving the rest to `milkit mlflow sync`, ms'),
});
export type TrackingServerSection = z.output<typeof TrackingServerSection>;

export const TrackingSection = z.strictObject({
  uri: z.string().optional().describe('MLflow tracking URI; http(s) for a server, a path or file: for the local store (default ./mlruns, or $MLFLOW_TRACKING_URI)'),
  experimentName: z.string().min(1).optional().describe('MLflow experiment name (default: the experiment name)'),
  enabled: z.boolean().default(true).describe('log runs at all'),
  local: PluginRef.prefault({ name: 'mlflow-file' }).describe('tracker plugin of the local record every run writes, {name, ...options}; its store folder (`root`) comes from tracking.uri'),
  remote: PluginRef.prefault({ name: 'mlflow-rest' }).describe('tracker plugin that mirrors runs to a server when tracking.uri is http(s), {name, ...options}; `uri`, the server settings and the credentials from the environment are filled in'),
  server: TrackingServerSection.prefault({}).describe('MLflow server client settings (used when the URI is http(s)); credentials come from MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD'),
  logCheckpoint: z.boolean().default(false).describe('log the best checkpoint of each fold as an artifact'),
  checkpointMaxMb: z.number().positive().default(200).describe('checkpoints larger than this are not logged (a warning says so)'),
});
export type TrackingSection = z.output<typeof TrackingSection>;
