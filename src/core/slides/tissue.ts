// Tissue detection in CLAM's manner on a low-resolution level: HSV saturation, median blur, a fixed (or Otsu)
// threshold, morphological closing, then connected tissue pieces and their holes filtered by area, returned
// as a mask and as GeoJSON polygons in level-0 coordinates. Each step matches OpenCV's operation of the same
// name on 8-bit images (cvtColor HSV, medianBlur, threshold, morphologyEx CLOSE); areas are pixel counts.
import type { RgbImage, SlideReader } from './reader.js';
import { bestLevelForDownsample } from './reader.js';

export interface TissueOptions {
  /** Level-0 pixels per analysis pixel wanted (CLAM: the level closest to 64×). */
  readonly downsample: number;
  /** Saturation threshold (0–255): tissue where the blurred saturation exceeds it. */
  readonly saturationThreshold: number;
  /** Otsu's threshold on the blurred saturation instead of the fixed one. */
  readonly otsu: boolean;
  /** Median blur window (odd). */
  readonly medianKernel: number;
  /** Side of the square closing kernel (0 = no closing). */
  readonly closeKernel: number;
  /** Minimum tissue area, in units of (referencePatchSize)² level-0 pixels. */
  readonly minTissueArea: number;
  /** Minimum hole area, same units. */
  readonly minHoleArea: number;
  /** Holes kept per tissue piece (largest first). */
  readonly maxHoles: number;
  /** Level-0 patch side the areas are counted in (CLAM: 512). */
  readonly referencePatchSize: number;
  /**
   * Ignore pen ink before thresholding (not in CLAM, whose saturation threshold keeps blue, green and black marker
   * strokes as tissue): see {@link isPenInk}. Off by default so the defaults stay CLAM's.
   */
  readonly penFilter?: boolean;
}

/** What a `tissue-detector` plugin's create() returns. */
export interface TissueDetector {
  detect(reader: SlideReader): Promise<TissueResult>;
}

/** Capability flags of tissue detectors (none yet). */
export type TissueDetectorCapabilities = Readonly<Record<string, never>>;

/** CLAM's create_patches_fp defaults (sthresh 8, mthresh 7, close 4, a_t 100, a_h 16, max_n_holes 8). */
export const CLAM_TISSUE_DEFAULTS: TissueOptions = {
  downsample: 64,
  saturationThreshold: 8,
  otsu: false,
  medianKernel: 7,
  closeKernel: 4,
  minTissueArea: 100,
  minHoleArea: 16,
  maxHoles: 8,
  referencePatchSize: 512,
};

export interface TissueResult {
  readonly level: number;
  readonly downsample: number;
  /** Analysis-level mask after filtering (255 = tissue, holes kept as 0). */
  readonly mask: Uint8Array;
  readonly width: number;
  readonly height: number;
  /** The saturation threshold used (the Otsu value when `otsu`). */
  readonly threshold: number;
  /** One Polygon feature per tissue piece: outer ring then its kept holes, in level-0 pixel coordinates. */
  readonly geojson: TissueGeoJson;
  /** The analysis-level pixels the mask was computed from. */
  readonly image: RgbImage;
}

export interface TissueGeoJson {
  readonly type: 'FeatureCollection';
  readonly features: ReadonlyArray<{
    readonly type: 'Feature';
    /** objectType and classification are what QuPath reads when importing GeoJSON (an annotation classed Tissue). */
    readonly properties: { readonly objectType: 'annotation'; readonly classification: { readonly name: 'Tissue' }; readonly areaPixels: number; readonly holes: number };
    readonly geometry: { readonly type: 'Polygon'; readonly coordinates: number[][][] };
  }>;
}

/** OpenCV's fixed-point reciprocal table for 8-bit HSV: round(255 · 2^12 / v). */
const SATURATION_DIVISORS = Int32Array.from({ length: 256 }, (_, v) => (v === 0 ? 0 : Math.round((255 << 12) / v)));

/** OpenCV's 8-bit HSV saturation, bit-exact: (max − min) · round(255·2^12 / max) + 2^11, shifted right by 12. */
export function saturation(image: RgbImage): Uint8Array {
  const out = new Uint8Array(image.width * image.height);
  for (let p = 0, q = 0; q < out.length; p += 3, q += 1) {
    const r = image.data[p] as number;
    const g = image.data[p + 1] as number;
    const b = image.data[p + 2] as number;
    const max = Math.max(r, g, b);
    out[q] = ((max - Math.min(r, g, b)) * (SATURATION_DIVISORS[max] as number) + 2048) >> 12;
  }
  return out;
}

/**
 * Marker ink, told from H&E by colour: stained tissue is red-dominant (eosin pink, haematoxylin purple averaged
 * with it at low resolution), so clearly blue-dominant (B − R > 40) or green-dominant (G − R > 20) pixels, and dark
 * grey ones (max < 130 with little colour: black ink over the glass), are ink. Thresholds leave the darkest
 * tumour-nucleus purple (B − R ≈ 45 only where a single nucleus fills a pixel) to the median blur that follows.
 */
export function isPenInk(r: number, g: number, b: number): boolean {
  const max = Math.max(r, g, b);
  return b - r > 40 || g - r > 20 || (max < 130 && max - Math.min(r, g, b) < 30);
}

/** Median over a k×k window with replicated borders (cv2.medianBlur). */
export function medianBlur(values: Uint8Array, width: number, height: number, k: number): Uint8Array {
  const out = new Uint8Array(values.length);
  const half = k >> 1;
  const histogram = new Uint32Array(256);
  const middle = (k * k) >> 1;
  const bump = (v: number, by: number): void => {
    histogram[v] = (histogram[v] as number) + by;
  };
  for (let y = 0; y < height; y += 1) {
    histogram.fill(0);
    // A running histogram along the row: add the entering column, drop the leaving one.
    for (let dy = -half; dy <= half; dy += 1) {
      const row = Math.min(height - 1, Math.max(0, y + dy)) * width;
      for (let dx = -half; dx <= half; dx += 1) bump(values[row + Math.min(width - 1, Math.max(0, dx))] as number, 1);
    }
    for (let x = 0; x < width; x += 1) {
      let seen = 0;
      let v = 0;
      for (; v < 256; v += 1) {
        seen += histogram[v] as number;
        if (seen > middle) break;
      }
      out[y * width + x] = v;
      if (x + 1 === width) break;
      const leaving = Math.max(0, x - half);
      const entering = Math.min(width - 1, x + half + 1);
      for (let dy = -half; dy <= half; dy += 1) {
        const row = Math.min(height - 1, Math.max(0, y + dy)) * width;
        bump(values[row + leaving] as number, -1);
        bump(values[row + entering] as number, 1);
      }
    }
  }
  return out;
}

/** Otsu's threshold of 8-bit values (the t maximising between-class variance, as cv2.THRESH_OTSU). */
export function otsuThreshold(values: Uint8Array): number {
  const histogram = new Float64Array(256);
  for (const v of values) histogram[v] = (histogram[v] as number) + 1;
  const total = values.length;
  let sumAll = 0;
  for (let i = 0; i < 256; i += 1) sumAll += i * (histogram[i] as number);
  let best = 0;
  let bestVariance = -1;
  let weightBelow = 0;
  let sumBelow = 0;
  for (let t = 0; t < 256; t += 1) {
    weightBelow += histogram[t] as number;
    sumBelow += t * (histogram[t] as number);
    const weightAbove = total - weightBelow;
    if (weightBelow === 0 || weightAbove === 0) continue;
    const meanBelow = sumBelow / weightBelow;
    const meanAbove = (sumAll - sumBelow) / weightAbove;
    const variance = weightBelow * weightAbove * (meanBelow - meanAbove) ** 2;
    if (variance > bestVariance) {
      bestVariance = variance;
      best = t;
    }
  }
  return best;
}

/** Dilation (max) or erosion (min) with a k×k square whose anchor is at (k/2, k/2) as in OpenCV; outside pixels never win. */
function morph(mask: Uint8Array, width: number, height: number, k: number, dilate: boolean): Uint8Array {
  const anchor = k >> 1;
  const rows = new Uint8Array(mask.length);
  const out = new Uint8Array(mask.length);
  const pick = dilate ? Math.max : Math.min;
  const neutral = dilate ? 0 : 255;
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      let v = neutral;
      for (let i = 0; i < k; i += 1) {
        const xx = x + i - anchor;
        if (xx >= 0 && xx < width) v = pick(v, mask[y * width + xx] as number);
      }
      rows[y * width + x] = v;
    }
  }
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      let v = neutral;
      for (let i = 0; i < k; i += 1) {
        const yy = y + i - anchor;
        if (yy >= 0 && yy < height) v = pick(v, rows[yy * width + x] as number);
      }
      out[y * width + x] = v;
    }
  }
  return out;
}

/** Morphological closing (dilate, then erode) with a k×k square (cv2.morphologyEx MORPH_CLOSE). */
export function close(mask: Uint8Array, width: number, height: number, k: number): Uint8Array {
  if (k <= 1) return mask;
  return morph(morph(mask, width, height, k, true), width, height, k, false);
}

/** Connected components of pixels equal to `value` (8-connected for tissue, 4 for background as in contour tracing). */
function components(mask: Uint8Array, width: number, height: number, value: number, eight: boolean): { labels: Int32Array; sizes: number[]; touchesBorder: boolean[] } {
  const labels = new Int32Array(mask.length).fill(-1);
  const sizes: number[] = [];
  const touchesBorder: boolean[] = [];
  const stack: number[] = [];
  const steps = eight ? [-1, 0, 1].flatMap((dy) => [-1, 0, 1].map((dx) => [dx, dy] as const)).filter(([dx, dy]) => dx !== 0 || dy !== 0) : ([[1, 0], [-1, 0], [0, 1], [0, -1]] as const);
  for (let start = 0; start < mask.length; start += 1) {
    if (mask[start] !== value || labels[start] !== -1) continue;
    const id = sizes.length;
    let size = 0;
    let border = false;
    labels[start] = id;
    stack.push(start);
    while (stack.length > 0) {
      const p = stack.pop() as number;
      size += 1;
      const x = p % width;
      const y = (p / width) | 0;
      if (x === 0 || y === 0 || x === width - 1 || y === height - 1) border = true;
      for (const [dx, dy] of steps) {
        const nx = x + dx;
        const ny = y + dy;
        if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
        const q = ny * width + nx;
        if (mask[q] === value && labels[q] === -1) {
          labels[q] = id;
          stack.push(q);
        }
      }
    }
    sizes.push(size);
    touchesBorder.push(border);
  }
  return { labels, sizes, touchesBorder };
}

/**
 * The outline of the pixels labelled `id` as a closed ring of pixel-corner coordinates: a walk along the cracks
 * between inside and outside pixels with the inside on the right (y grows downwards), from the component's first
 * pixel in scan order. At a corner where two inside pixels touch diagonally, an 8-connected component's ring
 * continues to the diagonal pixel and a 4-connected one's turns away from it.
 */
function traceRing(labels: Int32Array, width: number, height: number, id: number, start: number, eight: boolean): number[][] {
  const inside = (x: number, y: number): boolean => x >= 0 && y >= 0 && x < width && y < height && labels[y * width + x] === id;
  // Corner coordinates; direction 0 = +x, 1 = +y, 2 = −x, 3 = −y (y grows downwards).
  const x0 = start % width;
  const y0 = (start / width) | 0;
  const ring: number[][] = [[x0, y0]];
  let x = x0;
  let y = y0;
  let dir = 0; // the top edge of the first (top-left-most) pixel, walked left to right
  const dx = [1, 0, -1, 0];
  const dy = [0, 1, 0, -1];
  // Pixels to the left and right of a step from corner (x, y) in direction d.
  const leftPixel = (cx: number, cy: number, d: number): [number, number] => [[cx, cy - 1], [cx, cy], [cx - 1, cy], [cx - 1, cy - 1]][d] as [number, number];
  const rightPixel = (cx: number, cy: number, d: number): [number, number] => [[cx, cy], [cx - 1, cy], [cx - 1, cy - 1], [cx, cy - 1]][d] as [number, number];
  for (let guard = 0; guard < 4 * labels.length + 8; guard += 1) {
    x += dx[dir] as number;
    y += dy[dir] as number;
    if (x === x0 && y === y0 && dir === 3) break;
    for (const turn of eight ? [3, 0, 1] : [1, 0, 3]) {
      const d = (dir + turn) % 4;
      const [rx, ry] = rightPixel(x, y, d);
      const [lx, ly] = leftPixel(x, y, d);
      if (inside(rx, ry) && !inside(lx, ly)) {
        if (d !== dir) ring.push([x, y]);
        dir = d;
        break;
      }
    }
  }
  ring.push([x0, y0]);
  return ring;
}

/** CLAM-style tissue segmentation of a slide at the level nearest `options.downsample`. */
export async function detectTissue(reader: SlideReader, options: TissueOptions = CLAM_TISSUE_DEFAULTS): Promise<TissueResult> {
  const level = bestLevelForDownsample(reader.levels, options.downsample);
  const { width, height, downsample } = reader.levels[level] as { width: number; height: number; downsample: number };
  const image = await reader.readRegion({ x: 0, y: 0, level, width, height });
  return segmentTissue(image, level, downsample, options);
}

/** The pixel steps before any contour logic: saturation → median blur → threshold → closing. */
export function tissueBinary(image: RgbImage, options: TissueOptions): { threshold: number; blurred: Uint8Array; closed: Uint8Array } {
  const sat = saturation(image);
  if (options.penFilter === true) {
    for (let q = 0, p = 0; q < sat.length; q += 1, p += 3) if (isPenInk(image.data[p] as number, image.data[p + 1] as number, image.data[p + 2] as number)) sat[q] = 0;
  }
  const blurred = medianBlur(sat, image.width, image.height, options.medianKernel);
  const threshold = options.otsu ? otsuThreshold(blurred) : options.saturationThreshold;
  const binary = blurred.map((v) => (v > threshold ? 255 : 0));
  return { threshold, blurred, closed: close(binary, image.width, image.height, options.closeKernel) };
}

/** The segmentation itself, on an image already read at `downsample`. */
export function segmentTissue(image: RgbImage, level: number, downsample: number, options: TissueOptions): TissueResult {
  const { width, height } = image;
  const { threshold, closed } = tissueBinary(image, options);
  // Areas in analysis pixels: CLAM scales its thresholds by the reference patch area at this level.
  const unit = options.referencePatchSize ** 2 / (downsample * downsample);
  const tissue = components(closed, width, height, 255, true);
  const holes = components(closed, width, height, 0, false);
  const mask = new Uint8Array(closed.length);
  const keptHoleIds = new Map<number, number[]>(); // tissue id → kept hole ids
  const holeOwner = new Map<number, number>();
  // A background component not touching the border is a hole of the tissue piece that surrounds it.
  for (let p = 0; p < closed.length; p += 1) {
    const h = holes.labels[p] as number;
    if (h < 0 || holes.touchesBorder[h] || holeOwner.has(h)) continue;
    const x = p % width;
    const y = (p / width) | 0;
    const owner = x > 0 ? (tissue.labels[y * width + x - 1] as number) : -1; // the pixel left of the hole's first pixel
    holeOwner.set(h, owner);
  }
  const features: Array<TissueGeoJson['features'][number]> = [];
  const firstPixel = new Map<number, number>();
  for (let p = 0; p < closed.length; p += 1) {
    const t = tissue.labels[p] as number;
    if (t >= 0 && !firstPixel.has(t)) firstPixel.set(t, p);
    const h = holes.labels[p] as number;
    if (h >= 0 && !firstPixel.has(-2 - h)) firstPixel.set(-2 - h, p);
  }
  for (let t = 0; t < tissue.sizes.length; t += 1) {
    const ownHoles = [...holeOwner.entries()].filter(([, owner]) => owner === t).map(([h]) => h);
    // CLAM counts a piece by its outline's area minus its holes' areas: its own pixel count here.
    const area = tissue.sizes[t] as number;
    if (area <= options.minTissueArea * unit) continue;
    const kept = ownHoles.filter((h) => (holes.sizes[h] as number) > options.minHoleArea * unit).sort((a, b) => (holes.sizes[b] as number) - (holes.sizes[a] as number)).slice(0, options.maxHoles);
    keptHoleIds.set(t, kept);
    const scale = (ring: number[][]): number[][] => ring.map(([x, y]) => [(x as number) * downsample, (y as number) * downsample]);
    const outer = scale(traceRing(tissue.labels, width, height, t, firstPixel.get(t) as number, true));
    const inner = kept.map((h) => scale(traceRing(holes.labels, width, height, h, firstPixel.get(-2 - h) as number, false)).reverse());
    features.push({ type: 'Feature', properties: { objectType: 'annotation', classification: { name: 'Tissue' }, areaPixels: area, holes: kept.length }, geometry: { type: 'Polygon', coordinates: [outer, ...inner] } });
  }
  // The mask: kept pieces filled, minus their kept holes (small holes are filled, as CLAM's contours do).
  for (let p = 0; p < closed.length; p += 1) {
    const t = tissue.labels[p] as number;
    if (t >= 0 && keptHoleIds.has(t)) mask[p] = 255;
    const h = holes.labels[p] as number;
    if (h >= 0) {
      const owner = holeOwner.get(h);
      if (owner !== undefined && keptHoleIds.has(owner) && !(keptHoleIds.get(owner) as number[]).includes(h)) mask[p] = 255;
    }
  }
  return { level, downsample, mask, width, height, threshold, geojson: { type: 'FeatureCollection', features }, image };
}

/** A preview: the analysis image with background dimmed and the tissue outline in green. */
export function tissuePreview(result: TissueResult): RgbImage {
  const { width, height, mask, image } = result;
  const data = new Uint8Array(image.data);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const p = y * width + x;
      const inside = mask[p] === 255;
      const edge = inside && (x === 0 || y === 0 || x === width - 1 || y === height - 1 || mask[p - 1] === 0 || mask[p + 1] === 0 || mask[p - width] === 0 || mask[p + width] === 0);
      if (edge) data.set([0, 200, 0], p * 3);
      else if (!inside) for (let c = 0; c < 3; c += 1) data[p * 3 + c] = ((data[p * 3 + c] as number) * 0.45) | 0;
    }
  }
  return { width, height, data };
}
