// Building blocks of the synthetic benchmark datasets: a tissue-shaped patch grid, spatially clustered
// lesions, a low-dimensional signal subspace, H&E-coloured 16×16 thumbnails, and a lazy in-memory source.
// Every draw comes from an Rng stream named after the slide, so a slide's bag never depends on load order.
import { z } from 'zod';
import type { BagData, BagSource, LabelHierarchy, SlideRecord } from '../../registry/contracts/data.js';
import { DataError } from '../errors.js';
import type { Rng } from '../runtime/random.js';
import { ByteLruCache, bagBytes } from './cache.js';

/** Per-dataset defaults of the options every synthetic dataset shares. */
export interface SyntheticOptionDefaults {
  readonly slides: number;
  /** Smallest slide count that still gives every class at least one slide. */
  readonly minSlides: number;
  readonly instances: readonly [number, number];
  readonly minFeatureDim: number;
  readonly slideShift: number;
  readonly thumbs: boolean;
  readonly officialTestFraction: number;
}

/**
 * The option fields shared by the synthetic datasets (cohort size, bag sizes, feature width, tissue types, batch
 * effect, thumbnails, official test split, seed); each plugin adds its own signal options and may replace a field
 * to describe it in its own terms.
 */
export function syntheticOptionFields(defaults: SyntheticOptionDefaults) {
  return {
    slides: z.int().min(defaults.minSlides).max(SYNTHETIC_LIMITS.slides).default(defaults.slides).describe('number of slides'),
    slidesPerCase: z.int().min(1).max(SYNTHETIC_LIMITS.slides).default(1).describe('slides per patient (case_id); all slides of a case share its label'),
    instances: z.tuple([z.int().min(1).max(SYNTHETIC_LIMITS.instances), z.int().min(1).max(SYNTHETIC_LIMITS.instances)])
      .default([defaults.instances[0], defaults.instances[1]]).describe('[min, max] instances N per slide (uniform)'),
    featureDim: z.int().min(defaults.minFeatureDim).max(SYNTHETIC_LIMITS.featureDim).default(64).describe('D: feature width'),
    backgroundTypes: z.int().min(1).default(4).describe('number of normal tissue prototypes (stroma, fat, lymphocytes, ...)'),
    slideShift: z.number().min(0).default(defaults.slideShift).describe('σ_o: std of the per-slide feature offset (scanner/stain batch effect)'),
    thumbs: z.boolean().default(defaults.thumbs).describe('generate 16×16 RGB thumbnails per instance'),
    thumbSignal: z.number().min(0).max(1).default(0.3).describe('strength of the lesion cue in the thumbnails (0 = none)'),
    officialTestFraction: z.number().min(0).lt(1).default(defaults.officialTestFraction).describe('fraction of cases marked split=test in the slide table'),
    seed: z.int().min(0).optional().describe('data seed; defaults to the experiment seed'),
  };
}

/**
 * The cases a synthetic dataset marks split=test (its official test set): per class, round(cases × fraction) of the
 * class's cases, drawn from the stream `official-test/<class>` of `rng`, so the set is stratified by label.
 */
export function officialTestCases(caseLabels: readonly number[], numClasses: number, fraction: number, rng: Rng): Set<number> {
  const testCases = new Set<number>();
  for (let label = 0; label < numClasses; label += 1) {
    const ofLabel = caseLabels.flatMap((l, i) => (l === label ? [i] : []));
    for (const i of rng.fork(`official-test/${label}`).shuffle(ofLabel).slice(0, Math.round(ofLabel.length * fraction))) testCases.add(i);
  }
  return testCases;
}

/** Cross-field rules of a synthetic dataset's options beyond the ones every synthetic dataset has. */
export interface SyntheticOptionRules<Key extends string = string> {
  /** Its own [min, max] options (besides the shared `instances`) whose min must not exceed the max. */
  readonly ranges?: readonly Key[];
  /** It has a `signalDim` option, which must not exceed `featureDim`. */
  readonly signalWithinFeatures?: boolean;
}

/**
 * The options schema of a synthetic dataset: the shared fields extended by the dataset's own (a field of the
 * same name replaces the shared one where it stands, so the key order, and with it the JSON schema, does not
 * change), checked as every synthetic dataset is: [min, max] pairs ordered, the largest bag within the byte
 * budget, and `signalDim ≤ featureDim` when asked. A dataset chains `.check` for rules of its own.
 */
export function syntheticOptions<const Fields extends z.core.$ZodLooseShape>(defaults: SyntheticOptionDefaults, fields: Fields, rules: SyntheticOptionRules<keyof Fields & string> = {}) {
  return z.strictObject(syntheticOptionFields(defaults)).extend(fields).check((ctx) => {
    const value = ctx.value as Readonly<Record<string, unknown>>;
    ctx.issues.push(...minMaxIssues(value, ['instances', ...(rules.ranges ?? [])]));
    ctx.issues.push(...bagBudgetIssues(value));
    const signalDim = value['signalDim'] as number;
    const featureDim = value['featureDim'] as number;
    if (rules.signalWithinFeatures === true && signalDim > featureDim) {
      ctx.issues.push({ code: 'custom', input: signalDim, path: ['signalDim'], message: `signalDim ${signalDim} exceeds featureDim ${featureDim}` });
    }
  });
}

/**
 * Upper bounds of the synthetic sizes, checked when the config is read so that a typo (`slides: 1e12`) is a config
 * error naming the key instead of an allocation that crashes or swaps. The largest real slides hold ~150,000 patches
 * at 20×; feature widths of today's encoders stop at 1,536.
 */
export const SYNTHETIC_LIMITS = {
  slides: 100_000,
  instances: 500_000,
  featureDim: 8192,
  /** Bytes of one generated bag's features (max N × D × 4). */
  bagBytes: 2 * 1024 ** 3,
} as const;

/** Issues for a largest bag (max instances × feature width) that would not fit the per-bag byte budget. */
export function bagBudgetIssues(value: Readonly<Record<string, unknown>>): z.core.$ZodRawIssue[] {
  const instances = value['instances'] as readonly [number, number] | undefined;
  const featureDim = value['featureDim'] as number | undefined;
  if (instances === undefined || featureDim === undefined) return [];
  const bytes = instances[1] * featureDim * 4;
  if (bytes <= SYNTHETIC_LIMITS.bagBytes) return [];
  const gib = (b: number): string => `${(b / 1024 ** 3).toFixed(1)} GiB`;
  return [{
    code: 'custom' as const,
    input: instances,
    path: ['instances'],
    message: `the largest bag (${instances[1]} instances × featureDim ${featureDim} × 4 bytes = ${gib(bytes)}) exceeds the ${gib(SYNTHETIC_LIMITS.bagBytes)} per-bag budget; lower instances or featureDim`,
  }];
}

/** Issues for [min, max] option pairs whose min exceeds their max (for a schema's `.check`). */
export function minMaxIssues(value: Readonly<Record<string, unknown>>, keys: readonly string[]): z.core.$ZodRawIssue[] {
  return keys.flatMap((key) => {
    const pair = value[key] as readonly [number, number];
    return pair[0] > pair[1] ? [{ code: 'custom' as const, input: pair, path: [key], message: `min ${pair[0]} > max ${pair[1]}` }] : [];
  });
}

/** Level-0 pixel size of one synthetic patch (CLAM's default patch at 20×). */
export const SYNTHETIC_PATCH_SIZE = 256;
/** Side of the low-resolution thumbnails (HDMIL: 256 px at 20× = 16 px at 1.25×). */
export const THUMB_SIDE = 16;

export interface TissueGrid {
  /** [N, 2] level-0 (x, y) of each patch's top-left corner, raster order (row-major), as CLAM patching emits. */
  readonly coords: Float32Array;
  /** [N, 2] integer (column, row) grid cells. */
  readonly cells: Int32Array;
}

/** N patch positions forming one irregular, elliptical tissue blob on a square grid. */
export function tissueGrid(n: number, rng: Rng): TissueGrid {
  const side = Math.max(1, Math.ceil(Math.sqrt(n * 1.8)));
  const cx = (side - 1) / 2 + (rng.next() - 0.5) * 0.2 * side;
  const cy = (side - 1) / 2 + (rng.next() - 0.5) * 0.2 * side;
  const aspect = 0.7 + 0.6 * rng.next();
  const angle = rng.next() * Math.PI;
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const scored: Array<{ cell: number; score: number }> = [];
  for (let row = 0; row < side; row += 1) {
    for (let col = 0; col < side; col += 1) {
      const u = (col - cx) * cos + (row - cy) * sin;
      const v = (-(col - cx) * sin + (row - cy) * cos) * aspect;
      // A ragged border: the radial rank is perturbed, so the blob is not a perfect ellipse.
      scored.push({ cell: row * side + col, score: Math.hypot(u, v) / side + 0.04 * rng.normal() });
    }
  }
  scored.sort((a, b) => a.score - b.score || a.cell - b.cell);
  const kept = scored.slice(0, n).map((s) => s.cell).sort((a, b) => a - b);
  const coords = new Float32Array(n * 2);
  const cells = new Int32Array(n * 2);
  kept.forEach((cell, i) => {
    const col = cell % side;
    const row = Math.floor(cell / side);
    cells[2 * i] = col;
    cells[2 * i + 1] = row;
    coords[2 * i] = col * SYNTHETIC_PATCH_SIZE;
    coords[2 * i + 1] = row * SYNTHETIC_PATCH_SIZE;
  });
  return { coords, cells };
}

/** A 0/1 mask of the `k` instances nearest (on the grid) to a random seed instance: one compact lesion. */
export function clusteredRegion(cells: Int32Array, k: number, rng: Rng): Uint8Array {
  const n = cells.length / 2;
  const mask = new Uint8Array(n);
  if (k <= 0 || n === 0) return mask;
  const seed = rng.int(n);
  const sx = cells[2 * seed] as number;
  const sy = cells[2 * seed + 1] as number;
  const order = Array.from({ length: n }, (_, i) => ({
    i,
    // The jitter breaks distance ties randomly, so lesion borders are not perfectly round.
    d: Math.hypot((cells[2 * i] as number) - sx, (cells[2 * i + 1] as number) - sy) + 0.5 * rng.next(),
  }));
  order.sort((a, b) => a.d - b.d || a.i - b.i);
  for (const { i } of order.slice(0, Math.min(k, n))) mask[i] = 1;
  return mask;
}

/** `s` orthonormal vectors of R^d as rows of a [s, d] array (Gram-Schmidt on Gaussian draws). */
export function orthonormalRows(s: number, d: number, rng: Rng): Float32Array[] {
  if (s > d) throw new RangeError(`cannot draw ${s} orthonormal vectors in ${d} dimensions`);
  const rows: Float32Array[] = [];
  while (rows.length < s) {
    const v = rng.normalArray(d);
    for (const r of rows) subtractProjection(v, r);
    const norm = Math.hypot(...v);
    if (norm < 1e-6) continue;
    for (let j = 0; j < d; j += 1) v[j] = (v[j] as number) / norm;
    rows.push(v);
  }
  return rows;
}

/** v ← v - (v·u) u for a unit vector u. */
export function subtractProjection(v: Float32Array, u: Float32Array): void {
  let dot = 0;
  for (let j = 0; j < v.length; j += 1) dot += (v[j] as number) * (u[j] as number);
  for (let j = 0; j < v.length; j += 1) v[j] = (v[j] as number) - dot * (u[j] as number);
}

/** out[row] += scale · direction (in place), for a [N, D] row-major array. */
export function addToRow(out: Float32Array, d: number, row: number, direction: Float32Array, scale: number): void {
  const base = row * d;
  for (let j = 0; j < d; j += 1) out[base + j] = (out[base + j] as number) + scale * (direction[j] as number);
}

const EOSIN_PINK = [232, 170, 205] as const;
const HEMATOXYLIN_PURPLE = [140, 85, 170] as const;
const NUCLEUS = [70, 35, 110] as const;

/**
 * Uniform [0, 1) from an integer hash of (seed, index). Pixel texture needs ~10^7 values per dataset; a
 * stateless hash seeded from the slide's Rng keeps it deterministic at a fraction of ARC4's cost.
 */
export function hashUniform(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

/**
 * [N, 16, 16, 3] uint8 H&E-like thumbnails. `signal[n]` in [0, 1] darkens the stain towards hematoxylin
 * and raises nuclear density (tumour looks crowded and purple); stain jitter and pixel noise keep it a weak cue.
 */
export function renderThumbs(signal: Float32Array, rng: Rng): Uint8Array {
  const n = signal.length;
  const px = THUMB_SIDE * THUMB_SIDE;
  const out = new Uint8Array(n * px * 3);
  const textureSeed = rng.seed();
  for (let i = 0; i < n; i += 1) {
    const s = Math.min(1, Math.max(0, signal[i] as number));
    const stain = Math.min(1, Math.max(0, 0.2 + 0.6 * s + 0.1 * rng.normal()));
    const nucleusRate = 0.04 + 0.22 * s;
    for (let p = 0; p < px; p += 1) {
      const at = (i * px + p) * 2;
      const isNucleus = hashUniform(textureSeed, at) < nucleusRate;
      // Triangular noise in (-1, 1) from two hashes, shared by the three channels (luminance grain).
      const grain = 18 * (hashUniform(textureSeed, at + 1) + hashUniform(textureSeed ^ 0x5bd1e995, at) - 1);
      const base = (i * px + p) * 3;
      for (let c = 0; c < 3; c += 1) {
        const tissue = (1 - stain) * (EOSIN_PINK[c] as number) + stain * (HEMATOXYLIN_PURPLE[c] as number);
        const value = (isNucleus ? (NUCLEUS[c] as number) : tissue) + grain;
        out[base + c] = Math.min(255, Math.max(0, Math.round(value)));
      }
    }
  }
  return out;
}

/** The instance count of a synthetic slide: uniform integer in [lo, hi]. */
export function drawCount(lo: number, hi: number, rng: Rng): number {
  return lo + rng.int(hi - lo + 1);
}

/** Log-uniform draw in [lo, hi] (lesion fractions spread over orders of magnitude). */
export function logUniform(lo: number, hi: number, rng: Rng): number {
  return Math.exp(Math.log(lo) + rng.next() * (Math.log(hi) - Math.log(lo)));
}

/**
 * Assigns labels to `count` items so each class gets round(count · fraction) of them (the rounding
 * remainder goes to the largest fractions), then shuffles: exact class proportions, random order.
 */
export function balancedLabels(count: number, fractions: readonly number[], rng: Rng): number[] {
  const total = fractions.reduce((a, b) => a + b, 0);
  const raw = fractions.map((f) => (count * f) / total);
  const counts = raw.map(Math.floor);
  let left = count - counts.reduce((a, b) => a + b, 0);
  const byRemainder = raw.map((r, i) => ({ i, r: r - Math.floor(r) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of byRemainder) {
    if (left === 0) break;
    counts[i] = (counts[i] as number) + 1;
    left -= 1;
  }
  const labels: number[] = [];
  counts.forEach((c, label) => {
    for (let j = 0; j < c; j += 1) labels.push(label);
  });
  return rng.shuffle(labels);
}

/** A BagSource whose bags are generated on demand by `generate` and kept in a byte-bounded LRU cache. */
export class GeneratedBagSource implements BagSource {
  private readonly cache: ByteLruCache<BagData>;
  private readonly byId: ReadonlyMap<string, SlideRecord>;
  readonly hierarchy?: LabelHierarchy;

  constructor(
    readonly slides: readonly SlideRecord[],
    readonly featureDim: number,
    readonly classNames: readonly string[],
    private readonly generate: (slide: SlideRecord) => BagData,
    cacheBytes: number,
    private readonly datasetName: string,
    hierarchy?: LabelHierarchy,
  ) {
    if (hierarchy !== undefined) this.hierarchy = hierarchy;
    this.cache = new ByteLruCache<BagData>(cacheBytes, bagBytes);
    this.byId = new Map(slides.map((s) => [s.slideId, s] as const));
  }

  load(slideId: string): Promise<BagData> {
    const slide = this.byId.get(slideId);
    if (slide === undefined) {
      return Promise.reject(new DataError('unknown-slide', `slide "${slideId}" is not in dataset ${this.datasetName}.`, { hint: 'Use an id from the slide table.' }));
    }
    return this.cache.getOrLoad(slideId, () => Promise.resolve(this.generate(slide)));
  }

  close(): Promise<void> {
    this.cache.clear();
    return Promise.resolve();
  }
}

/** Dataset-level geometry of a lesion benchmark: background tissue prototypes (⊥ the signal subspace). */
export interface LesionStructure {
  readonly featureDim: number;
  /** [s, D] orthonormal signal directions; lesion shifts live in their span. */
  readonly basis: readonly Float32Array[];
  /** Normal-tissue prototypes, orthogonal to the basis, norm 2. */
  readonly prototypes: readonly Float32Array[];
}

/** Draws the signal basis and `backgroundTypes` prototypes orthogonal to it. */
export function lesionStructure(featureDim: number, signalDim: number, backgroundTypes: number, rng: Rng): LesionStructure {
  const basis = orthonormalRows(signalDim, featureDim, rng.fork('signal-basis'));
  const protoRng = rng.fork('prototypes');
  const prototypes = Array.from({ length: backgroundTypes }, () => {
    const p = protoRng.normalArray(featureDim);
    for (const b of basis) subtractProjection(p, b);
    const norm = Math.hypot(...p) || 1;
    // Norm 2: tissue types differ more than the unit instance noise, less than a strong lesion shift.
    for (let j = 0; j < featureDim; j += 1) p[j] = (2 * (p[j] as number)) / norm;
    return p;
  });
  return { featureDim, basis, prototypes };
}

export interface LesionBagSpec {
  readonly slideId: string;
  readonly n: number;
  /** Lesion size k (instances nearest a random seed cell). */
  readonly lesionInstances: number;
  /** [D] mean shift of lesion instances. */
  readonly lesionShift: Float32Array;
  /** Std of per-instance jitter of lesion instances along each basis direction. */
  readonly lesionJitter: number;
  /** σ_o of the per-slide offset. */
  readonly slideShift: number;
  /** Thumbnail cue strength in [0, 1]; undefined = no thumbnails. */
  readonly thumbSignal?: number;
}

/**
 * One synthetic bag: x_n = p_{t(n)} + o + ε_n + y_n (shift + jitter·B ξ_n) on a tissue grid, y the compact
 * lesion mask; thumbnails carry y weakly. Every draw comes from `rng` forks named by purpose.
 */
export function generateLesionBag(spec: LesionBagSpec, structure: LesionStructure, rng: Rng): BagData {
  const { n } = spec;
  const d = structure.featureDim;
  const grid = tissueGrid(n, rng.fork('grid'));
  const instanceLabels = clusteredRegion(grid.cells, spec.lesionInstances, rng.fork('lesion'));
  const noise = rng.fork('features');
  const features = noise.normalArray(n * d);
  const offset = noise.normalArray(d, 0, spec.slideShift);
  const mixLogits = Array.from({ length: structure.prototypes.length }, () => noise.normal());
  const mixMax = Math.max(...mixLogits);
  const mix = mixLogits.map((v) => Math.exp(v - mixMax));
  const mixTotal = mix.reduce((a, b) => a + b, 0);
  for (let i = 0; i < n; i += 1) {
    let u = noise.next() * mixTotal;
    let type = 0;
    while (type < mix.length - 1 && u >= (mix[type] as number)) u -= mix[type++] as number;
    addToRow(features, d, i, structure.prototypes[type] as Float32Array, 1);
    addToRow(features, d, i, offset, 1);
    if (instanceLabels[i] === 1) {
      addToRow(features, d, i, spec.lesionShift, 1);
      for (const b of structure.basis) addToRow(features, d, i, b, spec.lesionJitter * noise.normal());
    }
  }
  const bag: { -readonly [K in keyof BagData]: BagData[K] } = { slideId: spec.slideId, n, d, features, coords: grid.coords, instanceLabels };
  if (spec.thumbSignal !== undefined) {
    const thumbRng = rng.fork('thumbs');
    const signal = new Float32Array(n);
    for (let i = 0; i < n; i += 1) signal[i] = spec.thumbSignal * (instanceLabels[i] as number) + 0.25 * Math.abs(thumbRng.normal());
    bag.thumbs = renderThumbs(signal, thumbRng);
  }
  return bag;
}

/** a·Σ_k w_k b_k for weights over basis rows (a lesion shift direction). */
export function combineBasis(basis: readonly Float32Array[], weights: readonly number[], scale: number): Float32Array {
  const d = basis[0]?.length ?? 0;
  const out = new Float32Array(d);
  weights.forEach((w, k) => {
    const b = basis[k];
    if (b !== undefined && w !== 0) for (let j = 0; j < d; j += 1) out[j] = (out[j] as number) + scale * w * (b[j] as number);
  });
  return out;
}
