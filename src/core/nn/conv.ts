// 2-D convolutions (regular and depthwise, any stride, symmetric zero padding) in tfjs' NHWC layout, carrying
// the permutation to PyTorch's [out, in/groups, kH, kW] weight for checkpoint exchange. Gradients are written
// with forward (dilated) convolutions only: the wasm backend has no Conv2DBackpropFilter and no depthwise
// backprop kernels, so tfjs' own conv gradients fail there.
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../runtime/random.js';
import { initWeight } from './init.js';
import { conv2dIm2col } from './im2col-conv.js';
import { Module } from './module.js';

type GradSave = (tensors: tf.Tensor[]) => void;

/** Zero-interleaves dy [N, H, W, C] by `stride`: [N, s(H-1)+1, s(W-1)+1, C] with dy at multiples of s. */
function dilate(dy: tf.Tensor4D, stride: number): tf.Tensor4D {
  if (stride === 1) return dy;
  const [n, h, w, c] = dy.shape;
  const spread = tf.pad(tf.reshape(dy, [n, h, 1, w, 1, c]), [[0, 0], [0, 0], [0, stride - 1], [0, 0], [0, stride - 1], [0, 0]]); // [N, H, s, W, s, C]
  return tf.slice(tf.reshape(spread, [n, h * stride, w * stride, c]), [0, 0, 0, 0], [n, (h - 1) * stride + 1, (w - 1) * stride + 1, c]) as tf.Tensor4D;
}

/**
 * dx of y = conv(pad(x, p), w, stride): a stride-1 valid correlation of the dilated dy (padded by k-1, and on the
 * right up to the padded input size) with the spatially flipped kernel, cropped back to the unpadded input.
 */
function inputGradient(dy: tf.Tensor4D, inputShape: readonly number[], k: number, stride: number, pad: number, correlate: (z: tf.Tensor4D) => tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [, height = 0, width = 0] = inputShape;
    const dilated = dilate(dy, stride); // [N, s(Ho-1)+1, s(Wo-1)+1, C_out]
    const [, dh, dw] = dilated.shape;
    const paddedHeight = height + 2 * pad;
    const paddedWidth = width + 2 * pad;
    const framed = tf.pad(dilated, [[0, 0], [k - 1, paddedHeight - dh], [k - 1, paddedWidth - dw], [0, 0]]); // [N, Hp+k-1, Wp+k-1, C_out]
    const full = correlate(framed); // [N, Hp, Wp, C_in]
    return tf.slice(full, [0, pad, pad, 0], [-1, height, width, -1]) as tf.Tensor4D;
  });
}

/**
 * dW of a regular conv as one dilated convolution: with the channels as batch and the instances as channels,
 * dW[i, j, ci, co] = Σ_{n,y,x} x_pad[n, s·y + i, s·x + j, ci] · dy[n, y, x, co] is conv(x_padᵀ, dyᵀ, dilation s).
 */
function filterGradient(x: tf.Tensor4D, dy: tf.Tensor4D, k: number, stride: number, pad: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [, , , inChannels] = x.shape;
    const outChannels = dy.shape[3];
    const padded = pad > 0 ? tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) : x; // [N, Hp, Wp, C_in]
    const inputs = tf.transpose(padded, [3, 1, 2, 0]) as tf.Tensor4D; // [C_in, Hp, Wp, N]
    const filters = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [Ho, Wo, N, C_out]
    const full = tf.conv2d(inputs, filters, 1, 'valid', 'NHWC', [stride, stride]); // [C_in, ≥k, ≥k, C_out]
    return tf.transpose(tf.slice(full, [0, 0, 0, 0], [inChannels, k, k, outChannels]), [1, 2, 0, 3]) as tf.Tensor4D; // [k, k, C_in, C_out]
  });
}

/** dW of a depthwise conv the same way, every (instance, channel) pair its own depthwise channel, summed over instances. */
function depthwiseFilterGradient(x: tf.Tensor4D, dy: tf.Tensor4D, k: number, stride: number, pad: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, , , channels] = x.shape;
    const [, outHeight, outWidth] = dy.shape;
    const padded = pad > 0 ? tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) : x; // [N, Hp, Wp, C]
    const [, paddedHeight, paddedWidth] = padded.shape;
    const inputs = tf.reshape(tf.transpose(padded, [1, 2, 0, 3]), [1, paddedHeight, paddedWidth, n * channels]) as tf.Tensor4D; // [1, Hp, Wp, N·C]
    const filters = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), [outHeight, outWidth, n * channels, 1]) as tf.Tensor4D; // [Ho, Wo, N·C, 1]
    const full = tf.depthwiseConv2d(inputs, filters, 1, 'valid', 'NHWC', [stride, stride]); // [1, ≥k, ≥k, N·C]
    const perInstance = tf.reshape(tf.slice(full, [0, 0, 0, 0], [1, k, k, n * channels]), [k, k, n, channels]); // [k, k, N, C]
    return tf.reshape(tf.sum(perInstance, 2), [k, k, channels, 1]) as tf.Tensor4D; // [k, k, C, 1]
  });
}

const convOps = new Map<string, (x: tf.Tensor, w: tf.Tensor) => tf.Tensor>();

function convOp(stride: number, pad: number, depthwise: boolean): (x: tf.Tensor, w: tf.Tensor) => tf.Tensor {
  const key = `${stride}/${pad}/${depthwise ? 'dw' : 'conv'}`;
  const cached = convOps.get(key);
  if (cached) return cached;
  const op = tf.customGrad((...args: Array<tf.Tensor | GradSave>) => {
    const x = args[0] as tf.Tensor4D;
    const w = args[1] as tf.Tensor4D; // [k, k, C_in, C_out] or [k, k, C, 1]
    (args[2] as GradSave)([x, w]);
    const value = depthwise ? tf.depthwiseConv2d(x, w, stride, pad) : tf.conv2d(x, w, stride, pad);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        const g = dy as tf.Tensor4D; // [N, Ho, Wo, C_out]
        const [k] = ws.shape;
        const flipped = tf.reverse(ws, [0, 1]);
        const dx = depthwise
          ? inputGradient(g, xs.shape, k, stride, pad, (z) => tf.depthwiseConv2d(z, flipped as tf.Tensor4D, 1, 'valid'))
          : inputGradient(g, xs.shape, k, stride, pad, (z) => tf.conv2d(z, tf.transpose(flipped, [0, 1, 3, 2]) as tf.Tensor4D, 1, 'valid'));
        const dw = depthwise ? depthwiseFilterGradient(xs, g, k, stride, pad) : filterGradient(xs, g, k, stride, pad);
        flipped.dispose();
        return [dx, dw];
      },
    };
  });
  convOps.set(key, op as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor);
  return op as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor;
}

/** conv2d(x, w) with stride and symmetric zero padding, differentiable on every backend. */
export function conv2dAnyBackend(x: tf.Tensor4D, w: tf.Tensor4D, stride: number, pad: number): tf.Tensor4D {
  return convOp(stride, pad, false)(x, w) as tf.Tensor4D;
}

/** depthwiseConv2d(x, w) (channel multiplier 1), stride and symmetric zero padding, differentiable on every backend. */
export function depthwiseConv2dAnyBackend(x: tf.Tensor4D, w: tf.Tensor4D, stride: number, pad: number): tf.Tensor4D {
  return convOp(stride, pad, true)(x, w) as tf.Tensor4D;
}

/** Conv weight inits: PyTorch default, or N(0, 2/(k·k·out)) (fan-OUT normal, MobileNet/LIPN, docs/methods/conventions.md#initialisations). */
export type ConvInit = 'torch-default' | 'fan-out-normal';

export interface Conv2dOptions {
  readonly kernelSize: number;
  readonly stride?: number;
  /** Symmetric zero padding; default (k-1)/2. */
  readonly padding?: number;
  /** 1 (regular) or inChannels (depthwise, one filter per channel). */
  readonly groups?: number;
  readonly bias?: boolean;
  readonly init?: ConvInit;
  /**
   * How a regular convolution runs: 'direct' (tfjs conv kernels) or 'im2col' (patch matrix + one matrix product, BLAS
   * on wasm; fast for small images such as 28×28 digits, but the patch matrix is k² times the input). Default 'direct'.
   */
  readonly algorithm?: 'direct' | 'im2col';
}

/**
 * Conv2d on NHWC input. Regular weights are stored [k, k, in, out] (torch [out, in, k, k]: perm [3, 2, 0, 1]);
 * depthwise weights [k, k, C, 1] (torch [C, 1, k, k]: perm [2, 3, 0, 1]).
 */
export class Conv2d extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | undefined;
  readonly depthwise: boolean;
  private readonly stride: number;
  private readonly padding: number;
  private readonly im2col: boolean;

  constructor(readonly inChannels: number, readonly outChannels: number, options: Conv2dOptions, rng: Rng) {
    super();
    const k = options.kernelSize;
    const groups = options.groups ?? 1;
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? Math.floor((k - 1) / 2);
    if (groups !== 1 && !(groups === inChannels && outChannels === inChannels)) {
      throw new RangeError(`Conv2d: only regular (groups 1) and depthwise (groups = in = out) convolutions are supported, got groups ${groups} for ${inChannels}→${outChannels}`);
    }
    this.depthwise = groups !== 1;
    if (this.depthwise && options.algorithm === 'im2col') throw new RangeError('Conv2d: the im2col algorithm is for regular convolutions only');
    this.im2col = options.algorithm === 'im2col';
    const torchShape = [outChannels, inChannels / groups, k, k];
    const scheme = options.init ?? 'torch-default';
    const torchWeight = scheme === 'fan-out-normal'
      ? tf.tensor(rng.normalArray(torchShape.reduce((a, b) => a * b, 1), 0, Math.sqrt(2 / (k * k * outChannels))), torchShape)
      : initWeight('torch-default', torchShape, rng);
    const perm = this.depthwise ? [2, 3, 0, 1] : [3, 2, 0, 1];
    // Inverse of perm takes the torch tensor into milkit's layout.
    const inverse = perm.map((_, axis) => perm.indexOf(axis));
    this.weight = this.addParameter('weight', tf.tidy(() => tf.transpose(torchWeight, inverse)), { perm });
    torchWeight.dispose();
    if (options.bias) {
      const fanIn = (inChannels / groups) * k * k;
      const bound = 1 / Math.sqrt(fanIn);
      this.bias = this.addParameter('bias', scheme === 'torch-default' ? tf.tensor1d(rng.uniformArray(outChannels, -bound, bound)) : tf.zeros([outChannels]));
    } else this.bias = undefined;
  }

  /**
   * Inference-only y = act(conv(x, W·scale) + shift) in one fused kernel, with per-output-channel `scale` and
   * `shift` [out] (a BatchNorm folded into the convolution). No bias of its own may be set.
   */
  forwardFolded(x: tf.Tensor4D, scale: tf.Tensor1D, shift: tf.Tensor1D, relu: boolean): tf.Tensor4D {
    if (this.bias) throw new RangeError('Conv2d.forwardFolded: fold the bias into `shift` instead');
    return tf.tidy(() => {
      const activation = relu ? 'relu' : 'linear';
      if (this.depthwise) {
        const filter = tf.mul(this.weight, tf.reshape(scale, [1, 1, -1, 1])) as tf.Tensor4D; // [k, k, C, 1]
        return tf.fused.depthwiseConv2d({ x, filter, strides: this.stride, pad: this.padding, bias: shift, activation });
      }
      const filter = tf.mul(this.weight, tf.reshape(scale, [1, 1, 1, -1])) as tf.Tensor4D; // [k, k, in, out]
      return tf.fused.conv2d({ x, filter, strides: this.stride, pad: this.padding, bias: shift, activation });
    });
  }

  /** [N, H, W, in] → [N, H', W', out]. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const pad = this.padding;
      const y = this.depthwise
        ? depthwiseConv2dAnyBackend(x, this.weight as tf.Tensor4D, this.stride, pad) // [N, H', W', C]
        : this.im2col
          ? conv2dIm2col(x, this.weight as tf.Tensor4D, this.stride, pad) // [N, H', W', out]
          : conv2dAnyBackend(x, this.weight as tf.Tensor4D, this.stride, pad); // [N, H', W', out]
      return this.bias ? (tf.add(y, this.bias) as tf.Tensor4D) : y;
    });
  }
}
