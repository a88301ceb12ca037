// MobileNetV4-conv building blocks and the "tiny" variant HDMIL's LIPN uses on 16×16 thumbnails
// (docs/methods/hdmil.md#lipn-architecture): Conv-BN(-ReLU) blocks and Universal Inverted Bottlenecks of the ExtraDW kind.
// Module names follow the reference so state_dict keys match (features.<i>.block.0, start_dw_conv, ...).
// At eval every BatchNorm is folded into its convolution (one fused conv + bias + ReLU kernel per layer).
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../runtime/random.js';
import { BatchNorm } from './batchnorm.js';
import { Conv2d, type ConvInit } from './conv.js';
import { ModuleList } from './containers.js';
import { Linear } from './layers.js';
import { Module } from './module.js';

/** Conv (no bias) → BatchNorm → optional ReLU, registered as `block.0` / `block.1`. */
export class ConvBn extends Module {
  readonly conv: Conv2d;
  readonly norm: BatchNorm;

  constructor(inChannels: number, outChannels: number, kernelSize: number, stride: number, rng: Rng, readonly activation = true, init: ConvInit = 'fan-out-normal') {
    super();
    this.conv = new Conv2d(inChannels, outChannels, { kernelSize, stride, init }, rng);
    this.norm = new BatchNorm(outChannels);
    this.addModule('block', new ModuleList<Module>([this.conv, this.norm]));
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return convBn(this.conv, this.norm, x, training, this.activation);
  }
}

/** Conv → BatchNorm → optional ReLU; at eval the BatchNorm is folded into one fused convolution. */
function convBn(conv: Conv2d, norm: BatchNorm, x: tf.Tensor4D, training: boolean, relu: boolean): tf.Tensor4D {
  return tf.tidy(() => {
    if (!training) {
      const { scale, shift } = norm.inferenceAffine(); // [out], [out]
      return conv.forwardFolded(x, scale, shift, relu); // [N, H', W', out]
    }
    const y = norm.forward(conv.forward(x), true); // [N, H', W', out]
    return relu ? tf.relu(y) : y;
  });
}

/** Expansion width: in·expand rounded to a multiple of 8 (MobileNet's make_divisible, min 8, ≤ 10% shrink). */
export function makeDivisible(value: number, divisor = 8): number {
  const rounded = Math.max(divisor, Math.floor(value + divisor / 2) - (Math.floor(value + divisor / 2) % divisor));
  return rounded < 0.9 * value ? rounded + divisor : rounded;
}

export interface ExtraDwOptions {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly startKernel: number;
  readonly middleKernel: number;
  readonly stride: number;
  readonly expandRatio: number;
}

/**
 * Universal Inverted Bottleneck, ExtraDW form: depthwise k (stride 1) + BN, 1×1 expand + BN + ReLU,
 * depthwise k (stride s) + BN + ReLU, 1×1 project + BN; residual only when stride 1 and in = out.
 */
export class ExtraDwBlock extends Module {
  private readonly startDw: Conv2d;
  private readonly startNorm: BatchNorm;
  private readonly expand: Conv2d;
  private readonly expandNorm: BatchNorm;
  private readonly middleDw: Conv2d;
  private readonly middleNorm: BatchNorm;
  private readonly project: Conv2d;
  private readonly projectNorm: BatchNorm;
  private readonly residual: boolean;

  constructor(o: ExtraDwOptions, rng: Rng, init: ConvInit = 'fan-out-normal') {
    super();
    const wide = makeDivisible(o.inChannels * o.expandRatio);
    this.startDw = this.addModule('start_dw_conv', new Conv2d(o.inChannels, o.inChannels, { kernelSize: o.startKernel, groups: o.inChannels, init }, rng.fork('start_dw_conv')));
    this.startNorm = this.addModule('start_dw_norm', new BatchNorm(o.inChannels));
    this.expand = this.addModule('expand_conv', new Conv2d(o.inChannels, wide, { kernelSize: 1, init }, rng.fork('expand_conv')));
    this.expandNorm = this.addModule('expand_norm', new BatchNorm(wide));
    this.middleDw = this.addModule('middle_dw_conv', new Conv2d(wide, wide, { kernelSize: o.middleKernel, stride: o.stride, groups: wide, init }, rng.fork('middle_dw_conv')));
    this.middleNorm = this.addModule('middle_dw_norm', new BatchNorm(wide));
    this.project = this.addModule('proj_conv', new Conv2d(wide, o.outChannels, { kernelSize: 1, init }, rng.fork('proj_conv')));
    this.projectNorm = this.addModule('proj_norm', new BatchNorm(o.outChannels));
    this.residual = o.stride === 1 && o.inChannels === o.outChannels;
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => {
      const start = convBn(this.startDw, this.startNorm, x, training, false); // [N, H, W, in]  no activation
      const wide = convBn(this.expand, this.expandNorm, start, training, true); // [N, H, W, wide]
      const middle = convBn(this.middleDw, this.middleNorm, wide, training, true); // [N, H/s, W/s, wide]
      const out = convBn(this.project, this.projectNorm, middle, training, false); // [N, H/s, W/s, out]
      return this.residual ? (tf.add(out, x) as tf.Tensor4D) : out;
    });
  }
}

/**
 * MobileNetV4-conv-tiny for 16×16 thumbnails: ConvBn 3→16/s2, 16→16/s2, 16→16 k1, 16→48/s2, 48→24 k1,
 * ExtraDW 24→48 (k5/k5, s2, ×2), ExtraDW 48→64 (k3/k3, s2, ×2), global average pool, ConvBn 64→64 k1 on the
 * pooled vector, Linear 64→C. Keys: features.<0-6>, conv, classifier.
 */
export class MobileNetV4ConvTiny extends Module {
  private readonly stem: readonly ConvBn[];
  private readonly bottlenecks: readonly ExtraDwBlock[];
  private readonly head: ConvBn;
  private readonly classifier: Linear;

  constructor(numOutputs: number, rng: Rng) {
    super();
    const convBn = (i: number, cin: number, cout: number, k: number, s: number): ConvBn => new ConvBn(cin, cout, k, s, rng.fork(`features.${i}`));
    this.stem = [convBn(0, 3, 16, 3, 2), convBn(1, 16, 16, 3, 2), convBn(2, 16, 16, 1, 1), convBn(3, 16, 48, 3, 2), convBn(4, 48, 24, 1, 1)];
    this.bottlenecks = [
      new ExtraDwBlock({ inChannels: 24, outChannels: 48, startKernel: 5, middleKernel: 5, stride: 2, expandRatio: 2 }, rng.fork('features.5')),
      new ExtraDwBlock({ inChannels: 48, outChannels: 64, startKernel: 3, middleKernel: 3, stride: 2, expandRatio: 2 }, rng.fork('features.6')),
    ];
    this.addModule('features', new ModuleList<Module>([...this.stem, ...this.bottlenecks]));
    this.head = this.addModule('conv', new ConvBn(64, 64, 1, 1, rng.fork('conv')));
    // Linear N(0, 0.01²), zero bias (docs/methods/hdmil.md#lipn-architecture).
    this.classifier = this.addModule('classifier', new Linear(64, numOutputs, rng.fork('classifier'), { init: 'zeros', biasInit: 'zeros' }));
    const classifierRng = rng.fork('classifier-normal');
    tf.tidy(() => this.classifier.weight.assign(tf.tensor2d(classifierRng.normalArray(64 * numOutputs, 0, 0.01), [64, numOutputs])));
  }

  /** [N, 16, 16, 3] input already centred (x/255 - 0.5) → [N, C] logits. */
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      let y = x; // [N, 16, 16, 3]
      for (const block of this.stem) y = block.forward(y, training); // → [N, 2, 2, 24]
      for (const block of this.bottlenecks) y = block.forward(y, training); // → [N, 1, 1, 64]
      const pooled = tf.mean(y, [1, 2], true) as tf.Tensor4D; // [N, 1, 1, 64]  global average pool
      const head = this.head.forward(pooled, training); // [N, 1, 1, 64]
      const flat = tf.reshape(head, [head.shape[0], 64]) as tf.Tensor2D; // [N, 64]
      return this.classifier.forward(flat); // [N, C]
    });
  }
}
