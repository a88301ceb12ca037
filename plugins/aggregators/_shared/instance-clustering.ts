// CLAM's instance-level clustering selection (docs/methods/clam.md#instance-clustering-loss, docs/methods/hdmil.md#clustering-loss): from softmaxed attention, pick the top-k
// (pseudo-label 1) and bottom-k (0) instances of the true class, and with subtyping the top-k (0) of every other
// class; run them through that class's instance classifier. The result is the `instance*` extras the
// `loss/clam-instance` plugin reads, weighted so Σ w·ℓ equals CLAM's sum of per-classifier means (÷ C when subtyping).
import * as tf from '@tensorflow/tfjs';
import { gatherRows, topKIndices } from 'milkit/nn';

/** The extras this selection produces. */
export const INSTANCE_CLUSTERING_EXTRAS = ['instanceLogits', 'instanceTargets', 'instanceWeights'] as const;

export interface InstanceClusteringOptions {
  /** k: instances per side (clamped to N for small bags; the reference errors there). */
  readonly kSample: number;
  readonly subtyping: boolean;
  readonly numClasses: number;
}

/**
 * attention [K, N] softmaxed over N (K = 1: one row serves every class, CLAM-SB; K = C: row c for class c),
 * h [N, E] the features the instance classifiers see, `classify(c, rows)` → [M, 2] logits of classifier c.
 * Returns instanceLogits [M, 2], instanceTargets [M] (int32 0/1), instanceWeights [M]; empty when no classifier
 * contributes (never the case for a valid label).
 */
export function instanceClusteringExtras(
  attention: tf.Tensor2D,
  h: tf.Tensor2D,
  label: number,
  classify: (classIndex: number, rows: tf.Tensor2D) => tf.Tensor2D,
  options: InstanceClusteringOptions,
): Record<string, tf.Tensor> {
  return tf.tidy(() => {
    const [branches, n] = attention.shape;
    const k = Math.min(options.kSample, n);
    const scale = options.subtyping ? 1 / options.numClasses : 1;
    const logits: tf.Tensor2D[] = [];
    const targets: number[] = [];
    const weights: number[] = [];
    // The ranking carries no gradient (torch.topk's indices do not either), so it is done on the host from one read
    // of the attention: no TopK/Neg/OneHot/Cast kernels and no [2k, N] selection matrix, whose matmul also cost a
    // gradient for the (constant) selection. The rows go through gatherRows: a gather, and a scatter-add backward.
    let scores: Float32Array | undefined;
    for (let c = 0; c < options.numClasses; c += 1) {
      // Loop over classes (a handful), never over instances.
      const inClass = c === label;
      if (!inClass && !options.subtyping) continue;
      const row = branches === 1 ? 0 : c;
      scores ??= attention.dataSync() as Float32Array; // [K·N]
      const rowScores = scores.subarray(row * n, (row + 1) * n);
      const top = topKIndices(rowScores, k, 'largest');
      const picked = inClass ? [...top, ...topKIndices(rowScores, k, 'smallest')] : [...top]; // [2k] or [k]
      logits.push(classify(c, gatherRows(h, picked))); // [2k or k, 2]
      const count = inClass ? 2 * k : k;
      for (let i = 0; i < count; i += 1) {
        targets.push(inClass && i < k ? 1 : 0);
        weights.push(scale / count);
      }
    }
    if (logits.length === 0) return {};
    return {
      instanceLogits: tf.concat(logits, 0), // [M, 2]
      instanceTargets: tf.tensor1d(targets, 'int32'), // [M]
      instanceWeights: tf.tensor1d(weights), // [M]
    };
  });
}
