// A least-recently-used cache bounded by bytes (not entries), so `data.cacheBytes` caps memory whatever the
// bag sizes are: 1,000 slides of 20k×1024 float32 never need to be resident at once.

/** Byte-bounded LRU map. An entry larger than the whole budget is returned to the caller but not kept. */
export class ByteLruCache<V> {
  // Map iteration order is insertion order: the first key is the least recently used one.
  private readonly entries = new Map<string, { value: V; bytes: number }>();
  private used = 0;

  constructor(
    readonly capacityBytes: number,
    private readonly sizeOf: (value: V) => number,
  ) {
    if (!(capacityBytes >= 0)) throw new RangeError(`cache capacity must be ≥ 0 bytes (got ${capacityBytes})`);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Bytes currently held. */
  get bytes(): number {
    return this.used;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** The cached value, marked most recently used; undefined on a miss. */
  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Stores `value`, evicting least recently used entries until it fits; returns whether it was kept. */
  set(key: string, value: V): boolean {
    this.delete(key);
    const bytes = this.sizeOf(value);
    if (bytes > this.capacityBytes) return false;
    while (this.used + bytes > this.capacityBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.delete(oldest.value);
    }
    this.entries.set(key, { value, bytes });
    this.used += bytes;
    return true;
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.used -= entry.bytes;
  }

  clear(): void {
    this.entries.clear();
    this.used = 0;
  }

  /** Returns the cached value or loads, stores and returns it; concurrent loads of one key share a promise. */
  async getOrLoad(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const pending = this.inflight.get(key);
    if (pending !== undefined) return pending;
    const promise = load().then(
      (value) => {
        this.inflight.delete(key);
        this.set(key, value);
        return value;
      },
      (error: unknown) => {
        this.inflight.delete(key);
        throw error;
      },
    );
    this.inflight.set(key, promise);
    return promise;
  }

  private readonly inflight = new Map<string, Promise<V>>();
}

/** Bytes held by a bag's typed arrays. */
export function bagBytes(bag: { features: Float32Array; coords?: Float32Array; thumbs?: Uint8Array; instanceLabels?: Uint8Array }): number {
  return bag.features.byteLength + (bag.coords?.byteLength ?? 0) + (bag.thumbs?.byteLength ?? 0) + (bag.instanceLabels?.byteLength ?? 0);
}
