// Bag sources kept alive between the jobs of a long-lived process (a `milkit worker --serve`), keyed by everything
// that defines their contents, so the folds and cells of a sweep that share a dataset generate or read it once per
// worker instead of once per job. Synthetic data is the extreme case: regenerating 60 slides × 500 × 512 Gaussian
// features costs seconds, often more than training a fold. Sources are read-only, which makes sharing safe.
import type { BagSource } from '../../registry/contracts/data.js';

export class SourcePool {
  // Insertion order = least recently used first.
  private readonly entries = new Map<string, Promise<BagSource>>();

  /** `capacity` sources stay open (each bounded by its own `data.cacheBytes`); older ones are closed. */
  constructor(readonly capacity = 1) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`SourcePool capacity must be a whole number ≥ 1 (got ${capacity})`);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The open source for `key`, or a new one from `create` (which then stays open until evicted or `close`). */
  async get(key: string, create: () => Promise<BagSource>): Promise<BagSource> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const created = create();
    this.entries.set(key, created);
    // A source that failed to open is not kept: the next job retries (and reports its own error).
    created.catch(() => {
      if (this.entries.get(key) === created) this.entries.delete(key);
    });
    while (this.entries.size > this.capacity) {
      const [oldestKey, oldest] = this.entries.entries().next().value as [string, Promise<BagSource>];
      this.entries.delete(oldestKey);
      await oldest.then((source) => source.close?.()).catch(() => undefined);
    }
    return created;
  }

  /** Closes every source. */
  async close(): Promise<void> {
    const open = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(open.map((source) => source.then((s) => s.close?.()).catch(() => undefined)));
  }
}
