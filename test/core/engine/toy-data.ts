// A tiny in-memory BagSource for engine tests: positives hold a few instances shifted along one axis.
import type { BagData, BagSource, SlideRecord } from '../../../src/registry/index.js';
import { Rng } from '../../../src/core/runtime/random.js';

export function toySource(slides = 24, dim = 6, seed = 1): BagSource {
  const rng = new Rng(seed);
  const records: SlideRecord[] = [];
  const bags = new Map<string, BagData>();
  for (let i = 0; i < slides; i += 1) {
    const label = i % 2;
    const n = 5 + rng.int(15);
    const features = rng.normalArray(n * dim);
    const instanceLabels = new Uint8Array(n);
    if (label === 1) {
      for (let k = 0; k < 2; k += 1) {
        const row = rng.int(n);
        instanceLabels[row] = 1;
        features[row * dim] = (features[row * dim] as number) + 4;
      }
    }
    const slideId = `s${String(i).padStart(2, '0')}`;
    records.push({ slideId, caseId: `c${i}`, label, labelName: label ? 'tumor' : 'normal', meta: {} });
    bags.set(slideId, { slideId, n, d: dim, features, instanceLabels });
  }
  return {
    slides: records,
    featureDim: dim,
    classNames: ['normal', 'tumor'],
    load: async (id: string) => bags.get(id) as BagData,
  };
}
