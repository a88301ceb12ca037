// What every CLI command receives: the plugin manifest (handed in by the composition root in bin/, since
// core never imports plugins by path), a logger, and output streams that tests can capture.
import type { Command } from 'commander';
import type { Logger } from '../logger.js';
import { Registry, type PluginManifest } from '../../registry/registry.js';

export interface CliIo {
  /** Results (tables, JSON, resolved configs). */
  out(text: string): void;
  /** Diagnostics and progress. */
  err(text: string): void;
  readonly stdoutIsTTY: boolean;
}

export interface CliApp {
  readonly manifest: PluginManifest;
  readonly logger: Logger;
  readonly io: CliIo;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** A fresh registry over the built-in manifest (user plugins are added per experiment). */
  createRegistry(): Registry;
}

/** A command module in src/core/cli/commands/ exports `register`. */
export type RegisterCommand = (program: Command, app: CliApp) => void;

export function createApp(manifest: PluginManifest, logger: Logger, io: CliIo, cwd: string, env: Readonly<Record<string, string | undefined>>): CliApp {
  return { manifest, logger, io, cwd, env, createRegistry: () => new Registry(manifest) };
}
