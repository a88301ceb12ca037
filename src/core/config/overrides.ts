// Hydra's command-line override grammar, parsed by hand: `a.b=v`, `+a.b=v`, `++a.b=v`, `~a.b[=v]`,
// `group=option`, `grp/sub@pkg=option`, typed values ([lists], {dicts}, 'quoted', \ escapes) and the
// sweep forms (`a=1,2`, `choice(...)`, `range(...)`, `glob(...)`). Users bring Hydra muscle memory, so the
// grammar and typing rules follow Hydra's OverrideParser; errors point at the column that broke.
import { ConfigError } from '../errors.js';
import { applyFunction, FUNCTIONS, type Parsed, type SweepSpec } from './override-functions.js';
import { formatValue, typeScalar } from './override-scalars.js';
import type { KeySegment } from './tree.js';
import { setOwn } from './tree.js';

export { expandSweep, type SweepSpec } from './override-functions.js';
export { formatValue, typeScalar } from './override-scalars.js';

/** `set` = `key=v`, `add` = `+key=v`, `force-add` = `++key=v`, `delete` = `~key` or `~key=v`. */
export type OverrideKind = 'set' | 'add' | 'force-add' | 'delete';

/**
 * What the key can address: `group` for `grp/sub` or `grp@pkg`, `config` for dotted/bracketed paths,
 * `either` for a single plain name (a config group when one by that name exists, else a config key).
 */
export type OverrideTarget = 'config' | 'group' | 'either';

export interface Override {
  /** The override exactly as written. */
  readonly text: string;
  readonly kind: OverrideKind;
  /** The key without prefix or package: `train.optimizer.lr`, `model/aggregator`. */
  readonly key: string;
  readonly target: OverrideTarget;
  /** Key segments (`a.b[0]` → ['a','b',0]); for a group key, its `/`-separated parts. */
  readonly path: readonly KeySegment[];
  /** `grp@pkg=...`: the package the group's content is placed at ('' = the root). */
  readonly package?: string;
  /** The parsed value; absent for `~key` and for sweeps. */
  readonly value?: unknown;
  /** Present when the value is a sweep (several values). */
  readonly sweep?: SweepSpec;
}

export const ACCEPTED_FORMS = [
  'Accepted forms: key=value, +key=value (add a key), ++key=value (add or replace), ~key or ~key=value (delete),',
  '  group=option (e.g. model/aggregator=max-pool), +group=option (add a group), ~group (drop a group).',
  "  Values: 3, 1e-4, true, null, text, 'quoted text', [a,b], {k: v}; key= sets the empty string.",
  '  Sweeps: a,b,c · choice(a,b) · range(start,stop[,step]) · glob(pattern). Escape ()[]{}:=, and spaces with \\ or quote the value.',
].join('\n');

const VALUE_ESCAPABLE = new Set(['\\', '(', ')', '[', ']', '{', '}', ':', '=', ',', ' ', '\t']);
const KEY_ESCAPABLE = new Set(['.', '[', ']', '=']);
const ID_CHAR = /[A-Za-z0-9_$-]/;

class OverrideParser {
  pos = 0;

  constructor(readonly text: string) {}

  fail(message: string, at = this.pos): never {
    const column = Math.min(at, this.text.length);
    const where = column >= this.text.length ? 'at the end' : `at column ${column + 1}`;
    throw new ConfigError(
      'bad-override',
      `bad override "${this.text}": ${message} ${where}.\n  ${this.text}\n  ${' '.repeat(column)}^\n${ACCEPTED_FORMS}`,
    );
  }

  peek(offset = 0): string | undefined {
    return this.text[this.pos + offset];
  }

  atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  skipSpaces(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos += 1;
  }

  parse(): Override {
    let kind: OverrideKind = 'set';
    if (this.text.startsWith('++')) {
      kind = 'force-add';
      this.pos = 2;
    } else if (this.text.startsWith('+')) {
      kind = 'add';
      this.pos = 1;
    } else if (this.text.startsWith('~')) {
      kind = 'delete';
      this.pos = 1;
    }
    const key = this.parseKey();
    if (this.atEnd()) {
      if (kind !== 'delete') this.fail(`expected "=" after the key "${key.key}" (only ~key may omit the value)`);
      return { text: this.text, kind, ...key };
    }
    this.pos += 1; // the '='
    const rest = this.text.slice(this.pos);
    if (rest.trim() === '') {
      // `key=` is the empty string (Hydra); `~key=` deletes regardless of the value.
      return kind === 'delete' ? { text: this.text, kind, ...key } : { text: this.text, kind, ...key, value: '' };
    }
    const parsed = this.parseValue();
    if (parsed.kind === 'sweep') {
      if (kind === 'delete') this.fail('a delete (~key=value) takes one value, not a sweep', this.text.indexOf('=') + 1);
      return { text: this.text, kind, ...key, sweep: parsed.sweep };
    }
    return { text: this.text, kind, ...key, value: parsed.value };
  }

  parseKey(): { key: string; target: OverrideTarget; path: KeySegment[]; package?: string } {
    const start = this.pos;
    // Scan to the first unescaped '='.
    let end = start;
    while (end < this.text.length && this.text[end] !== '=') end += this.text[end] === '\\' ? 2 : 1;
    end = Math.min(end, this.text.length);
    const raw = this.text.slice(start, end);
    if (raw === '') this.fail('expected a key', start);
    if (raw.includes('/') || raw.includes('@')) {
      const result = this.parseGroupKey(raw, start);
      this.pos = end;
      return result;
    }
    const path = this.parsePathKey(raw, start);
    this.pos = end;
    const plain = /^[A-Za-z0-9_$-]+$/.test(raw);
    return { key: raw, target: plain ? 'either' : 'config', path };
  }

  parseGroupKey(raw: string, start: number): { key: string; target: OverrideTarget; path: KeySegment[]; package?: string } {
    const at = raw.indexOf('@');
    const group = at === -1 ? raw : raw.slice(0, at);
    const segments = group.split('/');
    let offset = start;
    for (const segment of segments) {
      if (!/^[A-Za-z0-9_$-]+$/.test(segment)) {
        const bad = [...segment].findIndex((c) => !ID_CHAR.test(c));
        this.fail(segment === '' ? 'empty config group name' : `unexpected "${segment[bad] ?? ''}" in the config group`, offset + Math.max(bad, 0));
      }
      offset += segment.length + 1;
    }
    if (at === -1) return { key: group, target: 'group', path: segments };
    const pkg = raw.slice(at + 1);
    if (pkg.includes(':')) this.fail('renaming a package (grp@from:to) is not supported; use grp@to=option', start + at + 1 + pkg.indexOf(':'));
    if (pkg !== '' && !/^[A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+)*$/.test(pkg)) this.fail('expected a dotted package name after "@"', start + at + 1);
    return { key: group, target: 'group', path: segments, package: pkg };
  }

  /** `a.b`, `items[0]`, `obj[20s_labels]`, `obj.a\.b` → segments. */
  parsePathKey(raw: string, start: number): KeySegment[] {
    const segments: KeySegment[] = [];
    let i = 0;
    let current = '';
    let expectSegment = true;
    const flush = (at: number): void => {
      if (current === '') this.fail('empty key segment', start + at);
      segments.push(current);
      current = '';
    };
    while (i < raw.length) {
      const c = raw[i] as string;
      if (c === '\\') {
        const next = raw[i + 1];
        if (next === undefined || !KEY_ESCAPABLE.has(next)) this.fail('only \\. \\[ \\] and \\= may be escaped in a key', start + i);
        current += next;
        i += 2;
        expectSegment = false;
      } else if (c === '.') {
        if (current !== '') flush(i);
        else if (expectSegment) this.fail('empty key segment', start + i);
        expectSegment = true;
        i += 1;
      } else if (c === '[') {
        if (current !== '') flush(i);
        else if (segments.length === 0) this.fail('a key must start with a name, not "["', start + i);
        const close = raw.indexOf(']', i);
        if (close === -1) this.fail('unclosed "[" in the key', start + i);
        const selector = raw.slice(i + 1, close);
        if (/^-?\d+$/.test(selector)) segments.push(Number(selector));
        else if (/^[A-Za-z0-9_$-]+$/.test(selector)) segments.push(selector);
        else this.fail('a [selector] holds a list index or a plain key', start + i + 1);
        i = close + 1;
        expectSegment = false;
      } else if (ID_CHAR.test(c)) {
        current += c;
        i += 1;
        expectSegment = false;
      } else {
        this.fail(`unexpected "${c}" in the key`, start + i);
      }
    }
    if (current !== '') flush(i);
    else if (expectSegment) this.fail('empty key segment', start + raw.length);
    return segments;
  }

  /** value: element | element (',' element)+  (a simple choice sweep) */
  parseValue(): Parsed {
    const first = this.parseElement(new Set([',']), true);
    this.skipSpaces();
    if (this.peek() !== ',') {
      if (!this.atEnd()) this.fail(`unexpected "${this.peek() ?? ''}"`);
      return first;
    }
    const values: unknown[] = [this.valueOf(first, 'a comma-separated sweep')];
    while (this.peek() === ',') {
      this.pos += 1;
      values.push(this.valueOf(this.parseElement(new Set([',']), true), 'a comma-separated sweep'));
      this.skipSpaces();
    }
    if (!this.atEnd()) this.fail(`unexpected "${this.peek() ?? ''}"`);
    return { kind: 'sweep', sweep: { type: 'choice', values } };
  }

  valueOf(parsed: Parsed, context: string): unknown {
    if (parsed.kind === 'sweep') this.fail(`a sweep cannot be nested inside ${context}`);
    return parsed.value;
  }

  parseElement(stops: ReadonlySet<string>, allowFunctions: boolean): Parsed {
    this.skipSpaces();
    const c = this.peek();
    if (c === undefined || stops.has(c)) this.fail('expected a value');
    if (c === '[') return { kind: 'value', value: this.parseList() };
    if (c === '{') return { kind: 'value', value: this.parseDict() };
    if (c === "'" || c === '"') {
      const value = this.parseQuoted();
      this.skipSpaces();
      const next = this.peek();
      if (next !== undefined && !stops.has(next)) this.fail('unexpected text after a quoted value (quote the whole value)');
      return { kind: 'value', value };
    }
    const fn = /^[A-Za-z_][A-Za-z0-9_]*\(/.exec(this.text.slice(this.pos));
    if (fn) {
      if (!allowFunctions) this.fail('functions are not allowed here');
      return this.parseFunction(fn[0].slice(0, -1));
    }
    return { kind: 'value', value: this.parsePrimitive(stops) };
  }

  parseList(): unknown[] {
    this.pos += 1; // '['
    const items: unknown[] = [];
    this.skipSpaces();
    if (this.peek() === ']') {
      this.pos += 1;
      return items;
    }
    for (;;) {
      items.push(this.valueOf(this.parseElement(new Set([',', ']']), false), 'a list'));
      this.skipSpaces();
      const c = this.peek();
      if (c === ',') {
        this.pos += 1;
        continue;
      }
      if (c === ']') {
        this.pos += 1;
        return items;
      }
      this.fail('expected "," or "]" in the list');
    }
  }

  parseDict(): Record<string, unknown> {
    this.pos += 1; // '{'
    const out: Record<string, unknown> = {};
    this.skipSpaces();
    if (this.peek() === '}') {
      this.pos += 1;
      return out;
    }
    for (;;) {
      this.skipSpaces();
      const keyStart = this.pos;
      let key: string;
      if (this.peek() === "'" || this.peek() === '"') {
        // Quoted keys (an extension of Hydra's dictKey) let any string be a key.
        key = this.parseQuoted();
        this.skipSpaces();
        if (this.peek() !== ':') this.fail('expected ":" after the mapping key');
      } else {
        key = this.parseDictKey();
        if (key === '') this.fail('expected a key in the mapping', keyStart);
      }
      if (Object.hasOwn(out, key)) this.fail(`duplicate key "${key}" in the mapping`, keyStart);
      this.pos += 1; // ':'
      setOwn(out, key, this.valueOf(this.parseElement(new Set([',', '}']), false), 'a mapping'));
      this.skipSpaces();
      const c = this.peek();
      if (c === ',') {
        this.pos += 1;
        continue;
      }
      if (c === '}') {
        this.pos += 1;
        return out;
      }
      this.fail('expected "," or "}" in the mapping');
    }
  }

  parseDictKey(): string {
    let key = '';
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail('expected ":" after the mapping key');
      if (c === ':') return key.trim();
      if (c === '\\') {
        const next = this.peek(1);
        if (next !== undefined && VALUE_ESCAPABLE.has(next)) {
          key += next;
          this.pos += 2;
          continue;
        }
      }
      if ('()[]{}=,\'"'.includes(c)) this.fail(`unexpected "${c}" in a mapping key (expected key: value)`);
      key += c;
      this.pos += 1;
    }
  }

  /** Hydra quoting: `\'` is a quote; a run of 2n backslashes before a quote is n backslashes. */
  parseQuoted(): string {
    const quote = this.peek() as string;
    const start = this.pos;
    this.pos += 1;
    let out = '';
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail(`unclosed ${quote === "'" ? 'single' : 'double'} quote`, start);
      if (c === '\\') {
        let run = 0;
        while (this.peek(run) === '\\') run += 1;
        if (this.peek(run) === quote) {
          out += '\\'.repeat(Math.floor(run / 2));
          this.pos += run;
          if (run % 2 === 1) {
            out += quote;
            this.pos += 1;
            continue;
          }
          continue; // even run: the quote that follows closes the string
        }
        out += '\\'.repeat(run);
        this.pos += run;
        continue;
      }
      this.pos += 1;
      if (c === quote) return out;
      out += c;
    }
  }

  /** Unquoted text up to a stop character; `${...}` interpolations are kept verbatim. */
  parsePrimitive(stops: ReadonlySet<string>): unknown {
    const chars: Array<{ ch: string; literal: boolean }> = [];
    let typed = true;
    const start = this.pos;
    while (!this.atEnd()) {
      const c = this.peek() as string;
      if (c === '\\') {
        const next = this.peek(1);
        if (next !== undefined && VALUE_ESCAPABLE.has(next)) {
          chars.push({ ch: next, literal: true });
          this.pos += 2;
          typed = false;
          continue;
        }
        chars.push({ ch: c, literal: true });
        this.pos += 1;
        continue;
      }
      if (c === '$' && this.peek(1) === '{') {
        const end = this.interpolationEnd(this.pos);
        for (const ch of this.text.slice(this.pos, end)) chars.push({ ch, literal: true });
        this.pos = end;
        typed = false;
        continue;
      }
      if (stops.has(c)) break;
      if ('()[]{}='.includes(c)) this.fail(`unexpected "${c}" (quote the value or escape it as \\${c})`);
      if (c === "'" || c === '"') this.fail('unexpected quote inside an unquoted value (quote the whole value)');
      chars.push({ ch: c, literal: false });
      this.pos += 1;
    }
    // Leading/trailing unescaped whitespace is not part of the value (Hydra).
    let from = 0;
    let to = chars.length;
    while (from < to && !chars[from]!.literal && /\s/.test(chars[from]!.ch)) from += 1;
    while (to > from && !chars[to - 1]!.literal && /\s/.test(chars[to - 1]!.ch)) to -= 1;
    const text = chars.slice(from, to).map((x) => x.ch).join('');
    if (text === '') this.fail('expected a value', start);
    return typed ? typeScalar(text) : text;
  }

  interpolationEnd(from: number): number {
    let depth = 0;
    for (let i = from; i < this.text.length; i += 1) {
      const c = this.text[i];
      if (c === '{') depth += 1;
      else if (c === '}') {
        depth -= 1;
        if (depth === 0) return i + 1;
      }
    }
    return this.fail('unclosed "${" interpolation', from);
  }

  parseFunction(name: string): Parsed {
    const nameStart = this.pos;
    if (!(FUNCTIONS as readonly string[]).includes(name)) {
      const hint = name === 'interval' || name === 'tag' ? ' (it needs an optimizing sweeper, which milkit does not have)' : '';
      this.fail(`unknown function "${name}"${hint}; supported: ${FUNCTIONS.join(', ')}`, nameStart);
    }
    this.pos += name.length + 1; // name and '('
    const positional: Parsed[] = [];
    const named = new Map<string, Parsed>();
    this.skipSpaces();
    if (this.peek() === ')') this.pos += 1;
    else {
      for (;;) {
        this.skipSpaces();
        const argName = /^([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(this.text.slice(this.pos));
        if (argName) {
          this.pos += argName[0].length;
          named.set(argName[1] as string, this.parseElement(new Set([',', ')']), true));
        } else {
          if (named.size > 0) this.fail('a positional argument cannot follow a named one');
          positional.push(this.parseElement(new Set([',', ')']), true));
        }
        this.skipSpaces();
        const c = this.peek();
        if (c === ',') {
          this.pos += 1;
          continue;
        }
        if (c === ')') {
          this.pos += 1;
          break;
        }
        this.fail(`expected "," or ")" in ${name}(...)`);
      }
    }
    return applyFunction(name, positional, named, (message) => this.fail(message, nameStart), this.text);
  }

}

/** Parses one override; malformed text is a ConfigError `bad-override` naming the override, the column and the accepted forms. */
export function parseOverride(text: string): Override {
  return new OverrideParser(text).parse();
}

/** Parses every override, in order. */
export function parseOverrides(texts: readonly string[]): Override[] {
  return texts.map(parseOverride);
}

/** The same override with one concrete value, as text (`a=1,2` → `a=1`), for a sweep cell. */
export function formatOverride(override: Override, value: unknown = override.value): string {
  const prefix = { set: '', add: '+', 'force-add': '++', delete: '~' }[override.kind];
  const key = override.target === 'group' ? override.key : formatKey(override.path);
  const pkg = override.package === undefined ? '' : `@${override.package}`;
  if (override.kind === 'delete' && value === undefined) return `~${key}${pkg}`;
  return `${prefix}${key}${pkg}=${formatValue(value)}`;
}

function formatKey(path: readonly KeySegment[]): string {
  return path
    .map((segment, i) => {
      if (typeof segment === 'number') return `[${segment}]`;
      const escaped = segment.replace(/[.[\]=]/g, '\\$&');
      return i === 0 ? escaped : `.${escaped}`;
    })
    .join('');
}

