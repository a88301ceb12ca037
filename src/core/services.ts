// The composition root (docs/architecture.md, "Composition root"): the one place where the services a command
// needs are wired — plugin registry, logger, clock, file system, trackers and executors. The CLI builds it once
// per process (src/core/cli/main.ts); a test swaps any service by passing an override. A plain typed object, not a
// DI container: the esbuild-based runners (tsx, vitest) emit no decorator metadata, so a container could only
// register by token, which is this object with casts.
import { nodeFileSystem, type FileSystem } from './io/file-system.js';
import type { Logger } from './logger.js';
import { createTracker, type CreateTrackerContext } from './tracking/create-tracker.js';
import type { TrackingSection } from './tracking/schema.js';
import { Registry, type PluginManifest, type ResolvedPlugin } from '../registry/registry.js';
import type { Executor, ExecutorContext } from '../registry/contracts/executor.js';
import type { Tracker } from '../registry/contracts/tracker.js';

export interface Clock {
  /** Milliseconds since the epoch (MLflow timestamps, progress ETAs). */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export { nodeFileSystem, type FileSystem } from './io/file-system.js';

export interface Services {
  /** Built-in plugins (handed in by bin/, since core never imports plugins by path). */
  readonly manifest: PluginManifest;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly fs: FileSystem;
  /** A fresh registry over the manifest (user plugins are added per experiment, so each command gets its own). */
  createRegistry(): Registry;
  /** The tracker of a `tracking:` section (the local record, plus a server mirror for http(s) URIs). */
  createTracker(section: TrackingSection, ctx: CreateTrackerContext): Promise<Tracker>;
  /** An executor from its resolved slot (`local`, `slurm`, ...). */
  createExecutor(registry: Registry, resolved: ResolvedPlugin<'executor'>, ctx: ExecutorContext): Executor;
}

/** What the root cannot make up: the manifest and the logger. */
export type ServiceRoots = Pick<Services, 'manifest' | 'logger'>;

/** The services of one process: the real ones, with `overrides` in their place (tests inject fakes here). */
export function createServices(roots: ServiceRoots, overrides: Partial<Omit<Services, keyof ServiceRoots>> = {}): Services {
  return {
    manifest: roots.manifest,
    logger: roots.logger,
    clock: overrides.clock ?? systemClock,
    fs: overrides.fs ?? nodeFileSystem,
    createRegistry: overrides.createRegistry ?? (() => new Registry(roots.manifest)),
    // The local store writes through the same seam as everything else (a full disk fails it too).
    createTracker: overrides.createTracker ?? ((section, ctx) => createTracker(section, { fs: overrides.fs ?? nodeFileSystem, ...ctx })),
    createExecutor: overrides.createExecutor ?? ((registry, resolved, ctx) => registry.create(resolved, ctx)),
  };
}
