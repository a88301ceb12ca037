// The one interface every slide reader implements (plugins of kind `slide-reader`: OpenSlide through koffi,
// pyramidal TIFF through sharp), plus the helpers they share: level choice, region checks, white fill.
import { DataError } from '../errors.js';
import type { Logger } from '../logger.js';

/** One pyramid level. Level 0 is the full-resolution scan. */
export interface SlideLevel {
  readonly width: number;
  readonly height: number;
  /** Level-0 pixels per pixel of this level (OpenSlide's definition: mean of the width and height ratios). */
  readonly downsample: number;
}

export interface SlideProperties {
  /** `aperio`, `generic-tiff`, ... (OpenSlide's vendor names). */
  readonly vendor: string | undefined;
  /** Scanning objective (20, 40), when the file records it. */
  readonly objectivePower: number | undefined;
  /** Microns per level-0 pixel, when the file records it. */
  readonly mppX: number | undefined;
  readonly mppY: number | undefined;
  /** Every property the reader exposes, with OpenSlide's key names where they exist. */
  readonly all: Readonly<Record<string, string>>;
}

/** Interleaved 8-bit RGB pixels, row-major. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** A rectangle to read: top-left in level-0 coordinates, size in pixels of `level`. */
export interface RegionRequest {
  readonly x: number;
  readonly y: number;
  readonly level: number;
  readonly width: number;
  readonly height: number;
}

export interface SlideReader {
  readonly file: string;
  readonly levels: readonly SlideLevel[];
  readonly properties: SlideProperties;
  /** Names of the associated images (`thumbnail`, `label`, `macro`, ...). */
  readonly associatedImages: readonly string[];
  /**
   * Pixels of a region; anything outside the scanned area is white. Coordinates are level-0 pixels, as in
   * OpenSlide; a region may start before the slide or run past its end.
   */
  readRegion(request: RegionRequest): Promise<RgbImage>;
  readAssociatedImage(name: string): Promise<RgbImage>;
  close(): Promise<void>;
}

/** What a `slide-reader` plugin's create() receives. */
export interface SlideReaderContext {
  readonly logger: Logger;
}

/** What a `slide-reader` plugin's create() returns: something that opens slide files. */
export interface SlideOpener {
  open(file: string): Promise<SlideReader>;
}

export interface SlideReaderCapabilities {
  /** File extensions (lower case, with the dot) the reader is meant for; `*` for any OpenSlide format. */
  readonly extensions: readonly string[];
  /** Needs a system library (reported by `milkit plugins describe`). */
  readonly nativeLibrary: string | undefined;
}

export const DEFAULT_SLIDE_READER_CAPABILITIES: SlideReaderCapabilities = { extensions: [], nativeLibrary: undefined };

/** Largest region one call may return (64 Mpx ≈ 192 MB of RGB): slides are read in regions, never whole. */
export const MAX_REGION_PIXELS = 64 * 1024 * 1024;

/** The level to read for a wanted downsample: the largest level whose downsample does not exceed it. */
export function bestLevelForDownsample(levels: readonly SlideLevel[], downsample: number): number {
  let best = 0;
  levels.forEach((level, index) => {
    if (level.downsample <= downsample * (1 + 1e-9) && level.downsample >= (levels[best] as SlideLevel).downsample) best = index;
  });
  return best;
}

/** Downsamples of a pyramid as OpenSlide computes them: the mean of the width and height ratios to level 0. */
export function levelsFromSizes(sizes: ReadonlyArray<{ width: number; height: number }>): SlideLevel[] {
  const base = sizes[0];
  if (base === undefined) return [];
  return sizes.map(({ width, height }) => ({ width, height, downsample: (base.width / width + base.height / height) / 2 }));
}

/** Rejects a request that names no level, has a non-integer field or asks for too many pixels. */
export function checkRegion(file: string, levels: readonly SlideLevel[], request: RegionRequest): void {
  const { x, y, level, width, height } = request;
  const fields = { x, y, level, width, height };
  for (const [key, value] of Object.entries(fields)) {
    if (!Number.isSafeInteger(value)) throw new DataError('bad-region', `region ${key} must be an integer (got ${value}).`, { where: { file } });
  }
  if (level < 0 || level >= levels.length) {
    throw new DataError('bad-region', `level ${level} does not exist (the slide has levels 0..${levels.length - 1}).`, { where: { file }, hint: 'Pick a level from the reader\'s levels list.' });
  }
  if (width <= 0 || height <= 0) throw new DataError('bad-region', `region size ${width}×${height} is empty.`, { where: { file } });
  if (width * height > MAX_REGION_PIXELS) {
    throw new DataError('region-too-large', `region ${width}×${height} exceeds ${MAX_REGION_PIXELS} pixels.`, { where: { file }, hint: 'Read large areas as several regions (patches or strips).' });
  }
}

/** A white RGB image. */
export function whiteImage(width: number, height: number): RgbImage {
  return { width, height, data: new Uint8Array(width * height * 3).fill(255) };
}

/**
 * Pre-multiplied ARGB (OpenSlide's uint32 pixels, native byte order) composited on white: with premultiplied
 * colour c' = c·α, "over white" is c' + (1 − α)·255 exactly, so partly transparent edge pixels come out right
 * and fully transparent ones (outside the scan) white.
 */
export function premultipliedArgbToRgb(argb: Uint32Array, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let p = 0, q = 0; p < argb.length; p += 1, q += 3) {
    const pixel = argb[p] as number;
    const transparency = 255 - (pixel >>> 24);
    data[q] = Math.min(255, ((pixel >>> 16) & 0xff) + transparency);
    data[q + 1] = Math.min(255, ((pixel >>> 8) & 0xff) + transparency);
    data[q + 2] = Math.min(255, (pixel & 0xff) + transparency);
  }
  return { width, height, data };
}

/** Aperio ImageDescription `Aperio Image Library v… \n… |AppMag = 20|MPP = 0.5` → its key/value fields. */
export function parseAperioDescription(description: string): Record<string, string> {
  const fields: Record<string, string> = {};
  const parts = description.split('|').slice(1);
  for (const part of parts) {
    const eq = part.indexOf(' = ');
    if (eq > 0) fields[part.slice(0, eq).trim()] = part.slice(eq + 3).trim();
  }
  return fields;
}

/** A finite positive number from a property value, else undefined. */
export function positiveNumber(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  return Number.isFinite(parsed) && parsed > 0 ? parsed : undefined;
}
