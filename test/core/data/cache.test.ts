import { describe, expect, it } from 'vitest';
import { ByteLruCache } from '../../../src/core/data/cache.js';

describe('core/data/cache', () => {
  const sized = (bytes: number): Uint8Array => new Uint8Array(bytes);

  it('evicts least recently used entries to stay within its byte budget', () => {
    const cache = new ByteLruCache<Uint8Array>(100, (v) => v.byteLength);
    cache.set('a', sized(40));
    cache.set('b', sized(40));
    expect(cache.get('a')).toBeDefined(); // a is now the most recent
    cache.set('c', sized(40)); // evicts b
    expect(cache.has('b')).toBe(false);
    expect(cache.has('a')).toBe(true);
    expect(cache.has('c')).toBe(true);
    expect(cache.bytes).toBe(80);
  });

  it('keeps nothing larger than the whole budget but still hands it out', async () => {
    const cache = new ByteLruCache<Uint8Array>(100, (v) => v.byteLength);
    cache.set('a', sized(10));
    expect(cache.set('huge', sized(101))).toBe(false);
    expect(cache.has('a')).toBe(true);
    const loaded = await cache.getOrLoad('big', () => Promise.resolve(sized(500)));
    expect(loaded.byteLength).toBe(500);
    expect(cache.has('big')).toBe(false);
  });

  it('loads a key once for concurrent callers and re-loads after a failure', async () => {
    const cache = new ByteLruCache<Uint8Array>(1000, (v) => v.byteLength);
    let calls = 0;
    const load = async (): Promise<Uint8Array> => {
      calls += 1;
      await new Promise((r) => setTimeout(r, 5));
      return sized(10);
    };
    const [x, y] = await Promise.all([cache.getOrLoad('k', load), cache.getOrLoad('k', load)]);
    expect(x).toBe(y);
    expect(calls).toBe(1);
    await expect(cache.getOrLoad('bad', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await cache.getOrLoad('bad', () => Promise.resolve(sized(1)))).toHaveLength(1);
  });

  it('holds a cohort far larger than its budget one window at a time', () => {
    // 1,000 slides of 1 MB with a 16 MB budget never hold more than 16 MB.
    const cache = new ByteLruCache<Uint8Array>(16 * 2 ** 20, (v) => v.byteLength);
    let peak = 0;
    for (let i = 0; i < 1000; i += 1) {
      cache.set(`s${i}`, sized(2 ** 20));
      peak = Math.max(peak, cache.bytes);
    }
    expect(peak).toBe(16 * 2 ** 20);
    expect(cache.size).toBe(16);
  });
});
