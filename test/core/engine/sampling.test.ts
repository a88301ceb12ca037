import { describe, expect, it } from 'vitest';
import { epochOrder } from '../../../src/core/engine/sampling.js';
import { DataError } from '../../../src/core/errors.js';
import { Rng } from '../../../src/core/runtime/random.js';

// 90 bags of class 0, then 10 of class 1, then 20 of class 2.
const labels = Array.from({ length: 120 }, (_, i) => (i < 90 ? 0 : i < 100 ? 1 : 2));

describe('core/engine/sampling epochOrder', () => {
  it('shuffles: every bag exactly once, in a seed-determined order', () => {
    const order = epochOrder(labels, { balanced: false, rng: new Rng(1) });
    expect([...order].sort((a, b) => a - b)).toEqual(labels.map((_, i) => i));
    expect(order).not.toEqual(labels.map((_, i) => i));
    expect(epochOrder(labels, { balanced: false, rng: new Rng(1) })).toEqual(order);
    expect(epochOrder(labels, { balanced: false, rng: new Rng(2) })).not.toEqual(order);
  });

  it('balanced: N draws with replacement, the same for the same seed, different for another', () => {
    const order = epochOrder(labels, { balanced: true, rng: new Rng('fold0/epoch3') });
    expect(order).toHaveLength(labels.length);
    expect(order.every((i) => Number.isInteger(i) && i >= 0 && i < labels.length)).toBe(true);
    expect(new Set(order).size).toBeLessThan(labels.length); // with replacement: repeats occur
    expect(epochOrder(labels, { balanced: true, rng: new Rng('fold0/epoch3') })).toEqual(order);
    expect(epochOrder(labels, { balanced: true, rng: new Rng('fold0/epoch4') })).not.toEqual(order);
  });

  it('balanced: each class is drawn with probability 1/C, uniformly within the class', () => {
    // Weights N/N_c give class c total weight N, so P(class c) = 1/3 although class 0 has 75% of the bags.
    // Over 500 epochs x 120 draws the binomial s.d. of a class share is sqrt(1/3 * 2/3 / 60000) ~ 0.0019.
    const rng = new Rng('balance');
    const perBag = new Array<number>(labels.length).fill(0);
    const perClass = [0, 0, 0];
    const epochs = 500;
    for (let e = 0; e < epochs; e += 1) {
      for (const i of epochOrder(labels, { balanced: true, rng: rng.fork(e) })) {
        perBag[i] = (perBag[i] as number) + 1;
        perClass[labels[i] as number] = (perClass[labels[i] as number] as number) + 1;
      }
    }
    const draws = epochs * labels.length;
    for (const count of perClass) expect(Math.abs(count / draws - 1 / 3)).toBeLessThan(0.01);
    // Within class 1 (10 bags) each bag gets 1/30 of the draws: expected 2000, s.d. ~ 44.
    for (let i = 90; i < 100; i += 1) expect(Math.abs((perBag[i] as number) - draws / 30)).toBeLessThan(250);
    // The unbalanced shuffle would give class 0 a 75% share instead.
    const shuffled = epochOrder(labels, { balanced: false, rng: new Rng(3) }).filter((i) => labels[i] === 0).length;
    expect(shuffled / labels.length).toBe(0.75);
  });

  it('a single class degenerates to uniform draws with replacement', () => {
    const order = epochOrder([1, 1, 1, 1], { balanced: true, rng: new Rng(5) });
    expect(order).toHaveLength(4);
    expect(order.every((i) => i >= 0 && i < 4)).toBe(true);
  });

  it('handles an empty training set and rejects non-index labels', () => {
    expect(epochOrder([], { balanced: true, rng: new Rng(0) })).toEqual([]);
    expect(() => epochOrder([0, 1.5], { balanced: true, rng: new Rng(0) })).toThrow(DataError);
    expect(() => epochOrder([0, -1], { balanced: false, rng: new Rng(0) })).toThrow(
      'bag 1 has label -1; sampling needs class indices 0, 1, 2, ...',
    );
  });
});
