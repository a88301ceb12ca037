// Instance-level AUC of class-wise attention reads the row of the class the metric is about: the slide's true
// class (docs/predict.md#heatmaps names the same rows), and pools every slide whose ground truth marks instances,
// class 0's included (in a hierarchical task such as hierarchical MNIST, every bag holds its key digit).
// A stub model makes the rows known exactly: row c scores instance i with feature column c, and the marked
// instances of a class-c bag are the ones with a high column c and a low value in every other column.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluate } from '../../../src/core/engine/evaluate.js';
import type { MilModel } from '../../../src/core/engine/model.js';
import { Rng } from '../../../src/core/runtime/random.js';
import type { AggregatorOutput, BagData, BagSource, Bag, Metric, ResolvedPlugin, SlideRecord } from '../../../src/registry/index.js';
import { builtinRegistry } from '../../helpers/registry.js';

const CLASSES = 3;
const DIM = CLASSES;

/** Bags of 10 instances; the first `marked` of a class-c bag have column c = 5 and every other column = −5. */
function source(labels: readonly number[], marked = 3): BagSource {
  const rng = new Rng(11);
  const slides: SlideRecord[] = [];
  const bags = new Map<string, BagData>();
  labels.forEach((label, s) => {
    const n = 10;
    const features = new Float32Array(n * DIM);
    const instanceLabels = new Uint8Array(n);
    for (let i = 0; i < n; i += 1) {
      for (let c = 0; c < DIM; c += 1) features[i * DIM + c] = rng.normal() * 0.1;
      if (i < marked) {
        instanceLabels[i] = 1;
        for (let c = 0; c < DIM; c += 1) features[i * DIM + c] = c === label ? 5 : -5;
      }
    }
    const slideId = `b${s}`;
    slides.push({ slideId, caseId: slideId, label, labelName: `class-${label}`, meta: {} });
    bags.set(slideId, { slideId, n, d: DIM, features, instanceLabels });
  });
  return { slides, featureDim: DIM, classNames: Array.from({ length: CLASSES }, (_, c) => `class-${c}`), load: async (id) => bags.get(id) as BagData };
}

/** Class-wise attention stub: instanceScores [C, N] = softmax over instances of the features' transposed columns. */
function stubModel(rows: number): MilModel {
  const stub = {
    hierarchy: undefined,
    screening: false,
    capabilities: { instanceScores: true, needsViews: [] },
    setTraining: () => undefined,
    forward: (bag: Bag): AggregatorOutput => tf.tidy(() => {
      const columns = tf.transpose(bag.features.slice([0, 0], [-1, rows])) as tf.Tensor2D; // [rows, N]
      return { embedding: tf.zeros([1, 1]) as tf.Tensor2D, logits: tf.zeros([1, CLASSES]) as tf.Tensor2D, instanceScores: tf.softmax(columns) as tf.Tensor2D };
    }),
    losses: () => ({ total: tf.scalar(0), terms: {} }),
  };
  return stub as unknown as MilModel;
}

let auc: Metric;

beforeAll(async () => {
  await tf.setBackend('cpu');
  const registry = builtinRegistry();
  auc = registry.create((await registry.resolve('metric', 'auc', { key: 'eval.instanceMetric' })) as ResolvedPlugin<'metric'>, { numClasses: 2 });
});

async function instanceAuc(model: MilModel, data: BagSource): Promise<number | null | undefined> {
  const result = await evaluate({ model, source: data, slides: data.slides, numClasses: CLASSES, metrics: [], rng: new Rng(0), instanceMetric: auc });
  return result.instanceAuc?.value;
}

describe('instance AUC of class-wise attention', () => {
  it('reads the true class\'s row: perfect here, where the last class\'s row ranks the marked instances last', async () => {
    const data = source([0, 1, 2, 0, 1, 2]);
    expect(await instanceAuc(stubModel(CLASSES), data)).toBe(1);
    // The former rule (the last row for every slide) on the same bags: class-0 and class-1 bags' marked instances
    // score −5 in column 2, below every unmarked instance; only class-2 bags rank them first.
    const lastRowOnly = stubModel(1);
    const shifted: BagSource = {
      ...data,
      load: async (id) => {
        const bag = await data.load(id);
        const features = new Float32Array(bag.n * DIM);
        for (let i = 0; i < bag.n; i += 1) features[i * DIM] = bag.features[i * DIM + 2] as number; // column 2 in front
        return { ...bag, features };
      },
    };
    const former = await instanceAuc(lastRowOnly, shifted);
    expect(former).toBeLessThan(0.5);
  });

  it('pools class 0\'s bags when their ground truth marks instances (no slide is skipped for its class index)', async () => {
    const value = await instanceAuc(stubModel(CLASSES), source([0, 0, 0]));
    expect(value).toBe(1);
  });

  it('skips bags without marked instances and keeps a single attention row for every class', async () => {
    // One row (K = 1): the row is column 0, informative only for class-0 bags; bags without marks add nothing.
    const unmarked = source([1, 2], 0);
    const marked = source([0, 0]);
    const both: BagSource = {
      slides: [...marked.slides, ...unmarked.slides.map((s) => ({ ...s, slideId: `u${s.slideId}` }))],
      featureDim: DIM,
      classNames: marked.classNames,
      load: async (id) => (id.startsWith('u') ? { ...(await unmarked.load(id.slice(1))), slideId: id } : marked.load(id)),
    };
    expect(await instanceAuc(stubModel(1), both)).toBe(1);
    expect(await instanceAuc(stubModel(1), unmarked)).toBeUndefined();
  });
});
