// Frees a backward pass's tensors as soon as the pass has moved past them. tfjs keeps every tensor a recorded op
// saved for its gradient, and every intermediate gradient, until the whole backward pass ends; for a
// recomputed (checkpointed) block that is the block's entire forward plus its entire backward at once. Walking
// the tape in reverse, a node's output gradients (dys) and its saved tensors are not read by any node after it,
// so they can go as soon as its input gradients exist. Saved tensors are the engine's own clones (shared data,
// reference counted), so freeing them never frees a tensor that the forward pass still holds.
import * as tf from '@tensorflow/tfjs';

interface TapeNode {
  saved?: tf.Tensor[];
  gradient?: (dys: tf.Tensor[]) => Record<string, () => tf.Tensor>;
  released?: true;
}

/**
 * Call inside the function given to `tf.grads`/`tf.variableGrads` (after the forward has been recorded, before it
 * returns): every node recorded so far on the active tape frees its dys and saved tensors once the backward pass
 * has gone past it. Only for gradients WITHOUT a caller-supplied dy (that tensor would be freed too); a node's
 * tensors are freed when the next node's gradient starts, so the last node's are left to the engine.
 */
export function releaseDuringBackward(): void {
  const tape = (tf.engine() as unknown as { state: { activeTape: TapeNode[] | null } }).state.activeTape;
  if (!tape) return;
  let pending: { tensors: tf.Tensor[]; produced: Set<tf.Tensor> } | undefined;
  const flush = (): void => {
    if (!pending) return;
    for (const tensor of pending.tensors) if (!pending.produced.has(tensor) && !tensor.isDisposed) tensor.dispose();
    pending = undefined;
  };
  for (const node of tape) {
    const original = node.gradient;
    if (!original || node.released) continue;
    node.released = true;
    node.gradient = (dys: tf.Tensor[]) => {
      flush(); // the previous node's input gradients have all been taken by now
      const closures = original(dys);
      const produced = new Set<tf.Tensor>();
      // A gradient function may hand a dy (or a saved tensor) straight through as an input gradient: those stay.
      pending = { tensors: [...dys.filter((t): t is tf.Tensor => t != null), ...(node.saved ?? [])], produced };
      const wrapped: Record<string, () => tf.Tensor> = {};
      for (const [name, closure] of Object.entries(closures)) {
        wrapped[name] = () => {
          const dx = closure();
          produced.add(dx);
          return dx;
        };
      }
      return wrapped;
    };
  }
}
