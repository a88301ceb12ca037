// Injection tokens: services are registered by token with factories/values (esbuild-based runners emit
// no decorator metadata, so nothing relies on design:paramtypes).
import type { InjectionToken } from 'tsyringe';
import type { Logger } from '../core/logger.js';
import type { Registry } from './registry.js';
import type { Tracker } from './contracts/tracker.js';

export const TOKENS = {
  Registry: Symbol.for('milkit.Registry') as InjectionToken<Registry>,
  Logger: Symbol.for('milkit.Logger') as InjectionToken<Logger>,
  Tracker: Symbol.for('milkit.Tracker') as InjectionToken<Tracker>,
  Clock: Symbol.for('milkit.Clock') as InjectionToken<Clock>,
} as const;

export interface Clock {
  /** Milliseconds since the epoch (MLflow timestamps). */
  now(): number;
  /** Monotonic milliseconds (durations). */
  monotonic(): number;
}

export const systemClock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };
