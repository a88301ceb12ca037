// Where the model looked: per-patch instance scores as a CSV and a GeoJSON FeatureCollection (level-0 pixel
// squares, QuPath opens it as tiles with a `score` measurement), a heatmap PNG overlaid on the slide thumbnail
// (or on a blank canvas of the slide's extent when only coordinates are known) with CLAM's options (percentile
// scaling, averaging of overlapping patches, blur, opacity), and a montage of the top-k patches.
// Options and their defaults: docs/predict.md#heatmaps.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface HeatmapOptions {
  /** Replace scores by their percentile rank in the slide (CLAM's `convert_to_percentiles`); default true. */
  readonly percentiles: boolean;
  /** Gaussian blur sigma in output pixels (0 = none; CLAM's `blur` uses a kernel of about one patch). */
  readonly blur: number;
  /** Opacity of the heat colours over the thumbnail (CLAM's `alpha`). */
  readonly alpha: number;
  /** Longest side of the PNG in pixels. */
  readonly maxSize: number;
}

export const DEFAULT_HEATMAP_OPTIONS: HeatmapOptions = { percentiles: true, blur: 0, alpha: 0.5, maxSize: 1024 };

/** Per-patch scores with their level-0 top-left corners. */
export interface PatchScores {
  /** [N, 2] level-0 (x, y) of each patch's top-left corner. */
  readonly coords: Float32Array;
  /** [N] scores. */
  readonly scores: Float32Array;
  /** Side of a patch at level 0, in pixels. */
  readonly patchSize: number;
}

/**
 * Percentile rank of every score among the slide's scores, in (0, 1]: scipy's `percentileofscore(kind='rank')`
 * / 100, as CLAM converts attention before drawing. With L scores below and R at or below, it is
 * (L + R + [L < R]) / 2N: the k-th smallest of distinct scores gets k/N, tied scores the mean of their ranks.
 */
export function toPercentiles(scores: ArrayLike<number>): Float32Array {
  const n = scores.length;
  const sorted = Float64Array.from(scores).sort();
  const lowerBound = (v: number): number => {
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((sorted[mid] as number) < v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const upperBound = (v: number): number => {
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((sorted[mid] as number) <= v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 1) {
    const v = scores[i] as number;
    const below = lowerBound(v);
    const atOrBelow = upperBound(v);
    out[i] = (below + atOrBelow + (below < atOrBelow ? 1 : 0)) / (2 * n);
  }
  return out;
}

/** Scores min-max scaled to [0, 1] (all equal → 0.5). */
function minMax(scores: ArrayLike<number>): Float32Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < scores.length; i += 1) {
    lo = Math.min(lo, scores[i] as number);
    hi = Math.max(hi, scores[i] as number);
  }
  return Float32Array.from(scores, (v) => (hi > lo ? (v - lo) / (hi - lo) : 0.5));
}

/** matplotlib's `coolwarm` (CLAM's default colormap) through its end and mid colours, linearly between them. */
export function coolwarm(t: number): readonly [number, number, number] {
  const stops: ReadonlyArray<readonly [number, number, number, number]> = [
    [0, 59, 76, 192], [0.25, 124, 159, 249], [0.5, 221, 221, 221], [0.75, 238, 133, 104], [1, 180, 4, 38],
  ];
  const x = Math.min(1, Math.max(0, t));
  for (let i = 1; i < stops.length; i += 1) {
    const [t1, r1, g1, b1] = stops[i] as readonly [number, number, number, number];
    const [t0, r0, g0, b0] = stops[i - 1] as readonly [number, number, number, number];
    if (x <= t1) {
      const f = (x - t0) / (t1 - t0);
      return [Math.round(r0 + f * (r1 - r0)), Math.round(g0 + f * (g1 - g0)), Math.round(b0 + f * (b1 - b0))];
    }
  }
  return [180, 4, 38];
}

/** Level-0 extent covered by the patches. */
export function patchExtent(patches: PatchScores): { width: number; height: number } {
  let width = 0;
  let height = 0;
  for (let i = 0; i < patches.scores.length; i += 1) {
    width = Math.max(width, (patches.coords[2 * i] as number) + patches.patchSize);
    height = Math.max(height, (patches.coords[2 * i + 1] as number) + patches.patchSize);
  }
  return { width, height };
}

export interface HeatmapCanvas {
  /** Level-0 size of the slide (default: the patches' extent). */
  readonly width0?: number;
  readonly height0?: number;
  /** Thumbnail (PNG/JPEG bytes, a file, or RGB pixels read from the slide) the colours are drawn over; default a white canvas. */
  readonly thumbnail?: Buffer | string | { readonly width: number; readonly height: number; readonly data: Uint8Array };
}

/**
 * The heatmap as RGB pixels: each pixel's score is the mean over the patches covering it (overlapping patches
 * average, as CLAM's overlap mode), coloured with coolwarm, blurred, and blended over the thumbnail with
 * opacity `alpha` where patches are; elsewhere the thumbnail shows.
 */
export async function renderHeatmap(patches: PatchScores, canvas: HeatmapCanvas, options: HeatmapOptions = DEFAULT_HEATMAP_OPTIONS): Promise<{ data: Buffer; width: number; height: number }> {
  const sharp = (await import('sharp')).default;
  const extent = patchExtent(patches);
  const width0 = canvas.width0 ?? extent.width;
  const height0 = canvas.height0 ?? extent.height;
  const scale = Math.min(1, options.maxSize / Math.max(width0, height0, 1));
  const width = Math.max(1, Math.round(width0 * scale));
  const height = Math.max(1, Math.round(height0 * scale));
  const values = options.percentiles ? toPercentiles(patches.scores) : minMax(patches.scores);
  const sum = new Float32Array(width * height);
  const count = new Float32Array(width * height);
  for (let i = 0; i < values.length; i += 1) {
    const x0 = Math.floor((patches.coords[2 * i] as number) * scale);
    const y0 = Math.floor((patches.coords[2 * i + 1] as number) * scale);
    const x1 = Math.min(width, Math.max(x0 + 1, Math.ceil(((patches.coords[2 * i] as number) + patches.patchSize) * scale)));
    const y1 = Math.min(height, Math.max(y0 + 1, Math.ceil(((patches.coords[2 * i + 1] as number) + patches.patchSize) * scale)));
    for (let y = Math.max(0, y0); y < y1; y += 1) {
      for (let x = Math.max(0, x0); x < x1; x += 1) {
        sum[y * width + x] = (sum[y * width + x] as number) + (values[i] as number);
        count[y * width + x] = (count[y * width + x] as number) + 1;
      }
    }
  }
  // RGBA heat layer: alpha marks covered pixels, so the blur softens both colours and the layer's edge.
  const heat = Buffer.alloc(width * height * 4);
  for (let p = 0; p < width * height; p += 1) {
    const c = count[p] as number;
    if (c === 0) continue;
    const [r, g, b] = coolwarm((sum[p] as number) / c);
    heat[4 * p] = r;
    heat[4 * p + 1] = g;
    heat[4 * p + 2] = b;
    heat[4 * p + 3] = 255;
  }
  let layer = sharp(heat, { raw: { width, height, channels: 4 } });
  if (options.blur > 0) layer = layer.blur(Math.max(0.3, options.blur));
  const blurred = await layer.raw().toBuffer();
  const base = canvas.thumbnail !== undefined
    ? await (typeof canvas.thumbnail === 'string' || Buffer.isBuffer(canvas.thumbnail)
      ? sharp(canvas.thumbnail)
      : sharp(Buffer.from(canvas.thumbnail.data), { raw: { width: canvas.thumbnail.width, height: canvas.thumbnail.height, channels: 3 } })
    ).resize(width, height, { fit: 'fill' }).removeAlpha().raw().toBuffer()
    : Buffer.alloc(width * height * 3, 255);
  const out = Buffer.alloc(width * height * 3);
  for (let p = 0; p < width * height; p += 1) {
    const a = options.alpha * ((blurred[4 * p + 3] as number) / 255);
    for (let ch = 0; ch < 3; ch += 1) out[3 * p + ch] = Math.round((1 - a) * (base[3 * p + ch] as number) + a * (blurred[4 * p + ch] as number));
  }
  return { data: out, width, height };
}

/** Writes the heatmap PNG. */
export async function writeHeatmapPng(file: string, patches: PatchScores, canvas: HeatmapCanvas = {}, options: HeatmapOptions = DEFAULT_HEATMAP_OPTIONS): Promise<void> {
  const sharp = (await import('sharp')).default;
  const { data, width, height } = await renderHeatmap(patches, canvas, options);
  await mkdir(path.dirname(file), { recursive: true });
  await sharp(data, { raw: { width, height, channels: 3 } }).png().toFile(file);
}

/** Indices of the k highest scores, highest first (ties: lower index first). */
export function topK(scores: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => (scores[b] as number) - (scores[a] as number) || a - b).slice(0, k);
}

/** A square RGB patch image. */
export interface PatchImage {
  readonly rgb: Uint8Array;
  readonly size: number;
}

/**
 * The top-k patches in a grid (rank order, left to right, top to bottom), each scaled to `tile` pixels
 * (nearest neighbour, so 16×16 thumbnails stay legible) with a 2-pixel white gap.
 */
export async function writeMontagePng(file: string, images: readonly PatchImage[], options: { readonly tile?: number; readonly columns?: number } = {}): Promise<void> {
  const sharp = (await import('sharp')).default;
  const tile = options.tile ?? 96;
  const columns = Math.max(1, Math.min(options.columns ?? 8, images.length));
  const rows = Math.max(1, Math.ceil(images.length / columns));
  const gap = 2;
  const width = columns * (tile + gap) + gap;
  const height = rows * (tile + gap) + gap;
  const tiles = await Promise.all(images.map(async (image, i) => ({
    input: await sharp(Buffer.from(image.rgb), { raw: { width: image.size, height: image.size, channels: 3 } }).resize(tile, tile, { kernel: 'nearest' }).png().toBuffer(),
    left: gap + (i % columns) * (tile + gap),
    top: gap + Math.floor(i / columns) * (tile + gap),
  })));
  await mkdir(path.dirname(file), { recursive: true });
  await sharp({ create: { width, height, channels: 3, background: '#ffffff' } }).composite(tiles).png().toFile(file);
}

/** Row i of [N, 16, 16, 3] thumbnails as a patch image. */
export function thumbnailPatch(thumbs: Uint8Array, index: number, side = 16): PatchImage {
  const size = side * side * 3;
  return { rgb: thumbs.subarray(index * size, (index + 1) * size), size: side };
}

/** Column name of a class in the score tables (`score_<class>`). */
function scoreColumn(name: string): string {
  return `score_${name.replace(/[^A-Za-z0-9_.-]+/g, '_')}`;
}

/**
 * CSV of the instance scores: patch index, level-0 x, y, patch size, then `score` (the branch drawn) and with
 * class-wise attention one `score_<class>` column per class.
 */
export function instanceScoresCsv(coords: Float32Array | undefined, rows: readonly Float32Array[], branchNames: readonly string[], patchSize: number, drawn: number): string {
  const n = rows[0]?.length ?? 0;
  const perClass = rows.length > 1;
  const header = ['patch', 'x', 'y', 'patch_size', 'score', ...(perClass ? branchNames.map(scoreColumn) : [])];
  const lines = [header.join(',')];
  for (let i = 0; i < n; i += 1) {
    const x = coords ? String(coords[2 * i]) : '';
    const y = coords ? String(coords[2 * i + 1]) : '';
    lines.push([String(i), x, y, coords ? String(patchSize) : '', String((rows[drawn] as Float32Array)[i]), ...(perClass ? rows.map((r) => String(r[i])) : [])].join(','));
  }
  return `${lines.join('\n')}\n`;
}

export interface GeoJsonFeature {
  readonly type: 'Feature';
  readonly id: string;
  readonly geometry: { readonly type: 'Polygon'; readonly coordinates: number[][][] };
  readonly properties: Record<string, unknown>;
}

export interface GeoJsonFeatureCollection {
  readonly type: 'FeatureCollection';
  readonly features: GeoJsonFeature[];
}

/**
 * One Polygon feature per patch (its level-0 square, closed ring), with `score` (and `score_<class>` for
 * class-wise attention) as properties; QuPath reads `objectType` and the `measurements` map.
 */
export function instanceScoresGeoJson(slideId: string, coords: Float32Array, rows: readonly Float32Array[], branchNames: readonly string[], patchSize: number, drawn: number): GeoJsonFeatureCollection {
  const n = rows[0]?.length ?? 0;
  const perClass = rows.length > 1;
  const features: GeoJsonFeature[] = [];
  for (let i = 0; i < n; i += 1) {
    const x = coords[2 * i] as number;
    const y = coords[2 * i + 1] as number;
    const score = (rows[drawn] as Float32Array)[i] as number;
    const classScores = perClass ? Object.fromEntries(rows.map((r, k) => [scoreColumn(branchNames[k] ?? String(k)), r[i] as number])) : {};
    features.push({
      type: 'Feature',
      id: `${slideId}:${i}`,
      geometry: { type: 'Polygon', coordinates: [[[x, y], [x + patchSize, y], [x + patchSize, y + patchSize], [x, y + patchSize], [x, y]]] },
      properties: { objectType: 'tile', name: `patch ${i}`, patch: i, score, ...classScores, measurements: { score, ...classScores } },
    });
  }
  return { type: 'FeatureCollection', features };
}

/** Writes text, creating the folder. */
export async function writeText(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
}
