// A regular 2-D convolution as one matrix product over im2col patches, forward and backward. On the wasm backend
// every matrix product runs as OpenBLAS sgemm (src/core/runtime/blas-kernels.ts), while the stock conv kernel
// and, worse, the dilated convolutions conv.ts writes its gradients with (channels as batch, instances as channels,
// a filter as large as the output) run on XNNPACK's direct path, which is slow for those shapes. For small images
// (Ilse's 28×28 MNIST digits) the patch matrix is small, so the three products of a training step —
//   y = P·W, dW = Pᵀ·dy, dP = dy·Wᵀ (then folded back onto the input: col2im) —
// cost about what the arithmetic says. The forward product stays on the stock conv kernel (as fast there, and no
// patches at inference); the backward pass builds the patch matrix, k² times the input, so large inputs keep conv.ts.
import * as tf from '@tensorflow/tfjs';

type GradSave = (tensors: tf.Tensor[]) => void;

/** Output side of a padded, strided valid convolution. */
function outputSide(side: number, k: number, stride: number, pad: number): number {
  return Math.floor((side + 2 * pad - k) / stride) + 1;
}

/**
 * The patch matrix of x [N, H, W, C] for a k×k window: [N·Ho·Wo, k·k·C], columns ordered (row i, column j, channel),
 * which is the row order of the weight [k, k, C, C_out] flattened to [k·k·C, C_out]; zero where the window lies on
 * the padding. Built on the host: on wasm the stock Slice and GatherV2 kernels took 10-30× the whole convolution's
 * time for these copies, a typed-array loop takes well under a millisecond for a bag of digits.
 */
export function im2col(x: tf.Tensor4D, k: number, stride: number, pad: number): tf.Tensor2D {
  const [n, height, width, channels] = x.shape;
  const outHeight = outputSide(height, k, stride, pad);
  const outWidth = outputSide(width, k, stride, pad);
  const source = x.dataSync() as Float32Array;
  const rowLength = k * k * channels;
  const patches = new Float32Array(n * outHeight * outWidth * rowLength); // zero-filled: the padding stays 0
  let row = 0;
  for (let b = 0; b < n; b += 1) {
    for (let oy = 0; oy < outHeight; oy += 1) {
      for (let ox = 0; ox < outWidth; ox += 1, row += 1) {
        // Offsets j of one window row read consecutive input pixels: one contiguous run of (j1 − j0)·C floats.
        const x0 = ox * stride - pad;
        const j0 = Math.max(0, -x0);
        const j1 = Math.min(k, width - x0);
        if (j1 <= j0) continue;
        const span = (j1 - j0) * channels;
        for (let i = 0; i < k; i += 1) {
          const y = oy * stride + i - pad;
          if (y < 0 || y >= height) continue;
          const from = ((b * height + y) * width + x0 + j0) * channels;
          const to = row * rowLength + (i * k + j0) * channels;
          for (let t = 0; t < span; t += 1) patches[to + t] = source[from + t] as number;
        }
      }
    }
  }
  return tf.tensor2d(patches, [n * outHeight * outWidth, rowLength]);
}

/** The adjoint of `im2col`: every patch entry added back onto the input pixel it was read from, [N, H, W, C]. */
export function col2im(columns: tf.Tensor2D, inputShape: readonly [number, number, number, number], k: number, stride: number, pad: number): tf.Tensor4D {
  const [n, height, width, channels] = inputShape;
  const outHeight = outputSide(height, k, stride, pad);
  const outWidth = outputSide(width, k, stride, pad);
  const rowLength = k * k * channels;
  if (columns.shape[0] !== n * outHeight * outWidth || columns.shape[1] !== rowLength) {
    throw new RangeError(`col2im: expected columns [${n * outHeight * outWidth}, ${rowLength}], got [${columns.shape.join(', ')}]`);
  }
  const source = columns.dataSync() as Float32Array;
  const image = new Float32Array(n * height * width * channels);
  let row = 0;
  for (let b = 0; b < n; b += 1) {
    for (let oy = 0; oy < outHeight; oy += 1) {
      for (let ox = 0; ox < outWidth; ox += 1, row += 1) {
        const x0 = ox * stride - pad;
        const j0 = Math.max(0, -x0);
        const j1 = Math.min(k, width - x0);
        if (j1 <= j0) continue;
        const span = (j1 - j0) * channels;
        for (let i = 0; i < k; i += 1) {
          const y = oy * stride + i - pad;
          if (y < 0 || y >= height) continue;
          const to = ((b * height + y) * width + x0 + j0) * channels;
          const from = row * rowLength + (i * k + j0) * channels;
          for (let t = 0; t < span; t += 1) image[to + t] = (image[to + t] as number) + (source[from + t] as number);
        }
      }
    }
  }
  return tf.tensor4d(image, [n, height, width, channels]);
}

const ops = new Map<string, (x: tf.Tensor, w: tf.Tensor) => tf.Tensor>();

function im2colOp(stride: number, pad: number): (x: tf.Tensor, w: tf.Tensor) => tf.Tensor {
  const key = `${stride}/${pad}`;
  const cached = ops.get(key);
  if (cached) return cached;
  const op = tf.customGrad((...args: Array<tf.Tensor | GradSave>) => {
    const x = args[0] as tf.Tensor4D; // [N, H, W, C_in]
    const w = args[1] as tf.Tensor4D; // [k, k, C_in, C_out]
    const [k, , inChannels, outChannels] = w.shape;
    const [n, height, width] = x.shape;
    const outHeight = outputSide(height, k, stride, pad);
    const outWidth = outputSide(width, k, stride, pad);
    // The forward pass stays on the stock conv kernel (XNNPACK's direct path on wasm is as fast as the patch product
    // there, and inference never pays for the patches); the patches are cut for the backward pass only.
    (args[2] as GradSave)([x, w]);
    const value = tf.conv2d(x, w, stride, pad); // [N, Ho, Wo, C_out]
    const inputShape = x.shape as [number, number, number, number];
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        const columns = im2col(xs, k, stride, pad); // [N·Ho·Wo, k·k·C_in]
        const weights = tf.reshape(ws, [k * k * inChannels, outChannels]) as tf.Tensor2D;
        const rows = tf.reshape(dy, [n * outHeight * outWidth, outChannels]) as tf.Tensor2D; // [N·Ho·Wo, C_out]
        const dw = tf.reshape(tf.matMul(columns, rows, true, false), [k, k, inChannels, outChannels]); // Pᵀ·dy
        const dx = col2im(tf.matMul(rows, weights, false, true), inputShape, k, stride, pad); // col2im(dy·Wᵀ)
        return [dx, dw];
      },
    };
  });
  ops.set(key, op as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor);
  return op as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor;
}

/**
 * conv2d(x, w) (w [k, k, C_in, C_out]) with stride and symmetric zero padding, the stock kernel forward and the
 * gradients for x and w as im2col matrix products (equal to the direct convolution's up to float rounding).
 */
export function conv2dIm2col(x: tf.Tensor4D, w: tf.Tensor4D, stride: number, pad: number): tf.Tensor4D {
  const [k, kw] = w.shape;
  if (k !== kw) throw new RangeError(`conv2dIm2col: square kernels only, got ${k}×${kw}`);
  if (x.shape[3] !== w.shape[2]) throw new RangeError(`conv2dIm2col: input has ${x.shape[3]} channels, the kernel expects ${w.shape[2]}`);
  return im2colOp(stride, pad)(x, w) as tf.Tensor4D;
}
