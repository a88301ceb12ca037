// The injected logger: library code never calls console directly, so tests capture output and the
// CLI decides where lines go (stderr for diagnostics, stdout for results).

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Writes `info` and above to `write` (stderr by default; results go to stdout through the CLI's own printer). */
export function consoleLogger(minLevel: LogLevel = 'info', write: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): Logger {
  const emit = (level: LogLevel, message: string): void => {
    if (ORDER[level] < ORDER[minLevel]) return;
    const prefix = level === 'info' ? '' : `${level}: `;
    write(`${prefix}${message}`);
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
}

/** Collects lines in memory (tests assert on them). */
export class MemoryLogger implements Logger {
  readonly lines: Array<{ level: LogLevel; message: string }> = [];
  debug(message: string): void {
    this.lines.push({ level: 'debug', message });
  }
  info(message: string): void {
    this.lines.push({ level: 'info', message });
  }
  warn(message: string): void {
    this.lines.push({ level: 'warn', message });
  }
  error(message: string): void {
    this.lines.push({ level: 'error', message });
  }
  text(): string {
    return this.lines.map((l) => `${l.level}: ${l.message}`).join('\n');
  }
}

export const silentLogger: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
