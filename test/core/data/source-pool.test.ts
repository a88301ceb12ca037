import { describe, expect, it } from 'vitest';
import { SourcePool } from '../../../src/core/data/source-pool.js';
import type { BagSource } from '../../../src/registry/contracts/data.js';

function fakeSource(name: string, closed: string[]): BagSource {
  return { slides: [], featureDim: 1, classNames: [name], load: () => Promise.reject(new Error('unused')), close: () => { closed.push(name); return Promise.resolve(); } } as unknown as BagSource;
}

describe('SourcePool', () => {
  it('opens a source once per key and closes the least recently used one beyond its capacity', async () => {
    const closed: string[] = [];
    const opened: string[] = [];
    const pool = new SourcePool(2);
    const open = (name: string) => () => {
      opened.push(name);
      return Promise.resolve(fakeSource(name, closed));
    };
    const a = await pool.get('a', open('a'));
    expect(await pool.get('a', open('a'))).toBe(a);
    await pool.get('b', open('b'));
    await pool.get('a', open('a')); // a is now the most recently used
    await pool.get('c', open('c'));
    expect(opened).toEqual(['a', 'b', 'c']);
    expect(closed).toEqual(['b']);
    expect(pool.size).toBe(2);
    await pool.close();
    expect(closed.sort()).toEqual(['a', 'b', 'c']);
    expect(pool.size).toBe(0);
  });

  it('does not keep a source that failed to open, so the next job tries again', async () => {
    const pool = new SourcePool(1);
    await expect(pool.get('x', () => Promise.reject(new Error('corrupt features.h5')))).rejects.toThrow('corrupt features.h5');
    await Promise.resolve();
    expect(pool.size).toBe(0);
    const source = await pool.get('x', () => Promise.resolve(fakeSource('x', [])));
    expect(source.classNames).toEqual(['x']);
  });
});
