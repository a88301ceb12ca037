import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { chunkedTransLayer } from '../../../src/core/nn/chunked-translayer.js';
import { LayerNorm } from '../../../src/core/nn/layer-norm.js';
import { NystromAttention, type NystromAlignment, type NystromObserver } from '../../../src/core/nn/nystrom.js';
import { Rng } from '../../../src/core/runtime/random.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number);
}

function maxAbs(a: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(a)).dataSync()[0] as number);
}

interface Case {
  readonly name: string;
  readonly length: number;
  readonly landmarks: number;
  readonly residualKernel: number;
  readonly alignment: NystromAlignment;
  readonly dropout: number;
  readonly blockRows: number;
  readonly backend?: 'cpu' | 'wasm';
  /** false: the large-N policy: the backward pass differentiates a recomputed pseudo-inverse and takes K3 again per block. */
  readonly keepForBackward?: boolean;
  readonly keepProjections?: boolean;
}

// dim 8, 2 heads of 4. Padding = landmarks - length % landmarks rows on the left; blocks are whole landmark segments.
const cases: Case[] = [
  // L' = 40, segments of 5 rows: 8 blocks of 5, the 5-tap residual reaching into both neighbours.
  { name: 'pinned, segments of 5, one segment per block', length: 37, landmarks: 8, residualKernel: 5, alignment: 'pinned-0.0.9', dropout: 0, blockRows: 3 },
  // L' = 16, segments of 1: blocks of 3 rows (the 7-tap radius), the last block (1 row) shorter than the radius.
  { name: 'fixed, segments of 1, last block shorter than the conv radius', length: 10, landmarks: 16, residualKernel: 7, alignment: 'fixed', dropout: 0, blockRows: 2 },
  // L' = 40 with 15 rows of padding: the first blocks are padding only, dropout on the output projection.
  { name: 'fixed, dropout, blocks of padding only', length: 25, landmarks: 4, residualKernel: 3, alignment: 'fixed', dropout: 0.5, blockRows: 10 },
  { name: 'pinned, dropout, no residual conv, uneven last block', length: 23, landmarks: 6, residualKernel: 0, alignment: 'pinned-0.0.9', dropout: 0.3, blockRows: 8 },
  // On wasm the layer takes its rows with heapSlice's own kernel (and its gradient) instead of tf.slice.
  { name: 'wasm: pinned, segments of 5, one segment per block', length: 37, landmarks: 8, residualKernel: 5, alignment: 'pinned-0.0.9', dropout: 0, blockRows: 3, backend: 'wasm' },
  { name: 'wasm: fixed, dropout, blocks of padding only', length: 25, landmarks: 4, residualKernel: 3, alignment: 'fixed', dropout: 0.5, blockRows: 10, backend: 'wasm' },
  { name: 'pinned, pseudo-inverse recomputed in the backward pass', length: 37, landmarks: 8, residualKernel: 5, alignment: 'pinned-0.0.9', dropout: 0, blockRows: 3, keepForBackward: false },
  // q, k and v kept from the forward pass (the last layer's option), with and without the pseudo-inverse's tape.
  { name: 'fixed, dropout, blocks of padding only, projections kept', length: 25, landmarks: 4, residualKernel: 3, alignment: 'fixed', dropout: 0.5, blockRows: 10, keepProjections: true },
  { name: 'wasm: pinned, projections kept, pseudo-inverse recomputed', length: 37, landmarks: 8, residualKernel: 5, alignment: 'pinned-0.0.9', dropout: 0, blockRows: 3, keepForBackward: false, keepProjections: true, backend: 'wasm' },
];

describe('nn/chunked-translayer', () => {
  it.each(cases)('equals x + NystromAttention(LayerNorm(x)) in value, observer outputs and every gradient: $name', async (c) => {
    await tf.setBackend(c.backend ?? 'cpu');
    const dim = 8;
    const rng = new Rng(`chunked/${c.name}`);
    const norm = new LayerNorm(dim);
    // Non-trivial LayerNorm parameters, so their gradients and their use in the recomputation are tested too.
    norm.weight.assign(tf.randomNormal([dim], 1, 0.3, 'float32', 3));
    norm.bias.assign(tf.randomNormal([dim], 0, 0.3, 'float32', 4));
    const attn = new NystromAttention({
      dim, heads: 2, dimHead: 4, landmarks: c.landmarks, pinvIterations: 6, residualKernel: c.residualKernel,
      dropout: c.dropout, alignment: c.alignment, init: 'torch-default',
    }, rng.fork('attn'));
    const variables = [...norm.trainableVariables(), ...attn.trainableVariables()];
    const x = tf.randomNormal([c.length, dim], 0, 1, 'float32', 11) as tf.Tensor2D;
    const pattern = tf.randomNormal([c.length, dim], 0, 1, 'float32', 12); // upstream gradient
    const io = { training: c.dropout > 0, rng: new Rng('step') };
    const observed: Array<{ attention: tf.Tensor2D; weighted: tf.Tensor2D | undefined }> = [];
    const observer: NystromObserver = { row: 0, weightedValues: true, take: (attention, weighted) => observed.push({ attention: tf.keep(attention), weighted: weighted && tf.keep(weighted) }) };

    const run = (layer: (input: tf.Tensor2D) => tf.Tensor2D) => {
      const output = tf.tidy(() => layer(x));
      const [dx, ...dVariables] = tf.grads((input: tf.Tensor, ..._vars: tf.Tensor[]) => tf.sum(tf.mul(layer(input as tf.Tensor2D), pattern)) as tf.Scalar)([x, ...variables]);
      return { output, dx: dx!, dVariables };
    };
    // Both paths draw the same dropout mask: same stream, fresh for each call.
    const plain = run((input) => tf.add(input, attn.forward(norm.forward(input), { ...io, rng: io.rng.fork('call') }, observer)) as tf.Tensor2D);
    const chunked = run((input) => chunkedTransLayer(input, norm, attn, { ...io, rng: io.rng.fork('call') }, observer, c.blockRows, c.keepForBackward, c.keepProjections));

    expect(maxAbsDiff(chunked.output, plain.output)).toBeLessThan(1e-5);
    expect(maxAbsDiff(chunked.dx, plain.dx)).toBeLessThan(1e-5);
    expect(maxAbs(plain.dx)).toBeGreaterThan(1e-2);
    const names = [...norm.namedTensors('norm.'), ...attn.namedTensors('attn.')].map(([name]) => name);
    plain.dVariables.forEach((expected, i) => {
      const difference = maxAbsDiff(chunked.dVariables[i]!, expected);
      expect(difference, names[i]).toBeLessThan(1e-5 * Math.max(1, maxAbs(expected)));
      // Every parameter gets a gradient here (the comparison would also pass on two zero tensors).
      expect(maxAbs(expected), names[i]).toBeGreaterThan(1e-4);
    });
    // The observer saw the plain forward (twice: value and gradient runs), then the chunked one (twice).
    expect(observed).toHaveLength(4);
    const [plainSeen, , chunkedSeen] = observed as [(typeof observed)[0], unknown, (typeof observed)[0]];
    expect(chunkedSeen.attention.shape).toEqual([2, c.length]);
    expect(maxAbsDiff(chunkedSeen.attention, plainSeen.attention)).toBeLessThan(1e-5);
    expect(maxAbsDiff(chunkedSeen.weighted!, plainSeen.weighted!)).toBeLessThan(1e-5);
    tf.dispose([x, pattern, plain.output, plain.dx, ...plain.dVariables, chunked.output, chunked.dx, ...chunked.dVariables, ...observed.flatMap((o) => [o.attention, ...(o.weighted ? [o.weighted] : [])])]);
    norm.dispose();
    attn.dispose();
  });

  it.each([false, true])('leaves no tensor behind after a forward and backward pass (projections kept: %s)', (keepProjections) => {
    const dim = 8;
    const norm = new LayerNorm(dim);
    const attn = new NystromAttention({ dim, heads: 2, dimHead: 4, landmarks: 4, pinvIterations: 6, residualKernel: 3, dropout: 0.2, alignment: 'pinned-0.0.9', init: 'torch-default' }, new Rng('leak'));
    const variables = [...norm.trainableVariables(), ...attn.trainableVariables()];
    const x = tf.randomNormal([21, dim], 0, 1, 'float32', 5) as tf.Tensor2D;
    const step = (): void => {
      const { value, grads } = tf.variableGrads(() => tf.sum(chunkedTransLayer(x, norm, attn, { training: true, rng: new Rng('s') }, undefined, 4, undefined, keepProjections)) as tf.Scalar, variables);
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const before = tf.memory().numTensors;
    step();
    step();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(x);
    norm.dispose();
    attn.dispose();
  });
});
