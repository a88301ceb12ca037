// Seeded randomness for everything milkit draws: splits, sampling, initialisation, dropout masks, noise.
// One root seed fans out into named, independent streams so adding a draw in one place never shifts another.
import seedrandom from 'seedrandom';

export type RngState = seedrandom.State.Arc4;

/** A deterministic random stream (ARC4 via seedrandom) whose state can be saved and restored. */
export class Rng {
  private prng: seedrandom.StatefulPRNG<seedrandom.State.Arc4>;
  readonly seedLabel: string;

  constructor(seed: number | string, state?: RngState) {
    this.seedLabel = String(seed);
    this.prng = seedrandom(this.seedLabel, { state: state ?? true }) as seedrandom.StatefulPRNG<seedrandom.State.Arc4>;
  }

  /** A child stream named `label`: same root seed and label give the same stream, whatever was drawn before. */
  fork(label: string | number): Rng {
    return new Rng(`${this.seedLabel}/${label}`);
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.prng();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.prng() * n);
  }

  /** A 31-bit integer, for seeding tfjs ops that take a numeric seed. */
  seed(): number {
    return this.prng.int32() >>> 1;
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.prng();
    const v = this.prng();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** In-place Fisher-Yates shuffle; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i -= 1) {
      const j = this.int(i + 1);
      const tmp = items[i] as T;
      items[i] = items[j] as T;
      items[j] = tmp;
    }
    return items;
  }

  /** Fills a Float32Array with U(lo, hi). */
  uniformArray(size: number, lo = 0, hi = 1): Float32Array {
    const out = new Float32Array(size);
    for (let i = 0; i < size; i += 1) out[i] = lo + (hi - lo) * this.prng();
    return out;
  }

  /** Fills a Float32Array with N(mean, std^2). */
  normalArray(size: number, mean = 0, std = 1): Float32Array {
    const out = new Float32Array(size);
    for (let i = 0; i < size; i += 1) out[i] = mean + std * this.normal();
    return out;
  }

  /** Snapshot of the stream, for checkpoints: `new Rng(seedLabel, state)` continues exactly here. */
  state(): RngState {
    return this.prng.state();
  }
}
