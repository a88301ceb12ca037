// One error hierarchy for milkit: every error says where (file/key), what happened, what is allowed and
// what to do. The CLI maps each class to an exit code and prints no stack trace unless --debug.

export interface ErrorLocation {
  /** File the offending value came from (config, feature file, slide table...). */
  readonly file?: string;
  /** Dotted key path inside that file or the resolved config (`model.aggregator.dropout`). */
  readonly key?: string;
  readonly line?: number;
}

export interface MilkitErrorOptions {
  readonly where?: ErrorLocation;
  readonly hint?: string;
  readonly cause?: unknown;
}

/** Base class: `code` is a stable kebab-case identifier documented beside the error. */
export class MilkitError extends Error {
  readonly code: string;
  readonly where: ErrorLocation | undefined;
  readonly hint: string | undefined;
  /** Exit code the CLI uses for this class of error. */
  readonly exitCode: number = 1;

  constructor(code: string, message: string, options: MilkitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.where = options.where;
    this.hint = options.hint;
  }

  /** `<file> › <key>: <message> <hint>` — the one-line form the CLI prints. */
  render(): string {
    const location = formatLocation(this.where);
    const head = location ? `${location}: ${this.message}` : this.message;
    return this.hint ? `${head} ${this.hint}` : head;
  }
}

export function formatLocation(where: ErrorLocation | undefined): string {
  if (!where) return '';
  const parts: string[] = [];
  if (where.file) parts.push(where.line === undefined ? where.file : `${where.file}:${where.line}`);
  if (where.key) parts.push(where.key);
  return parts.join(' › ');
}

export class ConfigError extends MilkitError {
  override readonly exitCode = 2;
}
export class PluginError extends MilkitError {
  override readonly exitCode = 3;
}
export class DataError extends MilkitError {
  override readonly exitCode = 4;
}
export class TrackingError extends MilkitError {
  override readonly exitCode = 5;
}
export class NumericsError extends MilkitError {
  override readonly exitCode = 6;
}
export class BackendError extends MilkitError {
  override readonly exitCode = 7;
}

/** The signals that stop a run at its next safe point (docs/reliability.md#signals). */
export type StopSignal = 'SIGINT' | 'SIGTERM';

/** Shell convention: 128 + the signal number (SIGINT 2 → 130, SIGTERM 15 → 143). */
export const SIGNAL_EXIT_CODES: Readonly<Record<StopSignal, number>> = { SIGINT: 130, SIGTERM: 143 };

/** A run stopped by SIGINT/SIGTERM after writing what it had finished; the message says how to resume. */
export class InterruptedError extends MilkitError {
  override readonly exitCode: number;
  readonly signal: StopSignal;

  constructor(signal: StopSignal, message: string, options: MilkitErrorOptions = {}) {
    super('interrupted', message, options);
    this.signal = signal;
    this.exitCode = SIGNAL_EXIT_CODES[signal];
  }
}

/** Renders an error and its causes, one indented line per level (no stack unless asked). */
export function renderError(error: unknown, withStack = false): string {
  const lines: string[] = [];
  let current: unknown = error;
  let depth = 0;
  while (current !== undefined && depth < 8) {
    const indent = '  '.repeat(depth);
    if (current instanceof MilkitError) lines.push(`${indent}${depth === 0 ? 'error' : 'caused by'} [${current.code}]: ${current.render()}`);
    else if (current instanceof Error) lines.push(`${indent}${depth === 0 ? 'error' : 'caused by'}: ${current.message}`);
    else lines.push(`${indent}${depth === 0 ? 'error' : 'caused by'}: ${String(current)}`);
    if (withStack && current instanceof Error && current.stack) lines.push(current.stack.split('\n').slice(1).map((l) => indent + l).join('\n'));
    current = current instanceof Error ? current.cause : undefined;
    depth += 1;
  }
  return lines.join('\n');
}

/** The file system refused a write or a folder (full disk, read-only mount, permissions, a file where a folder belongs). */
export class StorageError extends MilkitError {
  override readonly exitCode = 8;
}
