import { describe, expect, it } from 'vitest';
import { median, summarizeRepeats } from '../../../src/core/stats/repeats.js';

describe('stats/summarizeRepeats', () => {
  it('gives the mean and sample std of the per-repeat means', () => {
    // repeat 0: (0.8 + 0.9 + 0.7)/3 = 0.8; repeat 1: (0.6 + 0.7 + 0.8)/3 = 0.7 → mean 0.75, std √(2·0.05²/1) = 0.0707107
    const values = [0.8, 0.9, 0.7, 0.6, 0.7, 0.8].map((value, i) => ({ repeat: Math.floor(i / 3), value }));
    const summary = summarizeRepeats(values);
    expect(summary.mean).toBeCloseTo(0.75, 14);
    expect(summary.std).toBeCloseTo(Math.SQRT2 * 0.05, 14);
    expect(summary.repeats).toBe(2);
    expect([...summary.perRepeat.values()].map((v) => Number(v.toFixed(12)))).toEqual([0.8, 0.7]);
  });

  it('skips missing fold values and has no std with one repeat', () => {
    expect(summarizeRepeats([{ repeat: 0, value: 0.5 }, { repeat: 0, value: null }, { repeat: 0, value: 0.7 }])).toMatchObject({ mean: 0.6, std: null, repeats: 1 });
    expect(summarizeRepeats([])).toMatchObject({ mean: null, std: null, repeats: 0 });
  });
});

describe('stats/median', () => {
  it.each([[[3, 1, 2], 2], [[4, 1, 3, 2], 2.5], [[], Number.NaN]])('median of %j is %s', (values, expected) => {
    expect(median(values)).toBe(expected);
  });
});
