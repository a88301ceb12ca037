// HDMIL's low-resolution view of a patch grid: for every patch (level-0 top-left corner, side in level-0
// pixels), a side × side RGB thumbnail, i.e. the 1.25× picture of a 256-px 20× patch is 16 × 16. Pixels come
// from the pyramid level closest to (not finer than needed for) the target scale and are box-averaged down.
import { DataError } from '../errors.js';
import { bestLevelForDownsample, MAX_REGION_PIXELS, type RgbImage, type SlideReader } from './reader.js';

export interface PatchThumbnailOptions {
  /** Patch side in level-0 pixels (256 at a 20× scan, 512 at 40×). */
  readonly patchSize: number;
  /** Thumbnail side (HDMIL: 16). */
  readonly side: number;
}

/** Box average of a square block `size` × `size` at (x0, y0) of `image` (pixels outside count as white). */
function blockMean(image: RgbImage, x0: number, y0: number, size: number, out: Uint8Array, at: number): void {
  let r = 0;
  let g = 0;
  let b = 0;
  for (let y = y0; y < y0 + size; y += 1) {
    for (let x = x0; x < x0 + size; x += 1) {
      if (x < 0 || y < 0 || x >= image.width || y >= image.height) {
        r += 255;
        g += 255;
        b += 255;
        continue;
      }
      const p = (y * image.width + x) * 3;
      r += image.data[p] as number;
      g += image.data[p + 1] as number;
      b += image.data[p + 2] as number;
    }
  }
  const n = size * size;
  out[at] = Math.round(r / n);
  out[at + 1] = Math.round(g / n);
  out[at + 2] = Math.round(b / n);
}

/**
 * Thumbnails [N, side, side, 3] (uint8, row-major) for patches at `coords` ([N, 2] level-0 x, y). The level read
 * is the coarsest whose pixels still divide a thumbnail pixel into whole blocks of its own pixels.
 */
export async function readPatchThumbnails(reader: SlideReader, coords: ArrayLike<number>, options: PatchThumbnailOptions): Promise<Uint8Array> {
  const { patchSize, side } = options;
  if (!Number.isInteger(patchSize / side) || patchSize <= 0 || side <= 0) {
    throw new DataError('bad-option', `patch size ${patchSize} is not a whole multiple of the thumbnail side ${side}.`, { where: { file: reader.file }, hint: 'HDMIL pairs 256-px 20× patches with 16-px 1.25× thumbnails.' });
  }
  const n = Math.floor(coords.length / 2);
  const target = patchSize / side; // level-0 pixels per thumbnail pixel
  // Only levels whose downsample divides `target` exactly keep the blocks aligned with the patch grid.
  let level = bestLevelForDownsample(reader.levels, target);
  while (level > 0 && !Number.isInteger(target / (reader.levels[level]?.downsample ?? 1))) level -= 1;
  const downsample = reader.levels[level]?.downsample ?? 1;
  const block = target / downsample; // level pixels per thumbnail pixel
  const span = side * block; // level pixels per patch
  const out = new Uint8Array(n * side * side * 3);
  const levelInfo = reader.levels[level] as { width: number; height: number };
  const whole = levelInfo.width * levelInfo.height <= MAX_REGION_PIXELS ? await reader.readRegion({ x: 0, y: 0, level, width: levelInfo.width, height: levelInfo.height }) : undefined;
  for (let i = 0; i < n; i += 1) {
    const x = coords[2 * i] as number;
    const y = coords[2 * i + 1] as number;
    const lx = Math.round(x / downsample);
    const ly = Math.round(y / downsample);
    const source = whole ?? (await reader.readRegion({ x, y, level, width: span, height: span }));
    const ox = whole === undefined ? 0 : lx;
    const oy = whole === undefined ? 0 : ly;
    for (let ty = 0; ty < side; ty += 1) {
      for (let tx = 0; tx < side; tx += 1) blockMean(source, ox + tx * block, oy + ty * block, block, out, ((i * side + ty) * side + tx) * 3);
    }
  }
  return out;
}
