import { describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { validateSource } from '../../../src/core/data/bags.js';
import { binaryAuc } from '../../../src/core/eval/classification.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { Registry, type BagData, type BagSource } from '../../../src/registry/index.js';
import { asyncErrorText } from '../../core/data/error-text.js';

const registry = new Registry(builtinManifest());

async function source(options: Record<string, unknown> = {}, seed = 0, labelMap?: Record<string, number>): Promise<BagSource> {
  const resolved = await registry.resolve('dataset', { name: 'synthetic-camelyon', ...options }, { key: 'data.dataset' });
  return registry.create(resolved, { seed, logger: new MemoryLogger(), baseDir: '.', ...(labelMap ? { labelMap } : {}) });
}

async function all(src: BagSource): Promise<BagData[]> {
  return Promise.all(src.slides.map((s) => src.load(s.slideId)));
}

describe('dataset/synthetic-camelyon', () => {
  it('builds the default table: 80 slides, 40% positive, Camelyon16 class names, D = 64', async () => {
    const src = await source();
    expect(src.slides).toHaveLength(80);
    expect(src.slides.filter((s) => s.label === 1)).toHaveLength(32);
    expect(src.classNames).toEqual(['normal_tissue', 'tumor_tissue']);
    expect(src.featureDim).toBe(64);
    // Official split: round(48 × 0.3) = 14 negative + round(32 × 0.3) = 10 positive cases.
    expect(src.slides.filter((s) => s.meta['split'] === 'test')).toHaveLength(24);
  });

  it('is deterministic in the seed and independent of load order', async () => {
    const a = await source({ slides: 8, instances: [20, 40] }, 5);
    const b = await source({ slides: 8, instances: [20, 40] }, 5);
    const c = await source({ slides: 8, instances: [20, 40] }, 6);
    const last = a.slides[7]?.slideId as string;
    const direct = await b.load(last);
    await all(a);
    expect(Array.from((await a.load(last)).features)).toEqual(Array.from(direct.features));
    expect(Array.from((await c.load(last)).features)).not.toEqual(Array.from(direct.features));
  });

  it('plants one spatially contiguous lesion of 0.5–10% of the instances in positives only', async () => {
    const src = await source();
    for (const s of src.slides) {
      const bag = await src.load(s.slideId);
      const tumour = Array.from(bag.instanceLabels ?? []).flatMap((v, i) => (v === 1 ? [i] : []));
      if (s.label === 0) {
        expect(tumour).toHaveLength(0);
        continue;
      }
      // k = max(1, round(f·N)) with f in [0.005, 0.1].
      expect(tumour.length).toBeGreaterThanOrEqual(1);
      expect(tumour.length).toBeLessThanOrEqual(Math.round(0.1 * bag.n));
      expect(tumour.length).toBeGreaterThanOrEqual(Math.max(1, Math.round(0.005 * bag.n)));
      expect(String(tumour.length)).toBe(s.meta['tumor_instances']);
      // 8-connected on the patch grid.
      const coords = bag.coords as Float32Array;
      const seen = new Set([tumour[0] as number]);
      const stack = [tumour[0] as number];
      while (stack.length > 0) {
        const a = stack.pop() as number;
        for (const c of tumour) {
          const near = Math.abs((coords[2 * a] as number) - (coords[2 * c] as number)) <= 256 && Math.abs((coords[2 * a + 1] as number) - (coords[2 * c + 1] as number)) <= 256;
          if (near && !seen.has(c)) {
            seen.add(c);
            stack.push(c);
          }
        }
      }
      expect(seen.size).toBe(tumour.length);
    }
  });

  it('lays instances on a 256-px tissue grid without duplicates, in raster order', async () => {
    const [bag] = await all(await source({ slides: 4 }));
    const coords = (bag as BagData).coords as Float32Array;
    const keys = new Set<string>();
    let previous = -1;
    for (let i = 0; i < (bag as BagData).n; i += 1) {
      const x = coords[2 * i] as number;
      const y = coords[2 * i + 1] as number;
      expect(x % 256).toBe(0);
      expect(y % 256).toBe(0);
      keys.add(`${x},${y}`);
      const raster = y * 1e6 + x;
      expect(raster).toBeGreaterThan(previous);
      previous = raster;
    }
    expect(keys.size).toBe((bag as BagData).n);
  });

  it('shifts tumour instances by signalStrength and gives thumbnails a weaker cue', async () => {
    const src = await source();
    const d = src.featureDim;
    const sum = [new Float64Array(d), new Float64Array(d)];
    const count = [0, 0];
    const isTumour: boolean[] = [];
    const redness: number[] = [];
    for (const s of src.slides.filter((x) => x.label === 1)) {
      const bag = await src.load(s.slideId);
      for (let i = 0; i < bag.n; i += 1) {
        const t = bag.instanceLabels?.[i] as number;
        for (let j = 0; j < d; j += 1) (sum[t] as Float64Array)[j] = ((sum[t] as Float64Array)[j] as number) + (bag.features[i * d + j] as number);
        count[t] = (count[t] as number) + 1;
        let red = 0;
        for (let p = 0; p < 256; p += 1) red += bag.thumbs?.[(i * 256 + p) * 3] as number;
        isTumour.push(t === 1);
        redness.push(-red);
      }
    }
    let sq = 0;
    for (let j = 0; j < d; j += 1) sq += ((sum[1]?.[j] as number) / (count[1] as number) - (sum[0]?.[j] as number) / (count[0] as number)) ** 2;
    // signalStrength 5 (the default) along a unit direction of the signal subspace.
    expect(Math.sqrt(sq)).toBeGreaterThan(4.5);
    expect(Math.sqrt(sq)).toBeLessThan(5.5);
    // Instance-level AUC of "less red = more hematoxylin" is informative but far from perfect.
    const auc = binaryAuc(isTumour, redness) as number;
    expect(auc).toBeGreaterThan(0.75);
    expect(auc).toBeLessThan(0.95);
  });

  it('re-indexes classes through a declared label map', async () => {
    const src = await source({ slides: 10 }, 0, { tumor_tissue: 0, normal_tissue: 1 });
    expect(src.classNames).toEqual(['tumor_tissue', 'normal_tissue']);
    for (const s of src.slides) expect(s.label).toBe(s.labelName === 'tumor_tissue' ? 0 : 1);
  });

  it('groups slides into cases when slidesPerCase > 1', async () => {
    const src = await source({ slides: 9, slidesPerCase: 3 });
    expect(new Set(src.slides.map((s) => s.caseId)).size).toBe(3);
    for (const c of new Set(src.slides.map((s) => s.caseId))) expect(new Set(src.slides.filter((s) => s.caseId === c).map((s) => s.label)).size).toBe(1);
  });

  it('passes validation', async () => {
    const src = await source({ slides: 12 });
    const result = await validateSource(src, { inputDim: 64, onBadSlide: 'error', logger: new MemoryLogger() });
    expect(result.slides).toHaveLength(12);
    expect(result.skipped).toEqual([]);
  });

  it('rejects inconsistent options with the key path', async () => {
    // The shared zod-issue renderer reports custom checks by the field's type; the key path is what we pin here.
    expect(await asyncErrorText(() => source({ instances: [500, 100] }))).toMatch(/^ConfigError\[invalid-option\] data\.dataset\.instances: /);
    expect(await asyncErrorText(() => source({ signalDim: 65 }))).toMatch(/^ConfigError\[invalid-option\] data\.dataset\.signalDim: /);
  });
});
