/**
 * LeNet-style MNIST instance encoder (encoder/lenet-mnist)
 * Paper: M. Ilse, J. M. Tomczak, M. Welling, "Attention-based Deep Multiple Instance Learning", ICML 2018,
 *   the MNIST-bags instance network. arXiv:1802.04712
 * Implements: h = ReLU(W2 · flatten(pool(ReLU(conv2(pool(ReLU(conv1(x)))))))) with conv1 1→20 (5×5), conv2
 *   20→50 (5×5), 2×2 max pooling (stride 2), flatten 50·4·4 = 800, W2 800→500 (docs/methods/abmil.md#mnist-model)
 * Symbols: x [N, 28, 28, 1] normalised digits (the `images` bag view) · h [N, 500] instance embeddings
 * Choices: valid (unpadded) convolutions with bias and PyTorch's default initialisation, as the reference; the
 *   flatten runs over (channel, row, column) like PyTorch's NCHW `view`, so the 800→500 weight is exchangeable
 *   with a torch state_dict; torch keys follow Ilse's model.py (feature_extractor_part1.0 / .3,
 *   feature_extractor_part2.0); `embeddingDim` makes the 500 configurable (the paper's M)
 * Checked against: test/reference/lenet_mnist.py → test/reference/fixtures/lenet-mnist.json (forward and every
 *   weight's gradient, 1e-4) in test/plugins/encoders/lenet-mnist.test.ts
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { DataError, definePlugin, Module, type Encoder, type EncoderContext, type ForwardIO } from 'milkit';
import { Conv2d, Linear } from 'milkit/nn';

export const LenetMnistOptions = z.strictObject({
  embeddingDim: z.int().positive().max(4096).default(500).describe('M: width of the instance embeddings (500 in Ilse et al.)'),
});
export type LenetMnistOptions = z.output<typeof LenetMnistOptions>;

/** The digit side the two valid 5×5 convolutions and 2×2 poolings reduce to 4×4 (28 → 24 → 12 → 8 → 4). */
const SIDE = 28;
const FLAT = 50 * 4 * 4;

/** 2×2 max pooling with stride 2 on NHWC (the even sides here never leave a remainder). */
function maxPool2(x: tf.Tensor4D): tf.Tensor4D {
  return tf.maxPool(x, 2, 2, 'valid');
}

export class LenetMnistEncoder extends Module implements Encoder {
  readonly outputDim: number;
  private readonly conv1: Conv2d;
  private readonly conv2: Conv2d;
  private readonly fc: Linear;

  constructor(options: LenetMnistOptions, ctx: EncoderContext) {
    super();
    this.outputDim = options.embeddingDim;
    // Sequential indices of the reference: Conv(0) ReLU(1) MaxPool(2) Conv(3) ReLU(4) MaxPool(5); Linear(0) ReLU(1).
    this.conv1 = this.addModule('feature_extractor_part1.0', new Conv2d(1, 20, { kernelSize: 5, padding: 0, bias: true, algorithm: 'im2col' }, ctx.rng.fork('conv1')));
    this.conv2 = this.addModule('feature_extractor_part1.3', new Conv2d(20, 50, { kernelSize: 5, padding: 0, bias: true, algorithm: 'im2col' }, ctx.rng.fork('conv2')));
    this.fc = this.addModule('feature_extractor_part2.0', new Linear(FLAT, options.embeddingDim, ctx.rng.fork('fc')));
  }

  forward(instances: tf.Tensor, _io: ForwardIO): tf.Tensor2D {
    const [n, height, width, channels] = instances.shape;
    if (instances.rank !== 4 || height !== SIDE || width !== SIDE || channels !== 1) {
      throw new DataError('encoder-input-shape', `encoder lenet-mnist: expected raw digits [N, 28, 28, 1], got [${instances.shape.join(', ')}].`, {
        hint: 'Use a dataset whose `images` view holds 28×28 grey digits (mnist-bags), or set model/encoder=none.',
      });
    }
    return tf.tidy(() => {
      const x = instances as tf.Tensor4D; // [N, 28, 28, 1]
      const a = maxPool2(tf.relu(this.conv1.forward(x))); // [N, 12, 12, 20]
      const b = maxPool2(tf.relu(this.conv2.forward(a))); // [N, 4, 4, 50]
      const flat = tf.reshape(tf.transpose(b, [0, 3, 1, 2]), [n ?? 0, FLAT]) as tf.Tensor2D; // [N, 800] in torch's (C, H, W) order
      return tf.relu(this.fc.forward(flat)); // [N, M]  h
    });
  }
}

export default definePlugin({
  kind: 'encoder',
  name: 'lenet-mnist',
  summary: 'Ilse et al. 2018 LeNet-style digit encoder (28×28×1 → 500), trained end to end with the aggregator',
  paper: { cite: 'Ilse, Tomczak, Welling, Attention-based Deep Multiple Instance Learning, ICML 2018', arxiv: '1802.04712' },
  options: LenetMnistOptions,
  capabilities: { inputView: 'images', trainable: true, instanceShape: [SIDE, SIDE, 1] },
  create: (options, ctx) => new LenetMnistEncoder(options, ctx),
});
