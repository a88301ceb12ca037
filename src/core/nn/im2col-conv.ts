// A regular 2-D convolution as one matrix product over im2col patches, forward and backward. On the wasm backend
// every matrix product runs as OpenBLAS sgemm (src/core/runtime/blas-kernels.ts), while the stock conv kernel
// and, worse, the dilated convolutions conv.ts writes its gradients with (channels as batch, instances as channels,
// a filter as large as the output) run on XNNPACK's direct path, which is slow for those shapes. For small images
// (Ilse's 28×28 MNIST digits) the patch matrix is small, so the three products of a training step —
//   y = P·W, dW = Pᵀ·dy, dP = dy·Wᵀ (then folded back onto the input: col2im) —
// cost about what the arithmetic says. The patch matrix is k² times the input, so large inputs keep conv.ts.
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
        for (let i = 0; i < k; i += 1) {
          const y = oy * stride + i - pad;
          if (y < 0 || y >= height) continue;
          for (let j = 0; j < k; j += 1) {
            const xx = ox * stride + j - pad;
            if (xx < 0 || xx >= width) continue;
            const from = ((b * height + y) * width + xx) * channels;
            const to = row * rowLength + (i * k + j) * channels;
            for (let c = 0; c < channels; c += 1) patches[to + c] = source[from + c] as number;
          }
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
        for (let i = 0; i < k; i += 1) {
          const y = oy * stride + i - pad;
          if (y < 0 || y >= height) continue;
          for (let j = 0; j < k; j += 1) {
            const xx = ox * stride + j - pad;
            if (xx < 0 || xx >= width) continue;
            const to = ((b * height + y) * width + xx) * channels;
            const from = row * rowLength + (i * k + j) * channels;
            for (let c = 0; c < channels; c += 1) image[to + c] = (image[to + c] as number) + (source[from + c] as number);
          }
        }
      }
    }
  }
  return tf.tensor4d(image, inputShape);
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
    const columns = im2col(x, k, stride, pad); // [N·Ho·Wo, k·k·C_in]
    const weights = tf.reshape(w, [k * k * inChannels, outChannels]) as tf.Tensor2D;
    // The patches are kept for dW (cheaper than cutting them again); x itself only lends its shape.
    (args[2] as GradSave)([columns, weights]);
    const value = tf.reshape(tf.matMul(columns, weights), [n, outHeight, outWidth, outChannels]); // [N, Ho, Wo, C_out]
    const inputShape = x.shape as [number, number, number, number];
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [cols, flat] = saved as [tf.Tensor2D, tf.Tensor2D];
        const rows = tf.reshape(dy, [n * outHeight * outWidth, outChannels]) as tf.Tensor2D; // [N·Ho·Wo, C_out]
        const dw = tf.reshape(tf.matMul(cols, rows, true, false), [k, k, inChannels, outChannels]); // Pᵀ·dy
        const dx = col2im(tf.matMul(rows, flat, false, true), inputShape, k, stride, pad); // col2im(dy·Wᵀ)
        return [dx, dw];
      },
    };
  });
  ops.set(key, op as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor);
  return op as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor;
}

/**
 * conv2d(x, w) (w [k, k, C_in, C_out]) with stride and symmetric zero padding as im2col + one matrix product, with
 * exact gradients for x and w (products and sums only; equal to the direct convolution up to float rounding).
 */
export function conv2dIm2col(x: tf.Tensor4D, w: tf.Tensor4D, stride: number, pad: number): tf.Tensor4D {
  const [k, kw] = w.shape;
  if (k !== kw) throw new RangeError(`conv2dIm2col: square kernels only, got ${k}×${kw}`);
  if (x.shape[3] !== w.shape[2]) throw new RangeError(`conv2dIm2col: input has ${x.shape[3]} channels, the kernel expects ${w.shape[2]}`);
  return im2colOp(stride, pad)(x, w) as tf.Tensor4D;
}
