// Secrets never reach a tracking store: values under secret-looking keys are replaced, and the values of
// secret environment variables (tracking token, passwords...) are scrubbed from params, tags and text artifacts.

/**
 * Keys whose values are secrets: `token`, `secret`, `password`/`passwd`, `credential` anywhere, or a key of the
 * kinds that are credentials (apiKey, access_key, privateKey, ssh_key ...). A bare `...Key` is not: configs name
 * array keys of data files with it (featuresKey, coordsKey), and hiding those makes a saved config unusable.
 */
export const SECRET_KEY_PATTERN = /token|secret|passw(?:or)?d|credential|(?:api|access|private|ssh|auth|encryption|signing|client|master)[_-]?key$/i;

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

/** A secret environment variable's value and the interpolation that reads it back (`${env:NAME}`). */
export interface SecretExpression {
  readonly value: string;
  readonly expression: string;
}

/**
 * The values of secret-named environment variables with their `${env:NAME}` expressions, longest first: a config
 * value that came from `${env:MLFLOW_TRACKING_TOKEN}` is written back as that expression, never in clear, and the
 * saved config still resolves to the same values (and hash) in the same environment.
 */
export function secretEnvExpressions(env: Readonly<Record<string, string | undefined>>): SecretExpression[] {
  const out: SecretExpression[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value.length < MIN_SECRET_LENGTH || !SECRET_KEY_PATTERN.test(name)) continue;
    out.push({ value, expression: `\${env:${name}}` });
  }
  return out.sort((a, b) => b.value.length - a.value.length || a.expression.localeCompare(b.expression));
}

/**
 * A deep copy of `value` with every value under a secret key replaced by REDACTED, and every occurrence of a secret
 * environment value elsewhere replaced by the `${env:NAME}` expression that produced it.
 */
export function redactConfig(value: unknown, keyPath = '', secrets: readonly SecretExpression[] = []): unknown {
  if (Array.isArray(value)) return value.map((item, i) => redactConfig(item, keyPath ? `${keyPath}.${i}` : String(i), secrets));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
      out[key] = SECRET_KEY_PATTERN.test(key) ? REDACTED : redactConfig(inner, keyPath ? `${keyPath}.${key}` : key, secrets);
    }
    return out;
  }
  if (typeof value === 'string') {
    let text = value;
    for (const secret of secrets) if (text.includes(secret.value)) text = text.split(secret.value).join(secret.expression);
    return text;
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
