import { describe, expect, it } from 'vitest';
import { simulateNullTables } from '../../bench/stats.bench.js';

describe('stats null rate (the bench simulation, small and seeded)', () => {
  it('marks about 5 % of same-distribution tables and the uncorrected test far more', () => {
    const rates = simulateNullTables({ tables: 400, folds: 3, repeats: 3, cases: 40, sharedTraining: 0.5, skillMean: 0.8, skillSd: 0.5, bootstrapResamples: 0, seed: 'stats-null-test' });
    expect(rates.marked / rates.tables).toBeGreaterThanOrEqual(0.02);
    expect(rates.marked / rates.tables).toBeLessThanOrEqual(0.085);
    // Without the n_test/n_train term the same tables are "significant" many times more often.
    expect(rates.uncorrected / rates.tables).toBeGreaterThan(0.2);
    expect(Math.abs(rates.foldCorrelation - rates.expectedCorrelation)).toBeLessThan(0.05);
  });
});
