// Disposal of a bag's tensors (features and views) once a step or an evaluation is done with it.
import * as tf from '@tensorflow/tfjs';
import type { Bag } from '../../registry/contracts/model.js';

export function disposeBag(bag: Bag): void {
  tf.dispose([bag.features, ...Object.values(bag.views ?? {})]);
}
