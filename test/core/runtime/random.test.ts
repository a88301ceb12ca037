import { describe, expect, it } from 'vitest';
import { Rng } from '../../../src/core/runtime/random.js';

describe('runtime/random', () => {
  it('gives the same stream for the same seed and a different one for another seed', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const xs = [a.next(), a.next(), a.next()];
    expect([b.next(), b.next(), b.next()]).toEqual(xs);
    expect([c.next(), c.next(), c.next()]).not.toEqual(xs);
  });

  it('forks named streams that do not depend on what the parent drew before', () => {
    const a = new Rng(1);
    const b = new Rng(1);
    b.next();
    b.next();
    expect(a.fork('epoch-3').next()).toBe(b.fork('epoch-3').next());
    expect(a.fork('epoch-3').next()).not.toBe(a.fork('epoch-4').next());
  });

  it('continues exactly from a saved state', () => {
    const a = new Rng('s');
    a.next();
    const state = a.state();
    const expected = [a.next(), a.next()];
    const restored = new Rng('s', state);
    expect([restored.next(), restored.next()]).toEqual(expected);
  });

  it('shuffles into a permutation and draws normals with unit variance', () => {
    const rng = new Rng(7);
    const perm = rng.shuffle([...Array(50).keys()]);
    expect([...perm].sort((x, y) => x - y)).toEqual([...Array(50).keys()]);
    const normals = rng.normalArray(20000);
    const mean = normals.reduce((s, v) => s + v, 0) / normals.length;
    const variance = normals.reduce((s, v) => s + (v - mean) ** 2, 0) / normals.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(variance).toBeGreaterThan(0.95);
    expect(variance).toBeLessThan(1.05);
  });
});
