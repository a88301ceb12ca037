// The two-step signal lifecycle (docs/reliability.md#signals): the first SIGINT/SIGTERM only requests a stop (the
// trainer and the fold loop poll it), the second exits at once with 128 + the signal number.
import { afterEach, describe, expect, it } from 'vitest';
import { InterruptedError } from '../../../src/core/errors.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { clearStopRequest, installSignalHandlers, stopRequested, throwIfStopped } from '../../../src/core/engine/lifecycle.js';

afterEach(() => clearStopRequest());

describe('signal lifecycle', () => {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal}: the first requests a stop, the second exits ${code} at once`, () => {
      const exits: number[] = [];
      const firsts: string[] = [];
      const logger = new MemoryLogger();
      const remove = installSignalHandlers({ logger, exit: (c) => exits.push(c), onFirst: (s) => firsts.push(s) });
      try {
        expect(() => throwIfStopped('here')).not.toThrow();
        process.emit(signal);
        expect(stopRequested()).toBe(signal);
        expect(firsts).toEqual([signal]);
        expect(exits).toEqual([]);
        let thrown: unknown;
        try {
          throwIfStopped('before fold 1 epoch 3');
        } catch (error) {
          thrown = error;
        }
        expect(thrown).toBeInstanceOf(InterruptedError);
        expect((thrown as InterruptedError).exitCode).toBe(code);
        expect((thrown as InterruptedError).message).toBe(`stopped by ${signal} before fold 1 epoch 3.`);
        process.emit(signal);
        expect(exits).toEqual([code]);
        expect(firsts).toEqual([signal]);
      } finally {
        remove();
      }
      expect(process.listenerCount(signal)).toBe(0);
    });
  }
});
