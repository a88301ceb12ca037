// 2-D convolutions (regular and depthwise) in tfjs' NHWC layout, carrying the permutation to PyTorch's
// [out, in/groups, kH, kW] weight for checkpoint exchange.
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../runtime/random.js';
import { initWeight } from './init.js';
import { Module } from './module.js';

/** Conv weight inits: PyTorch default, or N(0, 2/(k·k·out)) (fan-OUT normal, MobileNet/LIPN, methods.md §1.10). */
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

  /** [N, H, W, in] → [N, H', W', out]. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const pad = this.padding;
      const y = this.depthwise
        ? tf.depthwiseConv2d(x, this.weight as tf.Tensor4D, this.stride, pad) // [N, H', W', C]
        : tf.conv2d(x, this.weight as tf.Tensor4D, this.stride, pad); // [N, H', W', out]
      return this.bias ? (tf.add(y, this.bias) as tf.Tensor4D) : y;
    });
  }
}
