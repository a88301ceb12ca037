import { describe, expect, it } from 'vitest';
import { tissuePatchGrid } from '../../../src/core/slides/patch-grid.js';
import type { TissueResult } from '../../../src/core/slides/tissue.js';

/** A 4 × 3 mask at downsample 64 with tissue in cells (1, 1) and (2, 1) only. */
function tissue(): TissueResult {
  const mask = new Uint8Array(12);
  mask[1 * 4 + 1] = 255;
  mask[1 * 4 + 2] = 255;
  return { level: 0, downsample: 64, mask, width: 4, height: 3, threshold: 8, geojson: { type: 'FeatureCollection', features: [] }, image: { width: 4, height: 3, data: new Uint8Array(36) } };
}

describe('slides/patch-grid', () => {
  it('keeps patches with any of the four points around the centre on tissue, full patches only', () => {
    // 64-px patches: the four points are centre ± 16. Tissue spans level-0 [64, 192) × [64, 128).
    const coords = tissuePatchGrid(tissue(), { patchSize: 64, step: 64, width: 256, height: 192 });
    expect(Array.from(coords)).toEqual([64, 64, 128, 64]);
    // 128-px patches at step 64: a patch at (0, 0) has points at (48, 48), (80, 48), (48, 80), (80, 80); (80, 80) is tissue.
    const strided = tissuePatchGrid(tissue(), { patchSize: 128, step: 64, width: 256, height: 192 });
    expect(Array.from(strided)).toEqual([0, 0, 64, 0, 128, 0, 0, 64, 64, 64, 128, 64]);
    // A slide too small for one patch gives none.
    expect(tissuePatchGrid(tissue(), { patchSize: 256, step: 256, width: 200, height: 192 }).length).toBe(0);
  });
});
