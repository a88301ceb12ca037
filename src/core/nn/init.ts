// Weight initialisations of the original implementations (docs/methods/conventions.md#initialisations), drawn from a seeded
// Rng on the host so the same seed gives the same weights on every backend.
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../runtime/random.js';

/** Initialisation schemes the originals use; plugins expose them as an `init` option. */
export type InitScheme = 'torch-default' | 'xavier-normal' | 'kaiming-normal' | 'orthogonal' | 'zeros';

/** Fans as PyTorch computes them, for a weight given in torch layout [out, in, ...receptive]. */
export function torchFans(torchShape: readonly number[]): { fanIn: number; fanOut: number } {
  const [out = 1, inp = 1, ...rest] = torchShape;
  const receptive = rest.reduce((a, b) => a * b, 1);
  return { fanIn: inp * receptive, fanOut: out * receptive };
}

/**
 * A weight tensor in torch layout `torchShape`, drawn with `scheme` (gain 1 for xavier, ReLU gain for kaiming).
 * Callers permute it into milkit's layout when that differs.
 */
export function initWeight(scheme: InitScheme, torchShape: readonly number[], rng: Rng): tf.Tensor {
  const size = torchShape.reduce((a, b) => a * b, 1);
  const { fanIn, fanOut } = torchFans(torchShape);
  const shape = [...torchShape];
  switch (scheme) {
    case 'torch-default': {
      // kaiming_uniform(a=sqrt(5)) reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
      const bound = 1 / Math.sqrt(fanIn);
      return tf.tensor(rng.uniformArray(size, -bound, bound), shape);
    }
    case 'xavier-normal':
      return tf.tensor(rng.normalArray(size, 0, Math.sqrt(2 / (fanIn + fanOut))), shape);
    case 'kaiming-normal':
      return tf.tensor(rng.normalArray(size, 0, Math.sqrt(2 / fanIn)), shape);
    case 'orthogonal':
      return tf.tensor(orthogonal(torchShape, rng), shape);
    case 'zeros':
      return tf.zeros(shape);
  }
}

/** Bias init matching `scheme`: torch default draws U(±1/sqrt(fan_in)); the others start at zero. */
export function initBias(scheme: InitScheme, size: number, fanIn: number, rng: Rng): tf.Tensor1D {
  if (scheme === 'torch-default') {
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    return tf.tensor1d(rng.uniformArray(size, -bound, bound));
  }
  return tf.zeros([size]);
}

/** Orthogonal init (gain 1) via Gram-Schmidt on a Gaussian matrix, rows = out, cols = prod(rest). */
function orthogonal(torchShape: readonly number[], rng: Rng): Float32Array {
  const rows = torchShape[0] ?? 1;
  const cols = torchShape.slice(1).reduce((a, b) => a * b, 1);
  const transposed = rows < cols;
  const [r, c] = transposed ? [cols, rows] : [rows, cols];
  // Orthonormalise the c columns of an r x c Gaussian matrix (r >= c).
  const q: Float64Array[] = [];
  for (let j = 0; j < c; j += 1) {
    const v = new Float64Array(r);
    for (let i = 0; i < r; i += 1) v[i] = rng.normal();
    for (const u of q) {
      let dot = 0;
      for (let i = 0; i < r; i += 1) dot += (u[i] as number) * (v[i] as number);
      for (let i = 0; i < r; i += 1) v[i] = (v[i] as number) - dot * (u[i] as number);
    }
    let norm = 0;
    for (let i = 0; i < r; i += 1) norm += (v[i] as number) ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let i = 0; i < r; i += 1) v[i] = (v[i] as number) / norm;
    q.push(v);
  }
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i += 1) {
    for (let j = 0; j < cols; j += 1) {
      out[i * cols + j] = transposed ? ((q[i] as Float64Array)[j] as number) : ((q[j] as Float64Array)[i] as number);
    }
  }
  return out;
}
