// MNIST_BENCH_EPOCHS parsing for the MNIST-bags bench (test/bench/mnist.bench.ts): one count, or one per training-set size.
import { describe, expect, it } from 'vitest';
import { epochSchedule } from './mnist.bench.js';

describe('mnist bench epoch schedule', () => {
  it('uses the fallback when unset and one count for every size when given a number', () => {
    expect(epochSchedule(undefined, 20)(500)).toBe(20);
    expect(epochSchedule(' ', 20)(50)).toBe(20);
    const ten = epochSchedule('10', 20);
    expect([ten(50), ten(500)]).toEqual([10, 10]);
  });

  it('reads bags:epochs pairs, sizes not listed falling back', () => {
    const schedule = epochSchedule('50:10, 150:3,500:1', 20);
    expect([schedule(50), schedule(150), schedule(500), schedule(300)]).toEqual([10, 3, 1, 20]);
  });

  it('refuses a malformed pair or zero epochs, naming the variable', () => {
    expect(() => epochSchedule('50-10', 20)).toThrow(/MNIST_BENCH_EPOCHS: "50-10"/);
    expect(() => epochSchedule('50:0', 20)).toThrow(/MNIST_BENCH_EPOCHS/);
  });
});
