// Depthwise 2-D convolution (stride 1, odd kernels, zero "same" padding) whose gradient uses only ops every
// backend has: tfjs' own gradient needs DepthwiseConv2dNativeBackpropInput/Filter, which wasm lacks.
// Used by TransMIL's PPEG (7/5/3 kernels) and the Nyström value-residual conv (33 x 1).
import * as tf from '@tensorflow/tfjs';

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
    const dyFlat = tf.slice(tf.reshape(dyWide, [height * rowWidth, channels]), [0, 0], [windowLength, channels]); // [Lw, C]
    const ones = tf.ones([1, windowLength]); // [1, Lw]
    const taps: tf.Tensor[] = [];
    for (let i = 0; i < kh; i += 1) {
      for (let j = 0; j < kw; j += 1) {
        // Loop over the kh·kw kernel taps (not over instances); each tap is one windowed product + reduction.
        taps.push(tf.tidy(() => tf.matMul(ones, tf.mul(tf.slice(xFlat, [i * rowWidth + j, 0], [windowLength, channels]), dyFlat)))); // [1, C]
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
      const dw = filterGradient(xs, dy as tf.Tensor4D, kh, kw);
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
