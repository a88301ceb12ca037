// The one composition root: a tsyringe container holding the registry and shared services.
// Each run and fold gets a child container so sweep cells share no singletons.
import { container as globalContainer, type DependencyContainer } from 'tsyringe';
import type { Logger } from '../core/logger.js';
import { Registry, type PluginManifest } from './registry.js';
import { TOKENS, systemClock, type Clock } from './tokens.js';

export interface ContainerOptions {
  readonly manifest: PluginManifest;
  readonly logger: Logger;
  readonly clock?: Clock;
}

/** A fresh container (never the global one) with Registry, Logger and Clock registered by token. */
export function createContainer(options: ContainerOptions): DependencyContainer {
  const root = globalContainer.createChildContainer();
  root.registerInstance(TOKENS.Registry, new Registry(options.manifest));
  root.registerInstance(TOKENS.Logger, options.logger);
  root.registerInstance(TOKENS.Clock, options.clock ?? systemClock);
  return root;
}
