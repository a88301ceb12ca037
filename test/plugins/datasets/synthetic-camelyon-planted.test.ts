// dataset/synthetic-camelyon with plantedDifficulty (MHIM-MIL's situation, docs/methods/mhim-mil.md#planted-difficulty):
// the same table and noise as without it; subtle positives shifted on signal axes 2..s, a few salient ones on
// axis 1 alone, and a fraction of positive slides with no salient instance at all.
import { describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { Registry, type BagSource } from '../../../src/registry/index.js';

const registry = new Registry(builtinManifest());

async function source(options: Record<string, unknown>): Promise<BagSource> {
  const resolved = await registry.resolve('dataset', { name: 'synthetic-camelyon', slides: 40, instances: [60, 120], thumbs: false, signalStrength: 5, ...options }, { key: 'data.dataset' });
  return registry.create(resolved, { seed: 3, logger: new MemoryLogger(), baseDir: '.' });
}

describe('dataset/synthetic-camelyon plantedDifficulty', () => {
  it('keeps the table, and plants exactly the drawn salient instances on their own axis', async () => {
    const plain = await source({});
    const planted = await source({ tumorFraction: [0.05, 0.1], plantedDifficulty: { salientInstances: [1, 3], salientStrength: 8, subtleOnlyFraction: 0.5 } });
    const plainSameFraction = await source({ tumorFraction: [0.05, 0.1] });
    expect(planted.slides.map((s) => [s.label, s.meta['num_instances']])).toEqual(plain.slides.map((s) => [s.label, s.meta['num_instances']]));
    const positives = planted.slides.filter((s) => s.label === 1);
    const counts = positives.map((s) => Number(s.meta['salient_instances']));
    expect(counts.every((c) => c === 0 || (c >= 1 && c <= 3))).toBe(true);
    const subtleOnly = counts.filter((c) => c === 0).length;
    expect(subtleOnly).toBeGreaterThan(0);
    expect(subtleOnly).toBeLessThan(positives.length);
    // ‖subtle_planted − subtle_plain‖ and ‖salient − subtle_plain‖ for s = 4, a = 5, S = 8 (orthonormal basis).
    const a = 5;
    const subtleNorm = a * Math.sqrt(0.25 + 3 * (1 / Math.sqrt(3) - 0.5) ** 2);
    const salientNorm = Math.sqrt((8 - a / 2) ** 2 + 3 * (a / 2) ** 2);
    for (const slide of planted.slides) {
      const x = await planted.load(slide.slideId);
      const y = await plainSameFraction.load(slide.slideId);
      const norms = Array.from({ length: x.n }, (_, i) => Math.hypot(...Array.from(x.features.subarray(i * x.d, (i + 1) * x.d), (v, j) => v - (y.features[i * x.d + j] as number))));
      const lesion = Array.from(x.instanceLabels ?? []).filter((v) => v === 1).length;
      const near = (target: number) => norms.filter((n) => Math.abs(n - target) < 1e-3).length;
      expect(near(0), `${slide.slideId}: non-lesion rows unchanged`).toBe(x.n - lesion);
      expect(near(salientNorm), `${slide.slideId}: salient rows`).toBe(Number(slide.meta['salient_instances'] ?? 0));
      expect(near(subtleNorm), `${slide.slideId}: subtle rows`).toBe(lesion - Number(slide.meta['salient_instances'] ?? 0));
    }
  });

  it('asks for two signal axes', async () => {
    await expect(source({ signalDim: 1, plantedDifficulty: {} })).rejects.toThrow(/signalDim/);
  });
});
