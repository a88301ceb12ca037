// Pictures of a slide for heatmaps: a whole-slide thumbnail read from the pyramid level closest to the wanted
// size, and single patches at level-0 coordinates scaled to a tile (the top-k montage). Regions stay within the
// readers' per-call limit, so nothing reads level 0 whole.
import sharp from 'sharp';
import { bestLevelForDownsample, MAX_REGION_PIXELS, type RgbImage, type SlideReader } from './reader.js';

/** Slide file extensions looked for beside `<slide_id>`, in this order. */
export const SLIDE_EXTENSIONS = ['.svs', '.tif', '.tiff', '.ndpi', '.mrxs', '.scn', '.vms', '.bif'] as const;

/**
 * The whole slide at about `maxSide` pixels on its longest side: the pyramid level at or just above that size,
 * read in one region (or the file's associated `thumbnail` when that level is too large to read at once).
 */
export async function readSlideThumbnail(reader: SlideReader, maxSide: number): Promise<RgbImage | undefined> {
  const base = reader.levels[0];
  if (!base) return undefined;
  const wanted = Math.max(base.width, base.height) / maxSide;
  const level = bestLevelForDownsample(reader.levels, Math.max(1, wanted));
  const { width, height } = reader.levels[level] ?? base;
  if (width * height <= MAX_REGION_PIXELS) return reader.readRegion({ x: 0, y: 0, level, width, height });
  return reader.associatedImages.includes('thumbnail') ? reader.readAssociatedImage('thumbnail') : undefined;
}

/** The patch of side `patchSize` (level 0) at (x, y), read at the level nearest `tile` pixels and scaled to tile × tile. */
export async function readPatchTile(reader: SlideReader, x: number, y: number, patchSize: number, tile: number): Promise<{ rgb: Uint8Array; size: number }> {
  const level = bestLevelForDownsample(reader.levels, Math.max(1, patchSize / tile));
  const downsample = reader.levels[level]?.downsample ?? 1;
  const side = Math.max(1, Math.ceil(patchSize / downsample));
  const region = await reader.readRegion({ x: Math.round(x), y: Math.round(y), level, width: side, height: side });
  const rgb = await sharp(Buffer.from(region.data), { raw: { width: region.width, height: region.height, channels: 3 } }).resize(tile, tile, { fit: 'fill' }).raw().toBuffer();
  return { rgb: new Uint8Array(rgb), size: tile };
}
