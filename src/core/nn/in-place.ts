// Variable updates that keep the variable's buffer. `variable.assign(value)` swaps in the buffer of `value`, so every
// optimizer step moves each parameter and moment to wherever the allocator put the new value — on wasm, often high in
// a heap the step's large activations had just filled. Those long-lived blocks then split the free space, the next
// step's activations no longer fit below them, and the heap grows although the tensor count is flat (measured for
// DMIN at 50,000 instances: BENCHMARKS.md, flat-memory section). Copying the new values into the old buffer keeps the
// long-lived blocks where step 1 placed them, so the heap's layout repeats exactly from step to step.
import * as tf from '@tensorflow/tfjs';

/** What the wasm backend exposes of a tensor's storage (tfjs-backend-wasm's BackendWasm). */
interface WasmStorage {
  getMemoryOffset(dataId: tf.DataId): number;
  refCount(dataId: tf.DataId): number;
  dataIdMap: { get(dataId: tf.DataId): { id: number } | undefined };
  wasm: {
    HEAPU8: Uint8Array;
    tfjs: { registerTensor(id: number, size: number, memoryOffset: number): void; disposeData(id: number): void };
  };
}

function wasmStorage(): WasmStorage | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const backend = tf.backend() as unknown as Partial<WasmStorage>;
  return typeof backend.getMemoryOffset === 'function' && typeof backend.refCount === 'function' && backend.dataIdMap && backend.wasm ? (backend as WasmStorage) : undefined;
}

/**
 * `variable.assign(value)`, but on the wasm backend the values are copied into the variable's own buffer when that is
 * safe: same dtype and shape, and no other tensor shares the buffer (a `tf.clone` of the variable, a snapshot of the
 * best weights, still holds it: then the ordinary assign, which leaves the snapshot intact). Elsewhere the ordinary
 * assign. `value` stays owned by the caller.
 */
export function assignInPlace(variable: tf.Variable, value: tf.Tensor): void {
  const storage = wasmStorage();
  if (!storage || value.dtype !== variable.dtype || variable.dtype === 'string' || !tf.util.arraysEqual(value.shape, variable.shape) || value.dataId === variable.dataId || storage.refCount(variable.dataId) !== 1) {
    variable.assign(value);
    return;
  }
  const entry = storage.dataIdMap.get(variable.dataId);
  if (!entry) {
    variable.assign(value);
    return;
  }
  const bytes = variable.size * tf.util.bytesPerElement(variable.dtype);
  const from = storage.getMemoryOffset(value.dataId);
  const to = storage.getMemoryOffset(variable.dataId);
  storage.wasm.HEAPU8.copyWithin(to, from, from + bytes);
  // Kernels cache work derived from a tensor's contents by its id (XNNPACK's packed matmul operand): re-registering the
  // id drops those caches, as the id change of an ordinary assign would, so no kernel reads stale weights.
  storage.wasm.tfjs.disposeData(entry.id);
  storage.wasm.tfjs.registerTensor(entry.id, variable.size, to);
}
