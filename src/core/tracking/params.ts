// A resolved config as MLflow params: dotted keys (`model.aggregator.name`), string values, secrets
// redacted, and anything MLflow cannot hold as a param (too long, unusable name) handed back for an artifact.
import { keyProblem, MLFLOW_LIMITS } from './limits.js';
import { isSecretKeyPath, REDACTED, scrubUrlPasswords } from './redact.js';

export interface FlattenedParams {
  /** Ready for `logParams`, sorted by key. */
  readonly params: Record<string, string>;
  /** Values over 6000 characters, or keys MLflow rejects; log them as an artifact, never cut them. */
  readonly oversized: Record<string, string>;
}

function valueText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null) return 'null';
  return JSON.stringify(value);
}

/**
 * Flattens a config to MLflow params. Objects nest with `.`; arrays become one JSON value (a list is one
 * setting); `undefined` is skipped; empty objects give nothing. Values under secret keys become REDACTED, and so
 * do passwords inside URLs (`https://user:pw@host`).
 */
export function flattenParams(config: unknown): FlattenedParams {
  const flat: Array<[string, string]> = [];
  const walk = (value: unknown, keyPath: string): void => {
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return;
    if (keyPath !== '' && isSecretKeyPath(keyPath)) {
      flat.push([keyPath, REDACTED]);
      return;
    }
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value as Record<string, unknown>)) walk(inner, keyPath ? `${keyPath}.${key}` : key);
      return;
    }
    if (keyPath === '') {
      flat.push(['value', valueText(value)]);
      return;
    }
    flat.push([keyPath, scrubUrlPasswords(valueText(value))]);
  };
  walk(config, '');
  flat.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const params: Record<string, string> = {};
  const oversized: Record<string, string> = {};
  for (const [key, value] of flat) {
    if (keyProblem(key) !== undefined || value.length > MLFLOW_LIMITS.paramValueLength) oversized[key] = value;
    else params[key] = value;
  }
  return { params, oversized };
}
