// Activation checkpointing: run a block without keeping its intermediates for the backward pass and recompute
// them there. tfjs keeps every saved intermediate, and the gradient of every intermediate, until a backward pass
// ends; inside wasm's 4 GB heap that caps TransMIL near 4,000 instances. With its layers checkpointed, only their
// inputs stay alive and one layer's recomputation exists at a time.
import * as tf from '@tensorflow/tfjs';
import { releaseDuringBackward } from './backward-release.js';

type GradSave = (tensors: tf.Tensor[]) => void;

/**
 * `block(x)` whose backward recomputes it. `variables` must be every trainable variable the block reads (they
 * receive their gradients through this op); `block` must be deterministic across calls (fork dropout streams by
 * a fixed label, e.g. `io.rng.fork('layer1')`, so the recomputation draws the same masks).
 */
export function checkpointed(block: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor, variables: readonly tf.Variable[]): tf.Tensor {
  const op = tf.customGrad((...args: Array<tf.Tensor | GradSave>) => {
    const input = args[0] as tf.Tensor;
    (args[args.length - 1] as GradSave)([input]);
    return {
      value: tf.tidy(() => block(input)), // off the tape: inside a custom op's forward nothing is recorded
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const upstream = Array.isArray(dy) ? (dy[0] as tf.Tensor) : dy;
        const savedInput = saved[0] as tf.Tensor;
        // Recompute under a fresh tape and pull the upstream gradient back to the input and the variables. A nested
        // gradients() call ends by dropping the engine's active tape, which the outer backward pass still needs to
        // free its own saved tensors: keep it and put it back.
        const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
        const outerTape = state.activeTape;
        let grads: tf.Tensor[];
        try {
          grads = tf.grads((inp: tf.Tensor, ..._vars: tf.Tensor[]) => {
            const projected = tf.sum(tf.mul(block(inp), upstream)) as tf.Scalar;
            // The recomputed block's activations and gradients go as the backward pass passes them, so the
            // block's peak is its forward plus a moving window of its backward, not both whole.
            releaseDuringBackward();
            return projected;
          })([savedInput, ...variables]);
        } finally {
          state.activeTape = outerTape;
        }
        // A variable the output does not depend on gets no entry; the custom op must still return one per input.
        return [savedInput, ...variables].map((t, i) => grads[i] ?? tf.zerosLike(t));
      },
    };
  });
  return op(x, ...variables) as tf.Tensor;
}
