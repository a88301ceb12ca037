import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../../src/core/logger.js';
import { Rng } from '../../../src/core/runtime/random.js';
import type { Classifier, ModelContext } from '../../../src/registry/index.js';
import mlp, { MlpOptions } from '../../../plugins/classifiers/mlp.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function context(inputDim: number, outputDim: number): ModelContext {
  const makeClassifier = (): Classifier => {
    throw new Error('unused');
  };
  return { inputDim, numClasses: outputDim, outputDim, rng: new Rng(1), logger: new MemoryLogger(), makeClassifier };
}

function assign(head: Classifier, key: string, values: number[][]): void {
  const entry = new Map(head.namedTensors()).get(key);
  if (!entry) throw new Error(`no ${key}`);
  entry.variable.assign(tf.tensor(values));
}

function assignVector(head: Classifier, key: string, values: number[]): void {
  const entry = new Map(head.namedTensors()).get(key);
  if (!entry) throw new Error(`no ${key}`);
  entry.variable.assign(tf.tensor1d(values));
}

describe('classifier/mlp', () => {
  it('computes W2 act(W1 z + b1) + b2 with torch Sequential keys', () => {
    const head = mlp.create(MlpOptions.parse({ hiddenDims: [2], activation: 'relu' }), context(3, 2)) as Classifier;
    expect(head.namedTensors().map(([k]) => k)).toEqual(['layers.0.weight', 'layers.0.bias', 'layers.3.weight', 'layers.3.bias']);
    // milkit stores Linear weights [in, out].
    assign(head, 'layers.0.weight', [[1, -1], [2, 0], [0, 1]]);
    assignVector(head, 'layers.0.bias', [0.5, -3]);
    assign(head, 'layers.3.weight', [[1, 2], [3, -1]]);
    assignVector(head, 'layers.3.bias', [0, 1]);
    const z = tf.tensor2d([[1, 2, 3]]);
    // hidden = relu([1+4+0+0.5, -1+0+3-3]) = relu([5.5, -1]) = [5.5, 0]; out = [5.5·1 + 0, 5.5·2 + 0 + 1] = [5.5, 12]
    expect(Array.from(head.forward(z, { training: false, rng: new Rng(0) }).dataSync())).toEqual([5.5, 12]);
  });

  it('is a linear head without hidden layers', () => {
    const head = mlp.create(MlpOptions.parse({ hiddenDims: [] }), context(3, 2)) as Classifier;
    expect(head.namedTensors().map(([k]) => k)).toEqual(['layers.0.weight', 'layers.0.bias']);
    expect(head.forward(tf.ones([4, 3]), { training: false, rng: new Rng(0) }).shape).toEqual([4, 2]);
  });

  it('rejects non-positive hidden widths', () => {
    expect(() => MlpOptions.parse({ hiddenDims: [0] })).toThrow();
  });
});
