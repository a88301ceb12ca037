// What the MNIST bag datasets (mnist-bags, mnist-hierarchical) share: disjoint train/test digit pools, Ilse et
// al.'s bag length, and the normalisation of a digit (docs/methods/abmil.md#mnist-bags).
import { MNIST_PIXELS, Rng, type MnistDigits } from 'milkit';

/** Mean and standard deviation of MNIST pixels in [0, 1] (torchvision's Normalize in the authors' loader). */
export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

/** Splits every digit class into disjoint train/test pools (seeded shuffle per class). */
export function digitPools(labels: Uint8Array, testFraction: number, rng: Rng): { train: number[]; test: number[] } {
  const train: number[] = [];
  const test: number[] = [];
  for (let digit = 0; digit < 10; digit += 1) {
    const rows = rng.fork(`pool/${digit}`).shuffle(Array.from(labels.keys()).filter((i) => labels[i] === digit));
    const nTest = Math.round(rows.length * testFraction);
    test.push(...rows.slice(0, nTest));
    train.push(...rows.slice(nTest));
  }
  return { train: train.sort((a, b) => a - b), test: test.sort((a, b) => a - b) };
}

/** |bag| = max(1, trunc(μ + σ·ε)), ε ~ N(0, 1) (the authors' trunc of a normal draw, clipped below at 1). */
export function bagLength(mean: number, std: number, rng: Rng): number {
  return Math.max(1, Math.trunc(mean + std * rng.normal()));
}

/** Writes digit `row`, normalised (x − 0.1307) / 0.3081, as row `at` of `out` [*, 784]. */
export function writeNormalisedDigit(digits: MnistDigits, row: number, out: Float32Array, at: number): void {
  for (let p = 0; p < MNIST_PIXELS; p += 1) out[at * MNIST_PIXELS + p] = ((digits.images[row * MNIST_PIXELS + p] as number) - MNIST_MEAN) / MNIST_STD;
}
