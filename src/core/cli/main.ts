// The milkit CLI: commander program whose subcommands are the modules in ./commands (each exports
// `register`). Errors print one line per cause and exit with the error class's code; stacks only with --debug.
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { MilkitError, renderError } from '../errors.js';
import { asStorageError } from '../io/storage-errors.js';
import { consoleLogger } from '../logger.js';
import type { Services } from '../services.js';
import type { PluginManifest } from '../../registry/registry.js';
import { createApp, loadActionCode, type CliIo, type RegisterCommand } from './app.js';

export interface MainOptions {
  readonly manifest: PluginManifest;
  readonly io?: CliIo;
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Services to use instead of the real ones (tests: a failing file system, a recording tracker...). */
  readonly services?: Partial<Omit<Services, 'manifest' | 'logger'>>;
}

const processIo: CliIo = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  stdoutIsTTY: Boolean(process.stdout.isTTY),
};

/** The installed package's version: `milkit/package.json` by name resolves from src/ and from dist/ alike. */
export function packageVersion(): string {
  const manifest = createRequire(import.meta.url)('milkit/package.json') as { version?: unknown };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
}

/** Builds the program with every command module registered. */
export async function buildProgram(options: MainOptions): Promise<Command> {
  const io = options.io ?? processIo;
  const debug = process.argv.includes('--debug');
  const logger = consoleLogger(debug ? 'debug' : 'info', (line) => io.err(line));
  // The composition root: every service of this process is wired here, once — in the preAction hook below, so
  // that `--help` and usage errors never load the registry, zod and the trackers (BENCHMARKS.md "coldstart").
  let services: Services | undefined;
  const app = createApp(
    () => {
      if (!services) throw new Error('app.services was read before a command action started (read it inside the action, not at registration).');
      return services;
    },
    logger,
    io,
    options.cwd ?? process.cwd(),
    options.env ?? process.env,
  );
  const program = new Command('milkit')
    .description('Multiple-instance learning experiments on whole-slide images: typed configs, plugins, CV, sweeps, MLflow.')
    .version(packageVersion(), '-V, --version', 'print the milkit version')
    .option('--debug', 'print stack traces and debug logs')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    // Runs before the action of any (sub)command, after commander has parsed and validated its arguments.
    .hook('preAction', async (_program, command) => {
      if (services) return;
      const names: string[] = [];
      for (let at: Command | null = command; at?.parent; at = at.parent) names.unshift(at.name());
      const { createServices } = await loadActionCode(names.join(' '), () => import('../services.js'));
      services = createServices({ manifest: options.manifest, logger }, options.services);
    });
  // .ts when running the sources (tests, `npm run dev`), .js when running the build in dist/.
  const here = dirname(fileURLToPath(import.meta.url));
  const files = readdirSync(join(here, 'commands')).filter((f) => /^[a-z][a-z0-9-]*\.(ts|js)$/.test(f)).sort();
  for (const file of files) {
    let module: { register?: RegisterCommand };
    try {
      module = (await import(pathToFileURL(join(here, 'commands', file)).href)) as { register?: RegisterCommand };
    } catch (cause) {
      // One broken command module must not take the whole CLI down: its command reports the failure when used.
      const name = file.replace(/\.(ts|js)$/, '');
      program.command(name, { hidden: true }).allowUnknownOption().argument('[args...]').action(() => {
        throw new MilkitError('command-unavailable', `the "${name}" command failed to load.`, { hint: 'This is a bug in milkit; run with --debug for details.', cause });
      });
      continue;
    }
    module.register?.(program, app);
  }
  return program;
}

/** Runs the CLI; returns the exit code instead of exiting, so tests can call it. */
export async function main(argv: readonly string[], options: MainOptions): Promise<number> {
  const io = options.io ?? processIo;
  const debug = argv.includes('--debug');
  try {
    const program = await buildProgram(options);
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    // A file-system refusal that no writer translated still names its path, cause and fix (never a bare ENOSPC).
    error = asStorageError(error);
    io.err(renderError(error, debug));
    if (!debug && !(error instanceof MilkitError)) io.err('(run with --debug for the stack trace)');
    return error instanceof MilkitError ? error.exitCode : 1;
  }
}
