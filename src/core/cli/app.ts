// What every CLI command receives: the process's services (the composition root, src/core/services.ts, built
// once by main.ts), shortcuts to the ones most commands use, and output streams that tests can capture.
// The services are built just before a command's action runs, not when commands register: building them loads
// the plugin registry, zod and the trackers, which `milkit --help` must not pay (BENCHMARKS.md "coldstart").
import type { Command } from 'commander';
import { MilkitError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import type { Registry } from '../../registry/registry.js';

export interface CliIo {
  /** Results (tables, JSON, resolved configs). */
  out(text: string): void;
  /** Diagnostics and progress. */
  err(text: string): void;
  readonly stdoutIsTTY: boolean;
}

export interface CliApp {
  /** Available inside command actions (main.ts builds them in a preAction hook); reading it earlier throws. */
  readonly services: Services;
  readonly logger: Logger;
  readonly io: CliIo;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** A fresh registry over the built-in manifest (user plugins are added per experiment). */
  createRegistry(): Registry;
}

/** A command module in src/core/cli/commands/ exports `register`. */
export type RegisterCommand = (program: Command, app: CliApp) => void;

/**
 * Loads the code a command's action needs (`import()` inside the action, so registering the command stays cheap).
 * A module that fails to load is a broken install or a bug, reported as it was when command modules imported
 * that code at their top: the command failed to load (main.ts).
 */
export async function loadActionCode<T>(command: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (cause) {
    throw new MilkitError('command-unavailable', `the "${command}" command failed to load.`, { hint: 'This is a bug in milkit; run with --debug for details.', cause });
  }
}

/** `services` is called on every read of `app.services`; main.ts passes one that returns the built services. */
export function createApp(services: () => Services, logger: Logger, io: CliIo, cwd: string, env: Readonly<Record<string, string | undefined>>): CliApp {
  return {
    get services() {
      return services();
    },
    logger,
    io,
    cwd,
    env,
    createRegistry: () => services().createRegistry(),
  };
}
