// Secrets never reach a tracking store: values under secret-looking keys are replaced, and the values of
// secret environment variables (tracking token, passwords...) are scrubbed from params, tags and text artifacts.

/** Keys whose values are secrets: `token`, `secret`, `password` anywhere, or ending in `key` (apiKey, ssh_key). */
export const SECRET_KEY_PATTERN = /token|secret|password|key$/i;

/** What a redacted value becomes. */
export const REDACTED = '[REDACTED]';

/** True when one segment of a dotted key path names a secret (`data.auth.apiKey`, `secrets.x`). */
export function isSecretKeyPath(keyPath: string): boolean {
  return keyPath.split('.').some((segment) => SECRET_KEY_PATTERN.test(segment));
}

// System tags are named by MLflow and milkit, not by users (`milkit.run_key` ends in "key" but is a hash).
const SYSTEM_TAG_PREFIXES = ['mlflow.', 'milkit.'];

/** True when a tag's value must be hidden because of its name. */
export function isSecretTagKey(key: string): boolean {
  return !SYSTEM_TAG_PREFIXES.some((prefix) => key.startsWith(prefix)) && isSecretKeyPath(key);
}

/** A deep copy of `value` with every value under a secret key replaced by REDACTED. */
export function redactConfig(value: unknown, keyPath = ''): unknown {
  if (Array.isArray(value)) return value.map((item, i) => redactConfig(item, keyPath ? `${keyPath}.${i}` : String(i)));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
      out[key] = SECRET_KEY_PATTERN.test(key) ? REDACTED : redactConfig(inner, keyPath ? `${keyPath}.${key}` : key);
    }
    return out;
  }
  return value;
}

// Short values ("1", "yes") would scrub innocent text; real secrets are longer.
const MIN_SECRET_LENGTH = 6;

/** Values of environment variables that hold secrets (MLFLOW_TRACKING_TOKEN/PASSWORD, AWS_SECRET_ACCESS_KEY, ...). */
export function secretValuesFromEnv(env: Readonly<Record<string, string | undefined>>): string[] {
  const values = new Set<string>();
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value.length < MIN_SECRET_LENGTH) continue;
    if (SECRET_KEY_PATTERN.test(name)) values.add(value);
  }
  return [...values].sort((a, b) => b.length - a.length);
}

/** Hides the password of `scheme://user:password@host` URLs (tracking URIs, database URLs in configs). */
export function scrubUrlPasswords(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^\s/@:]*):([^\s/@]+)@/gi, `$1:${REDACTED}@`);
}

/** Replaces every occurrence of a known secret value, and every URL password, in `text`. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let out = scrubUrlPasswords(text);
  for (const secret of secrets) {
    if (secret.length >= MIN_SECRET_LENGTH && out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  return out;
}

/** Redacts a string map by key (when `byKey` says so) and scrubs known secret values from the rest. */
export function redactStringMap(
  values: Readonly<Record<string, string>>,
  secrets: readonly string[],
  byKey: (key: string) => boolean,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) out[key] = byKey(key) ? REDACTED : scrubSecrets(value, secrets);
  return out;
}
