// The fine → coarse map of a label hierarchy as the 0/1 matrix HMIL's losses multiply by
// (docs/methods/hmil.md#label-hierarchy).
import * as tf from '@tensorflow/tfjs';
import type { LabelHierarchy } from 'milkit';

/** [Kf, Kc] 0/1 map matrix M of a hierarchy (M[f, c] = 1 iff c is f's parent). */
export function hierarchyMatrix(hierarchy: LabelHierarchy): tf.Tensor2D {
  const numCoarse = hierarchy.coarseNames.length;
  const values = hierarchy.fineToCoarse.flatMap((c) => Array.from({ length: numCoarse }, (_, k) => (k === c ? 1 : 0)));
  return tf.tensor2d(values, [hierarchy.fineToCoarse.length, numCoarse]);
}
