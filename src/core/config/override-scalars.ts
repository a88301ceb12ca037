// How override values are typed and written: Hydra's primitive typing (YAML-like: numbers, booleans, null,
// else text) and the inverse, text that parses back to the same value.
import { isMapping } from './tree.js';

/** Hydra's INT: 0, -20, 1_000_000 (no leading zeros). */
export const INT_RE = /^[+-]?(?:0|[1-9](?:_?[0-9])*)$/;
/** Hydra's FLOAT: 3.14, .5, 1., -10e3, 1e-4, inf, nan (case-insensitive constants). */
export const FLOAT_RE = /^[+-]?(?:(?:(?:[0-9](?:_?[0-9])*)?\.[0-9](?:_?[0-9])*|[0-9](?:_?[0-9])*\.)(?:[eE][+-]?[0-9]+)?|[0-9](?:_?[0-9])*[eE][+-]?[0-9]+|inf|nan)$/i;

/** Types an unquoted word the way Hydra (and YAML's core schema) would: number, boolean, null, else string. */
export function typeScalar(text: string): unknown {
  if (/^null$/i.test(text)) return null;
  if (/^true$/i.test(text)) return true;
  if (/^false$/i.test(text)) return false;
  if (INT_RE.test(text)) return Number(text.replaceAll('_', ''));
  if (FLOAT_RE.test(text)) {
    const lower = text.toLowerCase().replaceAll('_', '');
    if (lower.endsWith('inf')) return lower.startsWith('-') ? -Infinity : Infinity;
    if (lower.endsWith('nan')) return Number.NaN;
    return Number(lower);
  }
  return text;
}

/** Text for a number, boolean or null that types back to the same value (inf, nan, -0.0). */
export function formatScalar(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return 'nan';
    if (value === Infinity) return 'inf';
    if (value === -Infinity) return '-inf';
    if (Object.is(value, -0)) return '-0.0';
    return String(value);
  }
  return String(value);
}

/** Override-grammar text for a value; parseOverride(`k=${formatValue(v)}`).value deep-equals v. */
export function formatValue(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(formatValue).join(',')}]`;
  if (isMapping(value)) {
    const entries = Object.entries(value).map(([k, v]) => `${/^[A-Za-z0-9_./+*%@?|$-]+$/.test(k) ? k : quote(k)}:${formatValue(v)}`);
    return `{${entries.join(',')}}`;
  }
  if (typeof value !== 'string') return formatScalar(value);
  const bare = value !== '' && typeScalar(value) === value && /^[A-Za-z0-9_./+*%@?|$-](?:[A-Za-z0-9_./+*%@?|$ :-]*[A-Za-z0-9_./+*%@?|$:-])?$/.test(value) && !value.includes('${');
  return bare ? value : quote(value);
}

function quote(value: string): string {
  let out = "'";
  let backslashes = 0;
  for (const c of value) {
    if (c === '\\') {
      backslashes += 1;
      continue;
    }
    // Backslashes right before a quote are doubled so they stay backslashes.
    out += c === "'" ? `${'\\'.repeat(backslashes * 2)}\\'` : `${'\\'.repeat(backslashes)}${c}`;
    backslashes = 0;
  }
  return `${out}${'\\'.repeat(backslashes * 2)}'`;
}
