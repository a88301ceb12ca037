// Turns zod issues into milkit's error text: `<key path>: expected <allowed>, got <value>` — the
// allowed set is read from the schema itself (JSON Schema view), so ranges and enums are always current.
import { z } from 'zod';
import { ConfigError, type ErrorLocation } from '../errors.js';
import { didYouMean } from '../util/suggest.js';

type JsonSchemaNode = Record<string, unknown>;

/** Short rendering of a user value for messages. */
export function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    const text = JSON.stringify(value);
    return text.length > 60 ? `${text.slice(0, 57)}...` : text;
  } catch {
    return String(value);
  }
}

/** Walks a (possibly wrapped) zod schema along `path`; undefined when it cannot follow. */
export function schemaAt(schema: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  let current: z.ZodType | undefined = schema;
  for (const segment of path) {
    current = unwrap(current);
    if (current === undefined) return undefined;
    if (current instanceof z.ZodObject) current = (current.shape as Record<string, z.ZodType>)[String(segment)];
    else if (current instanceof z.ZodArray) current = current.element as z.ZodType;
    else if (current instanceof z.ZodRecord) current = current.valueType as z.ZodType;
    else return undefined;
  }
  return current;
}

/** Strips default/optional/nullable/prefault/pipe wrappers down to the schema that checks the value. */
export function unwrap(schema: z.ZodType | undefined): z.ZodType | undefined {
  let current = schema;
  for (let i = 0; i < 8 && current; i += 1) {
    if (current instanceof z.ZodDefault || current instanceof z.ZodOptional || current instanceof z.ZodNullable || current instanceof z.ZodPrefault) {
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodPipe) {
      current = current.in as z.ZodType;
    } else return current;
  }
  return current;
}

/** "number in [0,1)", "one of "a", "b"", "integer ≥ 1", "boolean" ... read from the schema. */
export function describeExpected(schema: z.ZodType | undefined): string | undefined {
  if (!schema) return undefined;
  let json: JsonSchemaNode;
  try {
    json = z.toJSONSchema(schema, { unrepresentable: 'any', io: 'input' }) as JsonSchemaNode;
  } catch {
    return undefined;
  }
  return describeJson(json);
}

function describeJson(json: JsonSchemaNode): string | undefined {
  if (Array.isArray(json.enum)) return `one of ${(json.enum as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  if (json.const !== undefined) return JSON.stringify(json.const);
  const anyOf = (json.anyOf ?? json.oneOf) as JsonSchemaNode[] | undefined;
  if (Array.isArray(anyOf)) {
    const parts = anyOf.map(describeJson).filter((p): p is string => p !== undefined);
    return parts.length ? parts.join(' or ') : undefined;
  }
  const type = json.type;
  if (type === 'number' || type === 'integer') {
    // z.int() carries the safe-integer bounds; they say nothing to a user.
    const lo = json.minimum === Number.MIN_SAFE_INTEGER ? json.exclusiveMinimum : json.minimum ?? json.exclusiveMinimum;
    const hi = json.maximum === Number.MAX_SAFE_INTEGER ? json.exclusiveMaximum : json.maximum ?? json.exclusiveMaximum;
    const noun = type;
    if (lo !== undefined && hi !== undefined) {
      return `${noun} in ${json.exclusiveMinimum !== undefined ? '(' : '['}${String(lo)},${String(hi)}${json.exclusiveMaximum !== undefined ? ')' : ']'}`;
    }
    if (lo !== undefined) return `${noun} ${json.exclusiveMinimum !== undefined ? '>' : '≥'} ${String(lo)}`;
    if (hi !== undefined) return `${noun} ${json.exclusiveMaximum !== undefined ? '<' : '≤'} ${String(hi)}`;
    return noun;
  }
  if (type === 'array') return json.minItems !== undefined && (json.minItems as number) > 0 ? `a list of at least ${String(json.minItems)}` : 'a list';
  if (type === 'object') return 'a mapping';
  if (type === 'string' && json.minLength !== undefined && (json.minLength as number) > 0) return json.minLength === 1 ? 'a non-empty string' : `a string of at least ${String(json.minLength)} characters`;
  if (typeof type === 'string') return type;
  return undefined;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let current = root;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment as string];
  }
  return current;
}

function joinPath(prefix: string, path: readonly PropertyKey[]): string {
  return [prefix, ...path.map(String)].filter((p) => p !== '').join('.');
}

/** One readable line per zod issue, each prefixed with its full key path. */
export function describeIssues(schema: z.ZodType, input: unknown, issues: readonly z.core.$ZodIssue[], keyPrefix = ''): Array<{ key: string; text: string }> {
  const out: Array<{ key: string; text: string }> = [];
  for (const issue of issues) {
    const path = issue.path as PropertyKey[];
    if (issue.code === 'unrecognized_keys') {
      const objectSchema = unwrap(schemaAt(schema, path));
      const allowed = objectSchema instanceof z.ZodObject ? Object.keys(objectSchema.shape as object) : [];
      for (const key of issue.keys) {
        const full = joinPath(keyPrefix, [...path, key]);
        const given = showValue(valueAt(input, [...path, key]));
        out.push({ key: full, text: `unknown key (got ${given}). Allowed: ${allowed.join(', ') || 'none'}.${didYouMean(key, allowed)}` });
      }
      continue;
    }
    if (issue.code === 'invalid_union' && 'errors' in issue && Array.isArray(issue.errors) && issue.errors.length > 0) {
      // Report the branch that got furthest rather than zod's generic "invalid input".
      const branches = issue.errors as z.core.$ZodIssue[][];
      const best = branches.reduce((a, b) => (depth(b) > depth(a) ? b : a));
      out.push(...describeIssues(schema, input, best.map((i) => ({ ...i, path: [...path, ...i.path] })), keyPrefix));
      continue;
    }
    const full = joinPath(keyPrefix, path);
    const given = valueAt(input, path);
    if (issue.code === 'custom') {
      // Cross-field rules (refine/check) carry their own text; the field's type says nothing about them.
      out.push({ key: full, text: `${issue.message} (got ${showValue(given)}).` });
      continue;
    }
    const expected = describeExpected(schemaAt(schema, path));
    if (given === undefined && issue.code === 'invalid_type') {
      out.push({ key: full, text: `required${expected ? ` (${expected})` : ''}, but missing.` });
    } else if (expected) {
      out.push({ key: full, text: `expected ${expected}, got ${showValue(given)}.` });
    } else {
      out.push({ key: full, text: `${issue.message} (got ${showValue(given)}).` });
    }
  }
  return out;
}

function depth(issues: readonly z.core.$ZodIssue[]): number {
  return Math.max(0, ...issues.map((i) => i.path.length + (i.code === 'invalid_type' ? 0 : 1)));
}

/** Parses `input` with `schema`, throwing a ConfigError that names every bad key, the file, and the allowed values. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, where: ErrorLocation & { key?: string }, what = 'config'): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const lines = describeIssues(schema, input, result.error.issues, where.key ?? '');
  const first = lines[0];
  const file = where.file ? ` (${where.file})` : '';
  // Single issue: `key: expected X, got Y (file)` — the pinned form users grep for.
  const message = lines.length === 1 && first
    ? `${first.key}: ${file ? first.text.replace(/\.$/, '') : first.text}${file}`
    : `invalid ${what}${file}:\n${lines.map((l) => `  ${l.key}: ${l.text}`).join('\n')}`;
  // The message already carries key and file in the pinned order, so no separate location prefix.
  throw new ConfigError('invalid-option', message);
}
