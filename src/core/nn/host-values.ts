// Read-only host access to a float32 tensor's values without a copy where the backend allows it (the wasm heap,
// the cpu backend's values array). `dataSync()` on wasm copies the whole buffer every call, which is what made
// host-side loops (fused optimizer updates, pooling gradients) cost more than the loop itself.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/**
 * The float32 values of `t`, read-only. A wasm heap view stays valid only until the next tensor allocation
 * (the heap may grow and detach it), so read every input before creating any output.
 */
export function hostFloatValues(t: tf.Tensor): Float32Array {
  if (t.dtype !== 'float32') return Float32Array.from(t.dataSync());
  const name = tf.getBackend();
  if (name === 'wasm') return (tf.backend() as BackendWasm).typedArrayFromHeap(t) as Float32Array;
  if (name === 'cpu') {
    const values = (tf.backend() as unknown as { data: { get(id: object): { values?: unknown } } }).data.get(t.dataId).values;
    if (values instanceof Float32Array) return values;
  }
  return t.dataSync() as Float32Array;
}
