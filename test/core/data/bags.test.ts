import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { bagToTensors, sampleInstanceIndices, validateSource } from '../../../src/core/data/bags.js';
import { DataError } from '../../../src/core/errors.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { Rng } from '../../../src/core/runtime/random.js';
import type { BagData, BagSource, SlideRecord } from '../../../src/registry/index.js';
import { asyncErrorText } from './error-text.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function bag(slideId: string, n: number, d: number, extra: Partial<BagData> = {}): BagData {
  return { slideId, n, d, features: Float32Array.from({ length: n * d }, (_, i) => i), coords: Float32Array.from({ length: n * 2 }, (_, i) => 10 * i), ...extra };
}

function record(slideId: string, label = 0): SlideRecord {
  return { slideId, caseId: `case-${slideId}`, label, labelName: String(label), meta: {} };
}

/** A source over fixed bags; a bag given as an Error makes load() reject with it. */
function fakeSource(bags: Record<string, BagData | Error>, slides: SlideRecord[], featureDim = 3): BagSource {
  return {
    slides,
    featureDim,
    classNames: ['a', 'b'],
    load: (id) => {
      const b = bags[id];
      return b instanceof Error ? Promise.reject(b) : Promise.resolve(b as BagData);
    },
    fileOf: (id) => `/feats/${id}.h5`,
  };
}

describe('core/data/bags', () => {
  it('builds [N, D] features, [N, 2] coords and [0, 1] thumbnails', () => {
    const thumbs = new Uint8Array(2 * 16 * 16 * 3).fill(51);
    const t = bagToTensors(bag('s', 2, 3, { thumbs }), { views: ['coords', 'thumbs'], label: 1 });
    expect(t.features.shape).toEqual([2, 3]);
    expect(Array.from(t.features.dataSync())).toEqual([0, 1, 2, 3, 4, 5]);
    expect(Array.from(t.views?.coords?.dataSync() ?? [])).toEqual([0, 10, 20, 30]);
    expect(t.views?.thumbs?.shape).toEqual([2, 16, 16, 3]);
    expect(t.views?.thumbs?.dataSync()[0]).toBeCloseTo(0.2, 6);
    expect(t.label).toBe(1);
    tf.dispose([t.features, t.views?.coords, t.views?.thumbs] as tf.Tensor[]);
    const noThumbs = bagToTensors(bag('s', 2, 3, { thumbs }), { views: ['coords'] });
    expect(noThumbs.views?.thumbs).toBeUndefined();
    tf.dispose([noThumbs.features, noThumbs.views?.coords] as tf.Tensor[]);
  });

  it('caps instances with a fresh random subset per call, rows kept aligned and in order', () => {
    const rng = new Rng(1);
    const data = bag('s', 50, 2);
    const before = tf.memory().numTensors;
    const picks: number[][] = [];
    for (let call = 0; call < 3; call += 1) {
      const t = bagToTensors(data, { maxInstances: 7, rng, views: ['coords'] });
      const f = Array.from(t.features.dataSync());
      const c = Array.from(t.views?.coords?.dataSync() ?? []);
      const rows = Array.from({ length: 7 }, (_, i) => (f[2 * i] as number) / 2);
      expect(t.features.shape).toEqual([7, 2]);
      expect([...rows].sort((a, b) => a - b)).toEqual(rows);
      rows.forEach((r, i) => {
        expect(f[2 * i + 1]).toBe(2 * r + 1);
        expect(c[2 * i]).toBe(20 * r);
      });
      picks.push(rows);
      tf.dispose([t.features, t.views?.coords] as tf.Tensor[]);
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(new Set(picks.map((p) => p.join(','))).size).toBe(3);
    // A bag within the cap is passed whole.
    const whole = bagToTensors(bag('s', 5, 2), { maxInstances: 7, rng });
    expect(whole.features.shape).toEqual([5, 2]);
    tf.dispose([whole.features, whole.views?.coords] as tf.Tensor[]);
  });

  it('draws every instance equally often under the cap', () => {
    const rng = new Rng('uniform');
    const hits = new Array<number>(10).fill(0);
    for (let r = 0; r < 2000; r += 1) for (const i of sampleInstanceIndices(10, 3, rng)) hits[i] = (hits[i] as number) + 1;
    // Expected 600 each; binomial sd ≈ 20.5.
    for (const h of hits) expect(Math.abs(h - 600)).toBeLessThan(90);
  });

  describe('validateSource', () => {
    const nan = bag('nan', 2, 3);
    (nan.features as Float32Array)[4] = Number.NaN;
    const cases: Array<[string, BagData | Error, string]> = [
      ['empty', bag('empty', 0, 3), 'DataError[empty-bag] /feats/empty.h5: slide "empty" has no instances (N = 0). Re-run patching/feature extraction for it, or set data.onBadSlide: skip.'],
      ['wide', bag('wide', 2, 4), 'DataError[feature-dim-mismatch] /feats/wide.h5: slide "wide": feature width 4 ≠ 3 expected by the model (inputDim). Use features from the same encoder for every slide, or re-extract this one.'],
      ['nan', nan, 'DataError[non-finite-features] /feats/nan.h5: slide "nan": 1 non-finite feature value(s) (first NaN at instance 1, column 1). Re-extract the features of this slide, or set data.onBadSlide: skip.'],
      ['coords', bag('coords', 2, 3, { coords: new Float32Array(6) }), 'DataError[coords-length-mismatch] /feats/coords.h5: slide "coords": coords have 3 rows but features have N = 2. Features and coords must come from the same patching run (same row order).'],
      ['thumbs', bag('thumbs', 2, 3, { thumbs: new Uint8Array(768) }), 'DataError[thumbs-length-mismatch] /feats/thumbs.h5: slide "thumbs": thumbs have 1 rows of 16×16×3 but features have N = 2. Thumbnails must be [N, 16, 16, 3] in the feature row order.'],
      ['gone', new DataError('missing-file', 'slide "gone": feature file not found.', { where: { file: '/feats/gone.h5' } }), 'DataError[missing-file] /feats/gone.h5: slide "gone": feature file not found.'],
    ];

    it.each(cases)('stops on a bad slide (%s) with a message naming slide and file', async (id, data, message) => {
      const src = fakeSource({ ok: bag('ok', 2, 3), [id]: data }, [record('ok'), record(id)]);
      expect(await asyncErrorText(() => validateSource(src, { inputDim: 3, onBadSlide: 'error', logger: new MemoryLogger() }))).toBe(message);
    });

    it('skips every bad slide with a logged reason and a count', async () => {
      const bags: Record<string, BagData | Error> = { ok: bag('ok', 2, 3) };
      for (const [id, data] of cases) bags[id] = data;
      const src = fakeSource(bags, [record('ok'), ...cases.map(([id]) => record(id))]);
      const logger = new MemoryLogger();
      const result = await validateSource(src, { inputDim: 3, onBadSlide: 'skip', logger });
      expect(result.slides.map((s) => s.slideId)).toEqual(['ok']);
      expect(result.skipped.map((s) => s.slideId)).toEqual(cases.map(([id]) => id));
      expect(result.skipped[0]?.reason).toBe(`[empty-bag] ${cases[0]?.[2].replace(/^DataError\[empty-bag\] /, '')}`);
      const warnings = logger.lines.filter((l) => l.level === 'warn').map((l) => l.message);
      expect(warnings).toHaveLength(cases.length + 1);
      expect(warnings.at(-1)).toBe('skipped 6 of 7 slides (data.onBadSlide: skip)');
    });

    it('rejects duplicate slide ids even when skipping', async () => {
      const src = fakeSource({ a: bag('a', 2, 3) }, [record('a'), record('a')]);
      expect(await asyncErrorText(() => validateSource(src, { onBadSlide: 'skip', logger: new MemoryLogger() }))).toBe(
        'DataError[duplicate-slide-id] slide_id "a" appears more than once in the slide table. Slide ids must be unique; remove or rename the duplicate row.',
      );
    });

    it('rejects a label outside the class range', async () => {
      const src = fakeSource({ a: bag('a', 2, 3) }, [record('a', 2)]);
      expect(await asyncErrorText(() => validateSource(src, { onBadSlide: 'error', logger: new MemoryLogger() }))).toBe(
        'DataError[unknown-label] slide "a": label 2 (2) is not a class index in [0, 2). Fix the label map (data.labels).',
      );
    });

    it('rejects a dataset whose width differs from the model input before loading anything', async () => {
      const src = fakeSource({}, [record('a')], 768);
      expect(await asyncErrorText(() => validateSource(src, { inputDim: 1024, onBadSlide: 'skip', logger: new MemoryLogger() }))).toBe(
        "DataError[feature-dim-mismatch] the dataset's feature width is 768 but the model expects inputDim 1024. Use features from the encoder the model was configured for.",
      );
    });

    it('fails when nothing is left', async () => {
      const src = fakeSource({ e: bag('e', 0, 3) }, [record('e')]);
      expect(await asyncErrorText(() => validateSource(src, { onBadSlide: 'skip', logger: new MemoryLogger() }))).toBe(
        'DataError[no-valid-slides] none of the 1 slides passed validation. See the skipped-slide warnings above.',
      );
    });
  });
});
