// `${...}` interpolation over a composed config (OmegaConf's syntax): `${a.b}` absolute, `${.x}`/`${..x}`
// relative to the node holding the string, `${env:VAR}` / `${env:VAR,default}` (also spelled `oc.env`),
// string embedding (`run_${seed}`), nesting and `\${` escapes. A whole-value interpolation keeps the
// referenced value's type. Errors name the key holding the interpolation and the file it came from.
import { ConfigError } from '../errors.js';
import { suggest } from '../util/suggest.js';
import { typeScalar } from './overrides.js';
import { isMapping, joinKey, lookup, setOwn, walkPaths, type ConfigMapping, type KeySegment } from './tree.js';

export interface InterpolateOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The file (or override) a key came from, for messages. */
  readonly sourceOf?: (key: string) => string | undefined;
}

/** Longest chain of references resolved inside one another (a → b → c …): real configs use a few. */
export const MAX_INTERPOLATION_DEPTH = 64;
/** Longest string an interpolation may build: doubling chains would otherwise grow to gigabytes. */
export const MAX_INTERPOLATED_LENGTH = 1 << 20;

type Piece = { readonly text: string } | { readonly expr: string; readonly start: number };

/** True when `value` holds an unescaped `${`. */
export function hasInterpolation(value: string): boolean {
  return /(^|[^\\])\$\{/.test(value);
}

/** Returns a copy of `config` with every interpolation resolved. */
export function interpolateConfig(config: ConfigMapping, options: InterpolateOptions): ConfigMapping {
  return new Interpolator(config, options).run();
}

class Interpolator {
  private readonly resolved = new Map<string, unknown>();
  private readonly inProgress: string[] = [];

  constructor(
    private readonly root: ConfigMapping,
    private readonly options: InterpolateOptions,
  ) {}

  run(): ConfigMapping {
    return this.resolveTree(this.root, []) as ConfigMapping;
  }

  private resolveTree(value: unknown, path: KeySegment[]): unknown {
    if (typeof value === 'string') return this.resolveAt(path, value);
    if (Array.isArray(value)) return value.map((item, i) => this.resolveTree(item, [...path, i]));
    if (isMapping(value)) {
      const out: ConfigMapping = {};
      for (const [key, item] of Object.entries(value)) setOwn(out, key, this.resolveTree(item, [...path, key]));
      return out;
    }
    return value;
  }

  /** Resolves the string stored at `path` (memoised, with cycle detection). */
  private resolveAt(path: readonly KeySegment[], text: string): unknown {
    if (!text.includes('${')) return text;
    const key = joinKey(path);
    if (this.resolved.has(key)) return this.resolved.get(key);
    if (this.inProgress.includes(key)) {
      const cycle = [...this.inProgress.slice(this.inProgress.indexOf(key)), key].join(' → ');
      throw this.error(path, `interpolation cycle: ${cycle}`, 'interpolation-cycle');
    }
    if (this.inProgress.length >= MAX_INTERPOLATION_DEPTH) {
      throw this.error(path, `interpolation nested deeper than ${MAX_INTERPOLATION_DEPTH} references (${this.inProgress.slice(-3).join(' → ')} → …)`, 'interpolation-too-deep',
        'Refer to the value you need directly instead of through a chain of ${...} references.');
    }
    this.inProgress.push(key);
    try {
      const value = this.resolveString(text, path);
      this.resolved.set(key, value);
      return value;
    } finally {
      this.inProgress.pop();
    }
  }

  private resolveString(text: string, path: readonly KeySegment[]): unknown {
    const pieces = this.split(text, path);
    const only = pieces[0];
    if (pieces.length === 1 && only && 'expr' in only) return this.evaluate(only.expr, path);
    const joined = pieces
      .map((piece) => {
        if ('text' in piece) return piece.text;
        const value = this.evaluate(piece.expr, path);
        if (isMapping(value) || Array.isArray(value)) {
          throw this.error(path, `\${${piece.expr}} is a ${Array.isArray(value) ? 'list' : 'mapping'} and cannot be embedded in the string "${text}"`, 'bad-interpolation');
        }
        return value === null ? 'null' : String(value);
      })
      .join('');
    if (joined.length > MAX_INTERPOLATED_LENGTH) {
      throw this.error(path, `interpolation expands to ${joined.length.toLocaleString('en-US')} characters (limit ${MAX_INTERPOLATED_LENGTH.toLocaleString('en-US')})`, 'interpolation-too-large',
        'A string that embeds another interpolated string more than once doubles at each level; embed each value once.');
    }
    return joined;
  }

  /** Splits text into literal parts and top-level `${...}` expressions; `\${` stays literal. */
  private split(text: string, path: readonly KeySegment[]): Piece[] {
    const pieces: Piece[] = [];
    let literal = '';
    let i = 0;
    while (i < text.length) {
      if (text[i] === '\\' && text[i + 1] === '$' && text[i + 2] === '{') {
        literal += '${';
        i += 3;
        continue;
      }
      if (text[i] === '$' && text[i + 1] === '{') {
        let depth = 0;
        let end = -1;
        for (let j = i; j < text.length; j += 1) {
          if (text[j] === '{') depth += 1;
          else if (text[j] === '}') {
            depth -= 1;
            if (depth === 0) {
              end = j;
              break;
            }
          }
        }
        if (end === -1) throw this.error(path, `unclosed "\${" in "${text}"`, 'bad-interpolation');
        if (literal !== '') pieces.push({ text: literal });
        literal = '';
        pieces.push({ expr: text.slice(i + 2, end), start: i });
        i = end + 1;
        continue;
      }
      literal += text[i];
      i += 1;
    }
    if (literal !== '') pieces.push({ text: literal });
    return pieces;
  }

  private evaluate(rawExpr: string, path: readonly KeySegment[]): unknown {
    const expr = rawExpr.trim();
    const resolver = /^([A-Za-z_][A-Za-z0-9_.]*):(.*)$/s.exec(expr);
    if (resolver) {
      const name = resolver[1] as string;
      if (name === 'env' || name === 'oc.env') return this.env(resolver[2] as string, path, expr);
      throw this.error(path, `unknown resolver "${name}" in \${${expr}}`, 'bad-interpolation', 'Supported: ${a.b}, ${.sibling}, ${env:VAR} and ${env:VAR,default}.');
    }
    // A key reference may itself contain interpolations (`${model.${which}}`).
    const keyText = expr.includes('${') ? String(this.resolveString(expr, path)) : expr;
    const target = this.referencePath(keyText, path, expr);
    const found = lookup(this.root, target);
    if (!found.found) {
      const parent = lookup(this.root, target.slice(0, found.missingAt));
      const siblings = parent.found && isMapping(parent.value) ? Object.keys(parent.value) : [];
      const missing = String(target[found.missingAt]);
      const close = suggest(missing, siblings, 1)[0];
      const closeKey = close === undefined ? undefined : joinKey([...target.slice(0, found.missingAt), close]);
      throw this.error(path, `cannot resolve \${${expr}}: no key "${joinKey(target)}" in the composed config`, 'unresolved-interpolation',
        `${closeKey ? `Did you mean \${${closeKey}}? ` : ''}Interpolations see composed values only (schema defaults are filled later).`);
    }
    return this.resolveTree(found.value, target);
  }

  /** `a.b` → absolute; `.x` → sibling of the key holding the string; each extra dot goes one level up. */
  private referencePath(keyText: string, path: readonly KeySegment[], expr: string): KeySegment[] {
    const dots = /^\.*/.exec(keyText)?.[0].length ?? 0;
    const rest = keyText.slice(dots);
    const segments = rest === '' ? [] : rest.split('.');
    if (segments.some((s) => s === '')) throw this.error(path, `\${${expr}} is not a valid key reference`, 'bad-interpolation');
    if (dots === 0) return segments;
    const containing = path.slice(0, -1);
    const up = dots - 1;
    if (up > containing.length) throw this.error(path, `\${${expr}} goes above the config root`, 'bad-interpolation');
    return [...containing.slice(0, containing.length - up), ...segments];
  }

  private env(args: string, path: readonly KeySegment[], expr: string): unknown {
    const comma = args.indexOf(',');
    const name = (comma === -1 ? args : args.slice(0, comma)).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw this.error(path, `\${${expr}}: "${name}" is not an environment variable name`, 'bad-interpolation');
    const value = this.options.env[name];
    if (value !== undefined) return typeScalar(value);
    if (comma === -1) {
      throw this.error(path, `environment variable ${name} is not set and \${${expr}} has no default`, 'unresolved-interpolation',
        `Set ${name}, or give a default: \${env:${name},<default>}.`);
    }
    const fallback = args.slice(comma + 1).trim();
    const quoted = /^(['"])(.*)\1$/s.exec(fallback);
    if (quoted) return quoted[2];
    if (fallback.includes('${')) return this.resolveString(fallback, path);
    return typeScalar(fallback);
  }

  private error(path: readonly KeySegment[], what: string, code: string, hint?: string): ConfigError {
    const key = joinKey(path);
    const file = this.options.sourceOf?.(key);
    return new ConfigError(code, `${key}: ${what}${file ? ` (${file})` : ''}.`, hint ? { hint } : {});
  }
}

/** Key paths whose value is the mandatory-missing marker `???`. */
export function missingValues(config: ConfigMapping): string[] {
  const out: string[] = [];
  for (const path of walkPaths(config)) {
    const found = lookup(config, path);
    if (found.found && found.value === '???') out.push(joinKey(path));
  }
  return out;
}
