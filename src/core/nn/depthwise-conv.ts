// Depthwise 2-D convolution (stride 1, odd kernels, zero "same" padding) whose gradient uses only ops every
// backend has: tfjs' own gradient needs DepthwiseConv2dNativeBackpropInput/Filter, which wasm lacks. On wasm the
// filter gradient runs as one heap kernel when the runtime installed it.
// Used by TransMIL's PPEG (7/5/3 kernels) and the Nyström value-residual conv (33 x 1).
import * as tf from '@tensorflow/tfjs';
import { depthwiseFilterGradOnHeap } from '../runtime/heap-kernels.js';
import { heapSlice } from './heap-slice.js';

type GradSave = (tensors: tf.Tensor[]) => void;

function checkKernel(filter: tf.Tensor4D): void {
  const [kh, kw, , multiplier] = filter.shape;
  if (kh % 2 === 0 || kw % 2 === 0 || multiplier !== 1) {
    throw new RangeError(`depthwiseConvSame: kernel must be odd-sized with channel multiplier 1, got [${filter.shape.join(', ')}]`);
  }
}

/**
 * dW[i, j, c] = Σ_{y,x} x_pad[y+i, x+j, c] · dy[y, x, c]. Each tap is a contiguous window of the padded input
 * flattened with row width W' = W + kw - 1 (dy zero-padded to that width so windows never wrap), reduced over
 * positions by a ones-vector matmul (far faster than a sum on wasm).
 */
function filterGradient(x: tf.Tensor4D, dy: tf.Tensor4D, kh: number, kw: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [, height, width, channels] = x.shape;
    const ph = (kh - 1) / 2;
    const pw = (kw - 1) / 2;
    const rowWidth = width + kw - 1; // W'
    const xFlat = tf.reshape(tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]]), [(height + kh - 1) * rowWidth, channels]); // [(H+kh-1)W', C]
    const windowLength = (height - 1) * rowWidth + width; // rows of dy that can be non-zero
    const dyWide = kw > 1 ? tf.pad(dy, [[0, 0], [0, 0], [0, kw - 1], [0, 0]]) : dy; // [1, H, W', C]
    const dyFlat = heapSlice(tf.reshape(dyWide, [height * rowWidth, channels]), [0, 0], [windowLength, channels]); // [Lw, C]
    const ones = tf.ones([1, windowLength]); // [1, Lw]
    const taps: tf.Tensor[] = [];
    for (let i = 0; i < kh; i += 1) {
      for (let j = 0; j < kw; j += 1) {
        // Loop over the kh·kw kernel taps (not over instances); each tap is one windowed product + reduction.
        taps.push(tf.tidy(() => tf.matMul(ones, tf.mul(heapSlice(xFlat, [i * rowWidth + j, 0], [windowLength, channels]), dyFlat)))); // [1, C]  (heapSlice: wasm's Slice would copy all of xFlat per tap)
      }
    }
    return tf.reshape(tf.concat(taps, 0), [kh, kw, channels, 1]) as tf.Tensor4D; // [kh, kw, C, 1]
  });
}

const depthwiseSameOp = tf.customGrad((...args: Array<tf.Tensor | GradSave>) => {
  const x = args[0] as tf.Tensor4D;
  const filter = args[1] as tf.Tensor4D;
  (args[2] as GradSave)([x, filter]);
  return {
    value: tf.depthwiseConv2d(x, filter, 1, 'same'),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
      const [kh, kw] = ws.shape;
      // dX: correlation with the spatially flipped kernel (stride 1, symmetric padding).
      const dx = tf.tidy(() => tf.depthwiseConv2d(dy as tf.Tensor4D, tf.reverse(ws, [0, 1]) as tf.Tensor4D, 1, 'same'));
      // One vectorised pass on the wasm heap where it runs (docs/runtime.md#fused-heap-kernels), else windowed products.
      const dw = depthwiseFilterGradOnHeap(xs, dy as tf.Tensor4D, kh, kw) ?? filterGradient(xs, dy as tf.Tensor4D, kh, kw);
      return [dx, dw];
    },
  };
});

/** Depthwise conv, stride 1, zero "same" padding: x [1, H, W, C], filter [kh, kw, C, 1] (odd kh, kw) → [1, H, W, C]. */
export function depthwiseConvSame(x: tf.Tensor4D, filter: tf.Tensor4D): tf.Tensor4D {
  checkKernel(filter);
  if (x.shape[0] !== 1) throw new RangeError(`depthwiseConvSame: batch must be 1, got ${x.shape[0]}`);
  return depthwiseSameOp(x, filter) as tf.Tensor4D;
}

/**
 * Depthwise 1-D convolution along the sequence axis, zero "same" padding, shared across the feature axis:
 * out[h, n, d] = Σ_t w[t, h] · v[h, n + t - r, d] for v [H, L, D] and an odd kernel of k = 2r + 1 taps, given as
 * the conv2d filter [k, 1, H, 1] (torch Conv2d(H, H, (k, 1), groups=H) permuted). Computed as block-Toeplitz
 * matmuls (blocks of B ≥ r rows see only their neighbours), so forward and backward are batched matmuls on every
 * backend; the direct depthwise conv falls back to a slow generic kernel in wasm for kernels over 25 taps.
 */
export function sequenceConvSame(v: tf.Tensor3D, filter: tf.Tensor4D): tf.Tensor3D {
  const [taps, width, heads, multiplier] = filter.shape;
  if (taps % 2 === 0 || width !== 1 || multiplier !== 1 || heads !== v.shape[0]) {
    throw new RangeError(`sequenceConvSame: filter must be [odd k, 1, ${v.shape[0]}, 1], got [${filter.shape.join(', ')}]`);
  }
  return tf.tidy(() => {
    const [, length, depth] = v.shape;
    const radius = (taps - 1) / 2;
    const block = Math.max(radius, 1); // B ≥ r: row n only needs blocks b-1, b, b+1
    const blocks = Math.ceil(length / block);
    const padded = blocks * block;
    // Toeplitz blocks T[h] = [T_{-1} | T_0 | T_{+1}] ([B, 3B]): T_k[i, j] = w[kB + j - i + r] (0 outside the kernel).
    const selector = new Float32Array(taps * block * 3 * block);
    for (let i = 0; i < block; i += 1) {
      for (let k = -1; k <= 1; k += 1) {
        for (let j = 0; j < block; j += 1) {
          const t = k * block + j - i + radius;
          if (t >= 0 && t < taps) selector[t * 3 * block * block + i * 3 * block + (k + 1) * block + j] = 1;
        }
      }
    }
    const weights = tf.transpose(tf.reshape(filter, [taps, heads])); // [H, k]
    const toeplitz = tf.reshape(tf.matMul(weights, tf.tensor2d(selector, [taps, 3 * block * block])), [heads, block, 3 * block]); // [H, B, 3B]
    // Rows regrouped as [H, B, blocks·D]: column (b, d) of row i is v[h, bB + i, d].
    const grouped = tf.reshape(tf.transpose(tf.reshape(tf.pad(v, [[0, 0], [0, padded - length], [0, 0]]), [heads, blocks, block, depth]), [0, 2, 1, 3]), [heads, block, blocks, depth]); // [H, B, nb, D]
    const shifted = (by: number): tf.Tensor => // block b sees block b + by (zeros beyond the ends)
      by === 0 ? grouped : by < 0
        ? tf.slice(tf.pad(grouped, [[0, 0], [0, 0], [1, 0], [0, 0]]), [0, 0, 0, 0], [heads, block, blocks, depth])
        : tf.slice(tf.pad(grouped, [[0, 0], [0, 0], [0, 1], [0, 0]]), [0, 0, 1, 0], [heads, block, blocks, depth]);
    const stacked = tf.reshape(tf.concat([shifted(-1), shifted(0), shifted(1)], 1), [heads, 3 * block, blocks * depth]); // [H, 3B, nb·D]
    const out = tf.reshape(tf.matMul(toeplitz, stacked), [heads, block, blocks, depth]); // [H, B, nb, D]
    return tf.slice(tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [heads, padded, depth]), [0, 0, 0], [heads, length, depth]) as tf.Tensor3D; // [H, L, D]
  });
}
