// The dropout seam of src/core/nn/layers.ts: without a mask source dropout draws exactly as before; with one
// (withDropoutMasks) every training-mode call takes the next supplied keep mask, a recomputation of a checkpointed
// block gets its first mask again, and a wrong shape is an error.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkpointed } from '../../../src/core/nn/checkpoint.js';
import { dropout, withDropoutMasks, type DropoutMaskSource } from '../../../src/core/nn/layers.js';
import { Rng } from '../../../src/core/runtime/random.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A source handing out the given masks in order and counting its calls. */
function sourceOf(masks: number[][][]): DropoutMaskSource & { calls: number } {
  const source = {
    calls: 0,
    next: (shape: readonly number[]): tf.Tensor => {
      const mask = masks[source.calls];
      source.calls += 1;
      if (!mask) throw new Error('no mask left');
      return tf.tensor(mask);
    },
  };
  return source;
}

describe('nn/dropout mask seam', () => {
  it('without a source draws the same mask as the uniform-draw formula with the stream\'s seed', () => {
    const x = tf.randomNormal([6, 5], 0, 1, 'float32', 3);
    const got = dropout(x, 0.3, true, new Rng(11)).arraySync();
    const seed = new Rng(11).seed();
    const expected = tf.mul(x, tf.mul(tf.cast(tf.less(tf.randomUniform([6, 5], 0, 1, 'float32', seed), 0.7), 'float32'), 1 / 0.7)).arraySync();
    expect(got).toEqual(expected);
  });

  it('applies the supplied keep masks in call order, scaled by 1/(1-p)', () => {
    const x = tf.tensor2d([[1, 2], [3, 4]]);
    const source = sourceOf([[[1, 0], [0, 1]], [[0, 1], [1, 1]]]);
    const rng = new Rng(1);
    const [first, second] = withDropoutMasks(source, () => [dropout(x, 0.5, true, rng).arraySync(), dropout(x, 0.5, true, rng).arraySync()]);
    expect(first).toEqual([[2, 0], [0, 8]]);
    expect(second).toEqual([[0, 4], [6, 8]]);
    expect(source.calls).toBe(2);
    // Eval mode and p = 0 take no mask.
    withDropoutMasks(source, () => {
      expect(dropout(x, 0.5, false, rng)).toBe(x);
      expect(dropout(x, 0, true, rng)).toBe(x);
    });
    expect(source.calls).toBe(2);
  });

  it('gives a checkpointed block\'s backward recomputation the forward\'s mask (same gradient as without checkpointing)', () => {
    const w = tf.variable(tf.tensor2d([[0.5, -1], [2, 0.25]]));
    const x = tf.tensor2d([[1, 2], [3, -1]]);
    const mask = [[1, 0], [1, 1]];
    const stream = new Rng(5);
    const block = (input: tf.Tensor): tf.Tensor => dropout(tf.matMul(input as tf.Tensor2D, w), 0.5, true, stream.fork('block'));
    const run = (checkpoint: boolean): { grad: number[][]; calls: number } => {
      const source = sourceOf([mask, [[0, 0], [0, 0]]]);
      const grad = withDropoutMasks(source, () => {
        const { value, grads } = tf.variableGrads(() => tf.sum(checkpoint ? checkpointed(block, x, [w]) : block(x)) as tf.Scalar, [w]);
        value.dispose();
        return grads[w.name]!.arraySync() as number[][];
      });
      return { grad, calls: source.calls };
    };
    const plain = run(false);
    const recomputed = run(true);
    expect(recomputed.calls).toBe(1);
    expect(recomputed.grad).toEqual(plain.grad);
    // d/dW sum(2 · mask ⊙ xW) = xᵀ (2 mask)
    expect(plain.grad).toEqual([[2 + 6, 6], [4 - 2, -2]]);
  });

  it('rejects a mask of the wrong shape, naming both shapes', () => {
    const x = tf.ones([2, 3]);
    expect(() => withDropoutMasks(sourceOf([[[1, 1, 1]]]), () => dropout(x, 0.5, true, new Rng(0)))).toThrow(/\[1, 3\].*\[2, 3\]/);
  });
});
