// Binary cross-entropy with logits against one-hot slide labels (torch BCEWithLogitsLoss, mean over classes),
// shared by the bag-level `loss/binary-cross-entropy` and DSMIL's max-instance loss.
import * as tf from '@tensorflow/tfjs';

/** mean_c [max(x,0) - x·t + log(1 + exp(-|x|))] for logits x [1, C] and t = one-hot(label) (stable form). */
export function oneHotBceWithLogits(logits: tf.Tensor2D, label: number): tf.Scalar {
  return tf.tidy(() => {
    const target = tf.cast(tf.oneHot([label], logits.shape[1]), 'float32'); // [1, C]
    const perClass = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, target)), tf.log1p(tf.exp(tf.neg(tf.abs(logits))))); // [1, C]
    return tf.mean(perClass) as tf.Scalar;
  });
}

/** -log softmax(logits)_label for logits [1, C]. */
export function crossEntropyWithLogits(logits: tf.Tensor2D, label: number): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), tf.cast(tf.oneHot([label], logits.shape[1]), 'float32')))) as tf.Scalar);
}
