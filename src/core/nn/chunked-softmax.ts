// Softmax attention products evaluated in blocks of rows, with a backward pass that recomputes each block instead
// of keeping the [heads, L, m] attention maps (and the softmax gradient's intermediates of that size) alive.
// Nyström attention has two such maps per layer, one per query row (softmax(Q K̃ᵀ)) and one per landmark over
// every token (softmax(Q̃ Kᵀ)); at N = 50,000 each is 400 MB, ×4 with their gradients, in each layer's
// backward pass. Both products below equal the plain softmax-then-matMul to float rounding
// (docs/methods/transmil.md#nystrom-attention).
import * as tf from '@tensorflow/tfjs';

type GradSave = (tensors: tf.Tensor[]) => void;

/** Rows per block: [8 heads, 4,096, 256] is 32 MB per block tensor. */
export const SOFTMAX_BLOCK_ROWS = 4096;

function blocks(length: number, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let start = 0; start < length; start += size) out.push([start, Math.min(size, length - start)]);
  return out;
}

/**
 * softmax(q kᵀ) w for q [h, L, d], keysT [h, d, m] (keys already transposed), w [h, m, e] → [h, L, e]; the softmax
 * runs over m for each of the L rows, so blocks of rows are independent.
 */
export function rowSoftmaxProduct(q: tf.Tensor3D, keysT: tf.Tensor3D, w: tf.Tensor3D, blockRows = SOFTMAX_BLOCK_ROWS): tf.Tensor3D {
  const op = tf.customGrad((...args: Array<tf.Tensor | GradSave>) => {
    const [qs, ks, ws] = args as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
    (args[3] as GradSave)([qs, ks, ws]);
    const [heads, length, depth] = qs.shape;
    const parts = blocks(length, blockRows);
    const value = tf.tidy(() => {
      const outs = parts.map(([start, size]) => tf.tidy(() => tf.matMul(tf.softmax(tf.matMul(tf.slice(qs, [0, start, 0], [heads, size, depth]), ks)), ws)));
      return outs.length === 1 ? outs[0]! : tf.concat(outs, 1);
    });
    return {
      value,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const upstream = (Array.isArray(dy) ? dy[0] : dy) as tf.Tensor3D; // [h, L, e]
        const [sq, sk, sw] = saved as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
        const e = sw.shape[2];
        let dKeysT = tf.zerosLike(sk);
        let dW = tf.zerosLike(sw);
        const dQ: tf.Tensor[] = [];
        for (const [start, size] of parts) {
          const [dq, dk, dw] = tf.tidy(() => {
            const qBlock = tf.slice(sq, [0, start, 0], [heads, size, depth]); // [h, b, d]
            const dyBlock = tf.slice(upstream, [0, start, 0], [heads, size, e]); // [h, b, e]
            const attention = tf.softmax(tf.matMul(qBlock, sk)); // [h, b, m]
            const dAttention = tf.matMul(dyBlock, sw, false, true); // [h, b, m]
            // Softmax backward: dS = A ⊙ (dA − Σ_m dA ⊙ A).
            const dLogits = tf.mul(attention, tf.sub(dAttention, tf.sum(tf.mul(dAttention, attention), -1, true))); // [h, b, m]
            return [tf.matMul(dLogits, sk, false, true), tf.add(dKeysT, tf.matMul(qBlock, dLogits, true, false)), tf.add(dW, tf.matMul(attention, dyBlock, true, false))];
          });
          dKeysT.dispose();
          dW.dispose();
          dKeysT = dk;
          dW = dw;
          dQ.push(dq);
        }
        const dq = dQ.length === 1 ? dQ[0]! : tf.tidy(() => tf.concat(dQ, 1));
        if (dQ.length > 1) tf.dispose(dQ);
        return [dq, dKeysT, dW];
      },
    };
  });
  return op(q, keysT, w) as tf.Tensor3D;
}

/** log Σ_L exp(qL kᵀ) per landmark row, [h, m, 1], from blocks of keys (differentiable ops). */
export function landmarkLogSumExp(landmarks: tf.Tensor3D, keys: tf.Tensor3D, blockRows = SOFTMAX_BLOCK_ROWS): tf.Tensor3D {
  return tf.tidy(() => {
    const [heads, length, depth] = keys.shape;
    const partial = blocks(length, blockRows).map(([start, size]) => tf.logSumExp(tf.matMul(landmarks, tf.slice(keys, [0, start, 0], [heads, size, depth]), false, true), -1, true)); // [h, m, 1] each
    return (partial.length === 1 ? partial[0]! : tf.logSumExp(tf.concat(partial, 2), -1, true)) as tf.Tensor3D;
  });
}

/**
 * softmax(qL kᵀ) v for landmarks qL [h, m, d], keys [h, L, d], values [h, L, e] → [h, m, e]; the softmax runs over
 * the L tokens, so it is taken in two passes over blocks of keys (log-sum-exp first, then the weighted values).
 */
export function landmarkSoftmaxProduct(landmarks: tf.Tensor3D, keys: tf.Tensor3D, values: tf.Tensor3D, blockRows = SOFTMAX_BLOCK_ROWS): tf.Tensor3D {
  const op = tf.customGrad((...args: Array<tf.Tensor | GradSave>) => {
    const [ql, ks, vs] = args as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
    const [heads, length, depth] = ks.shape;
    const e = vs.shape[2];
    const parts = blocks(length, blockRows);
    const lse = landmarkLogSumExp(ql, ks, blockRows); // [h, m, 1]
    const value = tf.tidy(() =>
      parts.reduce<tf.Tensor>((sum, [start, size]) => {
        const p = tf.exp(tf.sub(tf.matMul(ql, tf.slice(ks, [0, start, 0], [heads, size, depth]), false, true), lse)); // [h, m, b]
        return tf.add(sum, tf.matMul(p, tf.slice(vs, [0, start, 0], [heads, size, e])));
      }, tf.zeros([heads, ql.shape[1], e])),
    ) as tf.Tensor3D;
    (args[3] as GradSave)([ql, ks, vs, lse, value]);
    return {
      value,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const upstream = (Array.isArray(dy) ? dy[0] : dy) as tf.Tensor3D; // [h, m, e]
        const [sql, sks, svs, slse, out] = saved as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
        const rowTerm = tf.sum(tf.mul(upstream, out), -1, true); // [h, m, 1]  Σ_e dO ⊙ O
        let dLandmarks = tf.zerosLike(sql);
        const dKeys: tf.Tensor[] = [];
        const dValues: tf.Tensor[] = [];
        for (const [start, size] of parts) {
          const [dl, dk, dv] = tf.tidy(() => {
            const kBlock = tf.slice(sks, [0, start, 0], [heads, size, depth]); // [h, b, d]
            const vBlock = tf.slice(svs, [0, start, 0], [heads, size, e]); // [h, b, e]
            const p = tf.exp(tf.sub(tf.matMul(sql, kBlock, false, true), slse)); // [h, m, b]
            const dLogits = tf.mul(p, tf.sub(tf.matMul(upstream, vBlock, false, true), rowTerm)); // [h, m, b]
            return [tf.add(dLandmarks, tf.matMul(dLogits, kBlock)), tf.matMul(dLogits, sql, true, false), tf.matMul(p, upstream, true, false)];
          });
          dLandmarks.dispose();
          dLandmarks = dl;
          dKeys.push(dk);
          dValues.push(dv);
        }
        rowTerm.dispose();
        const join = (list: tf.Tensor[]): tf.Tensor => {
          if (list.length === 1) return list[0]!;
          const joined = tf.concat(list, 1);
          tf.dispose(list);
          return joined;
        };
        return [dLandmarks, join(dKeys), join(dValues)];
      },
    };
  });
  return op(landmarks, keys, values) as tf.Tensor3D;
}
