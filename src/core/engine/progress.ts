// Progress of epochs, folds and sweep jobs: cli-progress bars with ETA on an interactive terminal, and
// plain, greppable lines (one per update, throttled) when output goes to a file, CI or a Slurm log.
import cliProgress from 'cli-progress';
import type { Logger } from '../logger.js';
import type { EpochRecord, TrainEvents } from './trainer.js';

/** What progress writes to: process.stderr, or a fake in tests. */
export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): unknown;
}

export interface ProgressOptions {
  readonly stream: ProgressStream;
  /** Draw bars (true) or print plain lines (false). The CLI passes "stdout and stderr are terminals". */
  readonly interactive: boolean;
  /** Milliseconds since some origin; injectable so plain-line ETAs are testable. */
  readonly now?: () => number;
  /** Plain mode: at most one line per bar in this interval (the last update of a bar always prints). */
  readonly minIntervalMs?: number;
}

export interface ProgressBar {
  /** Advances by `step` (default 1); `info` replaces the bar's trailing text (e.g. `val/auc 0.91`). */
  increment(info?: string, step?: number): void;
  update(value: number, info?: string): void;
  /** Changes the total, e.g. when early stopping ends training before the epoch budget. */
  setTotal(total: number): void;
  stop(): void;
}

export interface Progress {
  /** A bar named `label` counting `total` `unit`s (`epochs`, `folds`, `jobs`). */
  bar(label: string, total: number, unit: string): ProgressBar;
  /** Prints a line without breaking the bars. */
  log(message: string): void;
  /** Stops every bar and releases the terminal. */
  stop(): void;
}

const noopBar: ProgressBar = { increment: () => {}, update: () => {}, setTotal: () => {}, stop: () => {} };

/** Draws nothing (library default, tests). */
export const silentProgress: Progress = { bar: () => noopBar, log: () => {}, stop: () => {} };

export function createProgress(options: ProgressOptions): Progress {
  return options.interactive ? new TerminalProgress(options) : new PlainProgress(options);
}

/** A logger whose lines go through `progress.log`, so they print above live bars instead of through them. */
export function progressLogger(progress: Progress, base: Logger): Logger {
  return {
    debug: (m) => base.debug(m),
    info: (m) => progress.log(m),
    warn: (m) => progress.log(`warn: ${m}`),
    error: (m) => progress.log(`error: ${m}`),
  };
}

/** `1h02m`, `4m05s`, `12s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(rest).padStart(2, '0')}s`;
  return `${rest}s`;
}

class TerminalProgress implements Progress {
  private readonly multi: cliProgress.MultiBar;
  private readonly bars = new Set<cliProgress.SingleBar>();
  private readonly stream: ProgressStream;

  constructor(options: ProgressOptions) {
    this.stream = options.stream;
    this.multi = new cliProgress.MultiBar(
      {
        // cli-progress types want a NodeJS.WritableStream; it only calls write/isTTY/columns and readline cursor moves.
        stream: options.stream as unknown as NodeJS.WritableStream,
        format: '{label} |{bar}| {value}/{total} {unit} | {percentage}% | ETA {eta_formatted} | {info}',
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        etaBuffer: 20,
        autopadding: true,
        // cli-progress would otherwise swallow Ctrl-C (it installs SIGINT/SIGTERM handlers that only stop the bars).
        gracefulExit: false,
      },
      cliProgress.Presets.shades_classic,
    );
    // The redraw timer must never keep a finished process alive (a bar left open by an early-stopped fold).
    const unref = (): void => {
      (this.multi as unknown as { timer?: NodeJS.Timeout | null }).timer?.unref();
    };
    this.multi.on('start', unref);
    this.multi.on('update-post', unref);
    process.once('exit', () => this.stop());
  }

  bar(label: string, total: number, unit: string): ProgressBar {
    const bar = this.multi.create(total, 0, { label: label.padEnd(6), unit, info: '' });
    this.bars.add(bar);
    return {
      increment: (info, step = 1) => bar.increment(step, info === undefined ? {} : { info }),
      update: (value, info) => bar.update(value, info === undefined ? {} : { info }),
      setTotal: (newTotal) => bar.setTotal(newTotal),
      stop: () => {
        bar.stop();
        this.multi.remove(bar);
        this.bars.delete(bar);
      },
    };
  }

  log(message: string): void {
    if (this.bars.size === 0) {
      this.stream.write(message.endsWith('\n') ? message : `${message}\n`);
      return;
    }
    this.multi.log(message.endsWith('\n') ? message : `${message}\n`);
  }

  stop(): void {
    this.multi.stop();
    this.bars.clear();
  }
}

class PlainProgress implements Progress {
  private readonly now: () => number;
  private readonly minIntervalMs: number;

  constructor(private readonly options: ProgressOptions) {
    this.now = options.now ?? (() => Date.now());
    this.minIntervalMs = options.minIntervalMs ?? 0;
  }

  bar(label: string, total: number, unit: string): ProgressBar {
    const started = this.now();
    let value = 0;
    let currentTotal = total;
    let lastPrinted = Number.NEGATIVE_INFINITY;
    let stopped = false;
    const print = (info: string | undefined): void => {
      const at = this.now();
      const finished = value >= currentTotal;
      if (!finished && at - lastPrinted < this.minIntervalMs) return;
      lastPrinted = at;
      const elapsed = (at - started) / 1000;
      const eta = value > 0 ? (elapsed / value) * Math.max(currentTotal - value, 0) : Number.NaN;
      const percent = currentTotal > 0 ? Math.floor((100 * value) / currentTotal) : 100;
      const parts = [`[${label}] ${value}/${currentTotal} ${unit} ${percent}%`, `elapsed ${formatDuration(elapsed)}`];
      if (!finished) parts.push(`eta ${formatDuration(eta)}`);
      if (info) parts.push(info);
      this.options.stream.write(`${parts.join(' | ')}\n`);
    };
    return {
      increment: (info, step = 1) => {
        if (stopped) return;
        value += step;
        print(info);
      },
      update: (newValue, info) => {
        if (stopped) return;
        value = newValue;
        print(info);
      },
      setTotal: (newTotal) => {
        currentTotal = newTotal;
      },
      stop: () => {
        stopped = true;
      },
    };
  }

  log(message: string): void {
    this.options.stream.write(message.endsWith('\n') ? message : `${message}\n`);
  }

  stop(): void {}
}

/** Plain-mode stream that hands each line to a logger (stderr in the CLI, the job log in a worker). */
export function loggerStream(logger: Logger): ProgressStream {
  return { isTTY: false, write: (text: string) => logger.info(text.replace(/\n$/, '')) };
}

let sharedTerminal: Progress | undefined;

/** One set of bars per process, so folds and jobs stack instead of fighting over the cursor. */
function terminalProgress(): Progress {
  sharedTerminal ??= createProgress({ stream: process.stderr, interactive: true });
  return sharedTerminal;
}

export interface EpochProgressOptions {
  readonly fold: number;
  /** Draw a bar (terminal) or log one line per epoch (files, CI, Slurm). */
  readonly stdoutIsTTY: boolean;
  readonly logger: Logger;
  /** Explicit sink (tests); default: shared terminal bars or lines through `logger`. */
  readonly progress?: Progress;
}

/** The metrics worth a glance after each epoch, in this order. */
const EPOCH_SUMMARY_KEYS = ['train/loss', 'val/loss', 'val/auc', 'val/accuracy'];

/** `train/loss 0.6931 · val/auc 0.8125 · best`: the headline metrics of one epoch. */
export function epochSummary(record: EpochRecord): string {
  const parts = EPOCH_SUMMARY_KEYS.flatMap((key) => {
    const value = record.metrics[key];
    return typeof value === 'number' && Number.isFinite(value) ? [`${key} ${value.toFixed(4)}`] : [];
  });
  if (record.improved) parts.push('best');
  return parts.join(' · ');
}

/** Trainer events that drive an epochs bar for one fold (bars on a terminal, one line per epoch otherwise). */
export function epochProgress(options: EpochProgressOptions): TrainEvents {
  const progress = options.progress ?? (options.stdoutIsTTY && process.stderr.isTTY ? terminalProgress() : createProgress({ stream: loggerStream(options.logger), interactive: false }));
  let bar: ProgressBar | undefined;
  let label = `fold ${options.fold}`;
  return {
    onStageStart: (stage, index, count) => {
      if (count < 2) return;
      // Each stage of a multi-stage run gets its own epochs bar, named by the stage.
      bar?.stop();
      bar = undefined;
      label = `fold ${options.fold} ${stage} (${index + 1}/${count})`;
    },
    onEpochStart: (epoch, totalEpochs) => {
      if (bar) return;
      bar = progress.bar(label, totalEpochs, 'epochs');
      // A resumed fold starts past epoch 0: show where it is.
      if (epoch > 0) bar.update(epoch, 'resumed');
    },
    onEpochEnd: (record) => {
      bar?.update(record.epoch + 1, epochSummary(record));
    },
  };
}

export interface RunProgressOptions {
  /** Folds the run will train (for the folds bar's total and ETA). */
  readonly folds: number;
  readonly stdoutIsTTY: boolean;
  readonly logger: Logger;
  readonly progress?: Progress;
}

/** Progress of a k-fold run: a folds bar with ETA, plus an epochs bar per fold. */
export interface RunProgress {
  /** Trainer events for fold `fold` (its epochs bar). */
  forFold(fold: number): TrainEvents;
  /** Marks a fold finished (`info`: e.g. its test AUC, or `failed: <reason>`). */
  foldDone(fold: number, info?: string): void;
  stop(): void;
}

export function runProgress(options: RunProgressOptions): RunProgress {
  const progress = options.progress ?? (options.stdoutIsTTY && process.stderr.isTTY ? terminalProgress() : createProgress({ stream: loggerStream(options.logger), interactive: false }));
  const folds = progress.bar('folds', options.folds, 'folds');
  return {
    forFold: (fold) => epochProgress({ fold, stdoutIsTTY: options.stdoutIsTTY, logger: options.logger, progress }),
    foldDone: (fold, info) => folds.increment(`fold ${fold}${info ? ` ${info}` : ''}`),
    stop: () => folds.stop(),
  };
}
