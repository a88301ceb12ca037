// The stop request of this process (docs/reliability.md#signals). The first SIGINT/SIGTERM only sets a flag; the
// trainer polls it between steps and the run loop between folds, so the run stops at a safe point, marks its MLflow
// runs KILLED and writes what it finished. A second signal exits at once: every file milkit writes is replaced
// atomically (temporary file + rename), so even then nothing is left half-written, and `--resume` picks up.
import { InterruptedError, SIGNAL_EXIT_CODES, type StopSignal } from '../errors.js';
import type { Logger } from '../logger.js';

let requested: StopSignal | undefined;

/** Asks the running experiment to stop at its next safe point (the first request wins). */
export function requestStop(signal: StopSignal): void {
  requested ??= signal;
}

/** The signal that asked this process to stop, if any. */
export function stopRequested(): StopSignal | undefined {
  return requested;
}

/** Forgets a stop request (tests that run several experiments in one process). */
export function clearStopRequest(): void {
  requested = undefined;
}

/** Throws InterruptedError when a stop was requested; `where` names the safe point for the log. */
export function throwIfStopped(where: string): void {
  if (requested) throw new InterruptedError(requested, `stopped by ${requested} ${where}.`);
}

export interface SignalHandlerOptions {
  readonly logger: Logger;
  /** What the first signal means to the user (printed once). */
  readonly firstMessage?: (signal: StopSignal) => string;
  /** Called on the first signal after the stop is requested (a sweep aborts its executor here). */
  readonly onFirst?: (signal: StopSignal) => void;
  /** How to leave at once on the second signal (tests replace process.exit). */
  readonly exit?: (code: number) => void;
}

/**
 * Installs SIGINT and SIGTERM handlers for the duration of a command; returns their removal. While installed,
 * Node's default (die at once) is replaced by the two-step lifecycle above.
 */
export function installSignalHandlers(options: SignalHandlerOptions): () => void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const handler = (signal: StopSignal): void => {
    if (requested) {
      options.logger.warn(`${signal} again: exiting now. Finished folds and checkpoints are on disk; --resume continues.`);
      exit(SIGNAL_EXIT_CODES[signal]);
      return;
    }
    requestStop(signal);
    options.logger.warn(options.firstMessage?.(signal) ?? `${signal}: stopping after the current step; finished folds are kept (send it again to exit at once).`);
    options.onFirst?.(signal);
  };
  const onInt = (): void => handler('SIGINT');
  const onTerm = (): void => handler('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return () => {
    process.removeListener('SIGINT', onInt);
    process.removeListener('SIGTERM', onTerm);
  };
}
