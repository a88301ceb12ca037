// CLAM's patch grid over detected tissue: level-0 top-left corners of non-overlapping (or strided) square
// patches, kept when any of four points around the patch centre (±patchSize/4, CLAM's "four_pt" easy check)
// falls on tissue in the segmentation mask (holes excluded).
import type { TissueResult } from './tissue.js';

export interface PatchGridOptions {
  /** Patch side in level-0 pixels (CLAM default 256 at patch level 0). */
  readonly patchSize: number;
  /** Step between patches in level-0 pixels (CLAM default = patchSize). */
  readonly step: number;
  /** Level-0 slide size; patches must fit inside it (CLAM drops partial patches at the right/bottom edge). */
  readonly width: number;
  readonly height: number;
}

/** Patch corners [N, 2] (x, y), row by row, for patches on tissue. */
export function tissuePatchGrid(tissue: TissueResult, options: PatchGridOptions): Int32Array {
  const { patchSize, step, width, height } = options;
  const onTissue = (x: number, y: number): boolean => {
    const mx = Math.floor(x / tissue.downsample);
    const my = Math.floor(y / tissue.downsample);
    return mx >= 0 && my >= 0 && mx < tissue.width && my < tissue.height && tissue.mask[my * tissue.width + mx] === 255;
  };
  const shift = patchSize / 4;
  const out: number[] = [];
  for (let y = 0; y + patchSize <= height; y += step) {
    for (let x = 0; x + patchSize <= width; x += step) {
      const cx = x + patchSize / 2;
      const cy = y + patchSize / 2;
      if (onTissue(cx - shift, cy - shift) || onTissue(cx + shift, cy - shift) || onTissue(cx - shift, cy + shift) || onTissue(cx + shift, cy + shift)) out.push(x, y);
    }
  }
  return Int32Array.from(out);
}
