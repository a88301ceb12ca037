// One slide → one feature file: tissue detection, CLAM's patch grid at the target magnification, patches read and
// embedded batch by batch with the next batch read while the current one is embedded, HDMIL's 16×16 thumbnails,
// and the h5 file written atomically (docs/slides.md#feature-extraction).
import { DataError } from '../errors.js';
import type { Logger } from '../logger.js';
import path from 'node:path';
import { tissuePatchGrid } from '../slides/patch-grid.js';
import { readPatchCoordsH5 } from '../slides/patch-coords.js';
import { readPatchThumbnails } from '../slides/patch-thumbnails.js';
import { bestLevelForDownsample, type SlideReader } from '../slides/reader.js';
import type { TissueDetector } from '../slides/tissue.js';
import type { FeatureExtractor, PatchBatch } from './extractor.js';
import { writeFeatureFile, type FeatureFileAttributes } from './feature-file.js';
import { nativeHeapTrimmer } from './native-heap.js';

export interface PatchingOptions {
  /** Patch side at the target scale (CLAM: 256 at 20×). */
  readonly patchSize: number;
  /** Target magnification (used when `mpp` is not set). */
  readonly magnification: number;
  /** Target microns per pixel; overrides `magnification` when set. */
  readonly mpp?: number;
  /** For slides whose file records neither (generic TIFF): their scan's objective power and mpp. */
  readonly baseMagnification?: number;
  readonly baseMpp?: number;
  /** Write HDMIL's `thumbs` [N, 16, 16, 3] (needs a level-0 patch side divisible by 16). */
  readonly thumbs: boolean;
  /**
   * A folder of CLAM or TRIDENT `patches/<slide_id>.h5` coordinate files: their grid is used instead of segmenting
   * (docs/slides.md#patch-coordinates-from-clam-or-trident).
   */
  readonly patchesDir?: string;
}

export interface PatchGeometry {
  /** Level-0 pixels per target pixel. */
  readonly scale: number;
  readonly patchSizeLevel0: number;
  readonly readLevel: number;
  /** Patch side read at `readLevel` (resized to the extractor's input size afterwards). */
  readonly readSize: number;
  readonly targetMpp: number;
  readonly targetMagnification: number;
}

/** Microns per pixel of a 1× scan under the usual convention (0.25 µm/px at 40×, 0.5 at 20×). */
const MPP_TIMES_MAGNIFICATION = 10;

/**
 * Where and how big patches are on this slide: the level-0 side of a `patchSize` patch at the target scale, and the
 * level to read it from — the coarsest level not coarser than the target (so pixels are only ever downscaled).
 */
export function patchGeometry(reader: SlideReader, options: PatchingOptions): PatchGeometry {
  const slideMpp = reader.properties.mppX ?? options.baseMpp;
  const slideMag = reader.properties.objectivePower ?? options.baseMagnification ?? (slideMpp === undefined ? undefined : MPP_TIMES_MAGNIFICATION / slideMpp);
  let scale: number;
  if (options.mpp !== undefined) {
    const mpp = slideMpp ?? (slideMag === undefined ? undefined : MPP_TIMES_MAGNIFICATION / slideMag);
    if (mpp === undefined) {
      throw new DataError('unknown-slide-scale', 'the slide records neither microns per pixel nor objective power, so the target mpp cannot be found.', {
        where: { file: reader.file }, hint: 'Pass --base-mpp (or --base-magnification) with the scanner\'s value.',
      });
    }
    scale = options.mpp / mpp;
  } else {
    if (slideMag === undefined) {
      throw new DataError('unknown-slide-scale', `the slide records neither objective power nor microns per pixel, so ${options.magnification}× cannot be found.`, {
        where: { file: reader.file }, hint: 'Pass --base-magnification (e.g. 20) or --base-mpp with the scanner\'s value.',
      });
    }
    scale = slideMag / options.magnification;
  }
  if (!(scale > 0) || !Number.isFinite(scale)) throw new DataError('unknown-slide-scale', `target scale ${scale} is not positive.`, { where: { file: reader.file } });
  const patchSizeLevel0 = Math.max(1, Math.round(options.patchSize * scale));
  const readLevel = bestLevelForDownsample(reader.levels, Math.max(1, scale));
  const downsample = reader.levels[readLevel]?.downsample ?? 1;
  const readSize = Math.max(1, Math.round(patchSizeLevel0 / downsample));
  const targetMpp = options.mpp ?? (slideMpp === undefined ? 0 : slideMpp * scale);
  const targetMagnification = options.mpp === undefined ? options.magnification : slideMag === undefined ? 0 : slideMag / scale;
  return { scale, patchSizeLevel0, readLevel, readSize, targetMpp, targetMagnification };
}

export interface SlideExtraction {
  readonly patches: number;
  readonly dim: number;
  readonly geometry: PatchGeometry;
}

export interface ExtractSlideDeps {
  readonly detector: TissueDetector;
  readonly extractor: FeatureExtractor;
  readonly logger: Logger;
  /** Called after each embedded batch with patches done and the slide's total. */
  readonly onPatches?: (done: number, total: number) => void;
}

/** Reads the patches of `coords` rows [start, end) at `geometry`. */
export async function readPatches(reader: SlideReader, coords: Int32Array, start: number, end: number, geometry: PatchGeometry): Promise<PatchBatch> {
  const side = geometry.readSize;
  const rgb = new Uint8Array((end - start) * side * side * 3);
  const regions = await Promise.all(
    Array.from({ length: end - start }, (_, i) => reader.readRegion({ x: coords[2 * (start + i)] as number, y: coords[2 * (start + i) + 1] as number, level: geometry.readLevel, width: side, height: side })),
  );
  regions.forEach((region, i) => rgb.set(region.data, i * side * side * 3));
  return { count: end - start, side, rgb };
}

/**
 * Features [N, dim] of the patches at `coords`, batch by batch. Double buffering: batch b + 1 is being read
 * (libvips / OpenSlide work off the main thread) while batch b is embedded, so at most two batches of pixels exist
 * at once. After each batch the decoders' freed memory is handed back to the system (native-heap.ts): without it
 * RSS grows with the number of patches (docs/slides.md#memory-while-extracting).
 */
export async function embedPatches(reader: SlideReader, coords: Int32Array, geometry: PatchGeometry, extractor: FeatureExtractor, onPatches?: (done: number, total: number) => void): Promise<Float32Array> {
  const n = coords.length / 2;
  const dim = extractor.identity.dim;
  const features = new Float32Array(n * dim);
  const batchSize = Math.max(1, extractor.batchSize);
  const trimNativeHeap = await nativeHeapTrimmer();
  onPatches?.(0, n);
  let next: Promise<PatchBatch> | undefined = n > 0 ? readPatches(reader, coords, 0, Math.min(n, batchSize), geometry) : undefined;
  for (let start = 0; start < n; start += batchSize) {
    const batch = await (next as Promise<PatchBatch>);
    const following = start + batchSize;
    next = following < n ? readPatches(reader, coords, following, Math.min(n, following + batchSize), geometry) : undefined;
    // A read that fails while this batch is embedded is reported when awaited, not as an unhandled rejection.
    next?.catch(() => undefined);
    const rows = await extractor.embed(batch);
    if (rows.length !== batch.count * dim) {
      throw new DataError('bad-extractor-output', `the extractor returned ${rows.length} numbers for ${batch.count} patches of width ${dim}.`, { where: { file: reader.file } });
    }
    features.set(rows, start * dim);
    trimNativeHeap?.();
    onPatches?.(Math.min(n, following), n);
  }
  return features;
}

/** CLAM's grid over the slide's own tissue mask. */
async function segmentedPatchGrid(reader: SlideReader, geometry: PatchGeometry, detector: TissueDetector): Promise<Int32Array> {
  const tissue = await detector.detect(reader);
  const base = reader.levels[0] as { width: number; height: number };
  return tissuePatchGrid(tissue, { patchSize: geometry.patchSizeLevel0, step: geometry.patchSizeLevel0, width: base.width, height: base.height });
}

/**
 * The grid of an existing CLAM/TRIDENT patch file (same row order). Its patch side must be the one this run reads:
 * features of another patch size would be mislabelled by the file's attributes.
 */
async function givenPatchGrid(file: string, geometry: PatchGeometry): Promise<Int32Array> {
  const given = await readPatchCoordsH5(file);
  if (given.patchSizeLevel0 !== undefined && given.patchSizeLevel0 !== geometry.patchSizeLevel0) {
    throw new DataError('patch-size-mismatch', `the patch file's patches are ${given.patchSizeLevel0} px at level 0, but this extraction reads ${geometry.patchSizeLevel0} px patches.`, {
      where: { file },
      hint: 'Set --patch-size and --magnification (or --mpp) to the ones the patch file was made with, or drop --patches to segment the slide.',
    });
  }
  return given.coords;
}

/** Extracts one opened slide into `outFile` (written atomically). */
export async function extractSlide(reader: SlideReader, outFile: string, options: PatchingOptions, deps: ExtractSlideDeps): Promise<SlideExtraction> {
  const geometry = patchGeometry(reader, options);
  const coords = options.patchesDir !== undefined
    ? await givenPatchGrid(path.join(options.patchesDir, path.basename(outFile)), geometry)
    : await segmentedPatchGrid(reader, geometry, deps.detector);
  const features = await embedPatches(reader, coords, geometry, deps.extractor, deps.onPatches);
  const n = coords.length / 2;
  const dim = deps.extractor.identity.dim;
  let thumbs: Uint8Array | undefined;
  if (options.thumbs) {
    if (geometry.patchSizeLevel0 % 16 === 0) thumbs = await readPatchThumbnails(reader, coords, { patchSize: geometry.patchSizeLevel0, side: 16 });
    else deps.logger.warn(`${reader.file}: level-0 patch side ${geometry.patchSizeLevel0} is not a multiple of 16; no thumbnails written.`);
  }
  const attributes: FeatureFileAttributes = {
    patchSizeLevel0: geometry.patchSizeLevel0,
    patchSize: options.patchSize,
    readLevel: geometry.readLevel,
    targetMpp: geometry.targetMpp,
    targetMagnification: geometry.targetMagnification,
    extractor: deps.extractor.identity,
  };
  await writeFeatureFile(outFile, { features, dim, coords, thumbs, attributes });
  return { patches: n, dim, geometry };
}
