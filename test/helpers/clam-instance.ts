// The CLAM instance term of HDMIL parity tests: Σ_i w_i · smoothSVM(logits_i, y_i) over DMIN's `instanceLogits`
// [M,2], `instanceTargets` [M], `instanceWeights` [M] (methods.md §1.5, §3.5), on the shared nn smooth-SVM.
import * as tf from '@tensorflow/tfjs';
import type { ModelOutput } from '../../src/registry/index.js';
import { smoothTop1SvmLosses } from '../../src/core/nn/smooth-svm.js';

export function instanceLossTerm(output: ModelOutput): tf.Scalar | undefined {
  const logits = output.extras?.instanceLogits as tf.Tensor2D | undefined;
  const targets = output.extras?.instanceTargets as tf.Tensor1D | undefined;
  const weights = output.extras?.instanceWeights as tf.Tensor1D | undefined;
  if (!logits || !targets || !weights) return undefined;
  return tf.tidy(() => tf.sum(tf.mul(smoothTop1SvmLosses(logits, targets), weights)) as tf.Scalar);
}
