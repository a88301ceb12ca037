// The functions of Hydra's override grammar — choice, range, glob, sort and the int/float/str/bool casts —
// and the expansion of a sweep into its concrete values.
import { ConfigError } from '../errors.js';
import { FLOAT_RE, formatScalar, INT_RE, typeScalar } from './override-scalars.js';
import type { Override } from './overrides.js';
import { isMapping, setOwn } from './tree.js';

/** Several values for one key: a choice list, a numeric range (values precomputed) or a glob over group options. */
export type SweepSpec =
  | { readonly type: 'choice'; readonly values: readonly unknown[] }
  | { readonly type: 'range'; readonly start: number; readonly stop: number; readonly step: number; readonly values: readonly number[] }
  | { readonly type: 'glob'; readonly include: readonly string[]; readonly exclude: readonly string[]; readonly values: readonly string[] };

/** An element of the grammar: a plain value, or a sweep. */
export type Parsed = { readonly kind: 'value'; readonly value: unknown } | { readonly kind: 'sweep'; readonly sweep: SweepSpec };

export const FUNCTIONS = ['choice', 'range', 'glob', 'sort', 'int', 'float', 'str', 'bool'] as const;

/** Evaluates `name(args...)`; `fail` reports a message at the call's position. */
export function applyFunction(name: string, positional: readonly Parsed[], named: ReadonlyMap<string, Parsed>, fail: (message: string) => never, text: string): Parsed {
  const allowNamed = (allowed: readonly string[]): void => {
    for (const key of named.keys()) if (!allowed.includes(key)) fail(`${name}() has no argument "${key}"`);
  };
  switch (name) {
    case 'choice': {
      allowNamed([]);
      if (positional.length === 0) fail('choice() needs at least one value');
      const values = positional.flatMap((p) => (p.kind === 'sweep' ? [...sweepValues(p.sweep, fail)] : [p.value]));
      return { kind: 'sweep', sweep: { type: 'choice', values } };
    }
    case 'range': {
      allowNamed(['start', 'stop', 'step']);
      const args = [...positional];
      const take = (key: string): Parsed | undefined => named.get(key) ?? args.shift();
      const numberOf = (p: Parsed | undefined, label: string): number | undefined => {
        if (p === undefined) return undefined;
        if (p.kind !== 'value' || typeof p.value !== 'number' || !Number.isFinite(p.value)) fail(`range() ${label} must be a finite number`);
        return p.value;
      };
      const first = numberOf(take('start'), 'start');
      const second = numberOf(take('stop'), 'stop');
      const step = numberOf(take('step'), 'step') ?? 1;
      if (args.length > 0) fail('range() takes at most 3 arguments (start, stop, step)');
      if (first === undefined) fail('range() needs a stop value');
      const [start, stop] = second === undefined ? [0, first] : [first, second];
      if (step === 0) fail('range() step must not be 0');
      return { kind: 'sweep', sweep: { type: 'range', start, stop, step, values: rangeValues(start, stop, step, text) } };
    }
    case 'glob': {
      allowNamed(['include', 'exclude']);
      const include = named.get('include') ?? positional[0];
      const exclude = named.get('exclude') ?? positional[1];
      if (positional.length > 2) fail('glob() takes include and exclude');
      const patterns = (p: Parsed | undefined, label: string): string[] => {
        if (p === undefined) return [];
        if (p.kind === 'value' && typeof p.value === 'string') return [p.value];
        if (p.kind === 'value' && Array.isArray(p.value) && p.value.every((v) => typeof v === 'string')) return p.value as string[];
        return fail(`glob() ${label} must be a pattern or a list of patterns`);
      };
      const inc = patterns(include, 'include');
      if (inc.length === 0) fail('glob() needs an include pattern, e.g. glob(*)');
      return { kind: 'sweep', sweep: { type: 'glob', include: inc, exclude: patterns(exclude, 'exclude'), values: [] } };
    }
    case 'sort': {
      allowNamed(['reverse', 'sweep', 'list']);
      const reverseArg = named.get('reverse');
      const reverse = reverseArg === undefined ? false : reverseArg.kind === 'value' && reverseArg.value === true;
      const source = named.get('sweep') ?? named.get('list');
      const items = source ? [source] : positional;
      if (items.length === 1 && items[0]!.kind === 'value' && Array.isArray(items[0]!.value)) {
        return { kind: 'value', value: sortValues(items[0]!.value as unknown[], reverse) };
      }
      if (items.length === 1 && items[0]!.kind === 'value') return items[0]!;
      const values = items.flatMap((p) => (p.kind === 'sweep' ? [...sweepValues(p.sweep, fail)] : [p.value]));
      return { kind: 'sweep', sweep: { type: 'choice', values: sortValues(values, reverse) } };
    }
    default: {
      // Casts: int, float, str, bool — applied to values, lists, mappings and sweeps (Hydra's rules).
      allowNamed(['value']);
      const arg = named.get('value') ?? positional[0];
      if (arg === undefined || positional.length > 1) fail(`${name}() takes one value`);
      const cast = (v: unknown): unknown => castValue(name, v, fail);
      if (arg.kind === 'value') return { kind: 'value', value: cast(arg.value) };
      if (arg.sweep.type === 'glob') fail(`${name}() cannot cast a glob`);
      if (arg.sweep.type === 'range' && (name === 'str' || name === 'bool')) fail(`${name}() cannot cast a range`);
      return { kind: 'sweep', sweep: { type: 'choice', values: arg.sweep.values.map(cast) } };
    }
  }
}

function sweepValues(sweep: SweepSpec, fail: (message: string) => never): readonly unknown[] {
  if (sweep.type === 'glob') return fail('a glob cannot be nested in another function');
  return sweep.values;
}

function sortValues(values: unknown[], reverse: boolean): unknown[] {
  const sorted = [...values].sort((a, b) => {
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    return String(a).localeCompare(String(b));
  });
  return reverse ? sorted.reverse() : sorted;
}

function decimalsOf(value: number): number {
  const text = String(value);
  const exp = /e-(\d+)$/.exec(text);
  if (exp) return Number(exp[1]) + (text.split('e')[0]!.split('.')[1]?.length ?? 0);
  return text.split('.')[1]?.length ?? 0;
}

/** r[i] = start + i·step while r[i] < stop (or > stop for a negative step); floats rounded to the inputs' decimals. */
function rangeValues(start: number, stop: number, step: number, text: string): number[] {
  const decimals = Math.max(decimalsOf(start), decimalsOf(step));
  const count = Math.max(0, Math.ceil((stop - start) / step - 1e-12));
  if (count > 100_000) {
    throw new ConfigError('bad-override', `bad override "${text}": range() would produce ${count} values; a sweep that large is almost certainly a mistake.`);
  }
  const out: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const value = start + i * step;
    out.push(decimals === 0 ? value : Number(value.toFixed(decimals)));
  }
  return out;
}

function castValue(name: string, value: unknown, fail: (message: string) => never): unknown {
  if (Array.isArray(value)) return value.map((v) => castValue(name, v, fail));
  if (isMapping(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) setOwn(out, k, castValue(name, v, fail));
    return out;
  }
  switch (name) {
    case 'int': {
      if (typeof value === 'boolean') return value ? 1 : 0;
      if (typeof value === 'number' && Number.isFinite(value)) return Math.trunc(value);
      if (typeof value === 'string' && INT_RE.test(value)) return Number(value.replaceAll('_', ''));
      return fail(`int() cannot convert ${JSON.stringify(value)}`);
    }
    case 'float': {
      if (typeof value === 'boolean') return value ? 1 : 0;
      if (typeof value === 'number') return value;
      if (typeof value === 'string' && (INT_RE.test(value) || FLOAT_RE.test(value))) return typeScalar(value);
      return fail(`float() cannot convert ${JSON.stringify(value)}`);
    }
    case 'str':
      return typeof value === 'string' ? value : formatScalar(value);
    case 'bool': {
      if (typeof value === 'boolean') return value;
      if (typeof value === 'number') return value !== 0;
      if (typeof value === 'string' && /^(true|false)$/i.test(value)) return value.toLowerCase() === 'true';
      return fail(`bool() cannot convert ${JSON.stringify(value)}`);
    }
    default:
      return fail(`unknown cast ${name}()`);
  }
}

/**
 * The concrete values an override stands for: its single value, or every value of its sweep.
 * A glob sweep needs the options of its config group (`groupOptions`).
 */
export function expandSweep(override: Override, groupOptions?: readonly string[]): unknown[] {
  if (!override.sweep) return override.value === undefined ? [] : [override.value];
  const { sweep } = override;
  if (sweep.type !== 'glob') return [...sweep.values];
  if (!groupOptions) {
    throw new ConfigError('bad-override', `"${override.text}": glob() selects options of a config group, but no options were given for "${override.key}".`);
  }
  const matches = (patterns: readonly string[], option: string): boolean => patterns.some((p) => globToRegExp(p).test(option));
  return [...groupOptions].sort().filter((o) => matches(sweep.include, o) && !matches(sweep.exclude, o));
}

function globToRegExp(pattern: string): RegExp {
  const body = [...pattern].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`);
}

