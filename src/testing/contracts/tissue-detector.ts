// Tissue-detector contract: on slides drawn from a formula (a "scene": ellipses of stain colour on a background,
// with brightness noise), the mask has the analysis level's shape and two values, detection is deterministic, an
// all-background slide has no tissue, a slide covered in tissue is found, the detected tissue lies where the
// scene painted it, the GeoJSON is a FeatureCollection of closed polygons inside the slide, and the golden case
// (mask and pieces computed with OpenCV) matches.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import { checkRegion, levelsFromSizes, whiteImage, type RegionRequest, type RgbImage, type SlideLevel, type SlideReader, type SlideReaderContext } from '../../core/slides/reader.js';
import type { TissueDetector, TissueResult } from '../../core/slides/tissue.js';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';
import { compareValues, readGolden, type GoldenFile, type GoldenReport } from './golden.js';
import { expectDefaultsParse, goldenPath, missingGolden, parseOptions, type SuiteOptions } from './shared.js';

type Rgb = readonly [number, number, number];

export interface SceneEllipse {
  /** Centre and radii in level-0 pixels (integers). */
  readonly cx: number;
  readonly cy: number;
  readonly rx: number;
  readonly ry: number;
  readonly rgb: Rgb;
}

/**
 * A slide drawn from a formula ("scene-v1"), so both milkit and the Python reference rebuild it exactly: the
 * background colour, then each ellipse painted over the earlier ones where
 * (x − cx)²·ry² + (y − cy)²·rx² ≤ rx²·ry² (integer arithmetic), then every channel plus the same noise
 * n(x, y) = ((h >>> 24) mod (2·noise + 1)) − noise with h = ((7919·x + 104729·y) mod 2³²) · 2654435761 mod 2³²,
 * clamped to 0..255. Same noise on every channel: brightness texture that leaves grey grey.
 */
export interface TissueScene {
  readonly width: number;
  readonly height: number;
  readonly background: Rgb;
  readonly noise: number;
  readonly ellipses: readonly SceneEllipse[];
}

/** The ellipse painted last at (x, y), or -1 for the background. */
function paintedAt(scene: TissueScene, x: number, y: number): number {
  for (let i = scene.ellipses.length - 1; i >= 0; i -= 1) {
    const { cx, cy, rx, ry } = scene.ellipses[i] as SceneEllipse;
    if ((x - cx) ** 2 * ry * ry + (y - cy) ** 2 * rx * rx <= rx * rx * ry * ry) return i;
  }
  return -1;
}

function sceneNoise(scene: TissueScene, x: number, y: number): number {
  if (scene.noise === 0) return 0;
  const k = (7919 * x + 104729 * y) % 4294967296;
  const h = Math.imul(k | 0, 2654435761 | 0) >>> 0;
  return ((h >>> 24) % (2 * scene.noise + 1)) - scene.noise;
}

/** The scene's level-0 pixel at (x, y) (inside the scene). */
export function scenePixel(scene: TissueScene, x: number, y: number): [number, number, number] {
  const painted = paintedAt(scene, x, y);
  const base = painted < 0 ? scene.background : (scene.ellipses[painted] as SceneEllipse).rgb;
  const n = sceneNoise(scene, x, y);
  return [Math.min(255, Math.max(0, base[0] + n)), Math.min(255, Math.max(0, base[1] + n)), Math.min(255, Math.max(0, base[2] + n))];
}

/**
 * A slide reader over a scene: level k samples the scene at level-0 (i·d_k, j·d_k). Pixels are computed per
 * region, so a 16384² scene costs nothing until a level is read. Downsamples must divide the scene's size.
 */
export function sceneSlideReader(scene: TissueScene, downsamples: readonly number[] = [1]): SlideReader {
  for (const d of downsamples) {
    if (!Number.isInteger(d) || d < 1 || scene.width % d !== 0 || scene.height % d !== 0) throw new Error(`scene downsample ${d} must be a positive integer dividing ${scene.width}×${scene.height}`);
  }
  const file = `scene:${scene.width}x${scene.height}`;
  const levels: SlideLevel[] = levelsFromSizes(downsamples.map((d) => ({ width: scene.width / d, height: scene.height / d })));
  let closed = false;
  return {
    file,
    levels,
    properties: { vendor: 'milkit-scene', objectivePower: undefined, mppX: undefined, mppY: undefined, all: { 'openslide.vendor': 'milkit-scene', 'openslide.level-count': String(levels.length) } },
    associatedImages: [],
    readRegion: (request: RegionRequest): Promise<RgbImage> => {
      if (closed) return Promise.reject(new Error(`${file}: the reader was closed`));
      checkRegion(file, levels, request);
      const d = downsamples[request.level] as number;
      const out = whiteImage(request.width, request.height);
      const left = Math.round(request.x / d);
      const top = Math.round(request.y / d);
      const level = levels[request.level] as SlideLevel;
      for (let j = 0; j < request.height; j += 1) {
        const ly = top + j;
        if (ly < 0 || ly >= level.height) continue;
        for (let i = 0; i < request.width; i += 1) {
          const lx = left + i;
          if (lx < 0 || lx >= level.width) continue;
          out.data.set(scenePixel(scene, lx * d, ly * d), (j * request.width + i) * 3);
        }
      }
      return Promise.resolve(out);
    },
    readAssociatedImage: (name: string) => Promise.reject(new Error(`${file}: no associated image "${name}"`)),
    close: () => {
      closed = true;
      return Promise.resolve();
    },
  };
}

export interface TissueDetectorGoldenRun {
  readonly options: Readonly<Record<string, unknown>>;
}

export interface TissueDetectorGoldenCase {
  readonly scene: TissueScene;
  /** Level downsamples of the scene reader (default [1]). */
  readonly downsamples?: readonly number[];
  readonly runs: readonly TissueDetectorGoldenRun[];
}

export interface TissueRunExpected {
  readonly level: number;
  readonly width: number;
  readonly height: number;
  /** Saturation threshold used (the Otsu value when asked). */
  readonly threshold: number;
  /** SHA-256 of the mask bytes (0 background, 255 tissue), row-major. */
  readonly maskSha256: string;
  /** Tissue pixels per mask row: locates a difference the digest only detects. */
  readonly rowCounts: readonly number[];
  /** One entry per kept tissue piece, in the scan order of the piece's first pixel. */
  readonly pieces: ReadonlyArray<{ readonly areaPixels: number; readonly holes: number }>;
}

export interface TissueDetectorGoldenExpected {
  readonly runs: readonly TissueRunExpected[];
}

export type TissueDetectorGolden = GoldenFile<TissueDetectorGoldenCase, TissueDetectorGoldenExpected>;

export function createTissueDetector(definition: AnyPluginDefinition, rawOptions: Readonly<Record<string, unknown>> = {}): TissueDetector {
  const context: SlideReaderContext = { logger: silentLogger };
  return (definition.create as (options: unknown, ctx: SlideReaderContext) => TissueDetector)(parseOptions(definition, rawOptions), context);
}

function rowCounts(result: TissueResult): number[] {
  const counts = new Array<number>(result.height).fill(0);
  for (let p = 0; p < result.mask.length; p += 1) if (result.mask[p] !== 0) counts[(p / result.width) | 0] = (counts[(p / result.width) | 0] as number) + 1;
  return counts;
}

export async function checkTissueDetectorGolden(definition: AnyPluginDefinition, golden: TissueDetectorGolden): Promise<GoldenReport> {
  const mismatches: string[] = [];
  for (const [i, run] of golden.case.runs.entries()) {
    const want = golden.expected.runs[i];
    const what = `run ${i} (${JSON.stringify(run.options)})`;
    if (!want) {
      mismatches.push(`${what}: no expected result in the golden case`);
      continue;
    }
    const reader = sceneSlideReader(golden.case.scene, golden.case.downsamples ?? [1]);
    const result = await createTissueDetector(definition, run.options).detect(reader);
    await reader.close();
    if (result.level !== want.level || result.width !== want.width || result.height !== want.height) {
      mismatches.push(`${what}: level ${result.level} (${result.width}×${result.height}), expected level ${want.level} (${want.width}×${want.height})`);
      continue;
    }
    if (result.threshold !== want.threshold) mismatches.push(`${what}: threshold ${result.threshold}, expected ${want.threshold}`);
    const digest = createHash('sha256').update(result.mask).digest('hex');
    if (digest !== want.maskSha256) {
      const rows = compareValues(`${what} tissue pixels per row`, rowCounts(result), [result.height], want.rowCounts, { atol: 0, rtol: 0 });
      mismatches.push(rows[0] ?? `${what}: mask differs (sha256 ${digest.slice(0, 12)}…, expected ${want.maskSha256.slice(0, 12)}…) with equal row counts`);
    }
    const pieces = result.geojson.features.map((f) => ({ areaPixels: f.properties.areaPixels, holes: f.properties.holes }));
    if (JSON.stringify(pieces) !== JSON.stringify(want.pieces)) mismatches.push(`${what}: pieces ${JSON.stringify(pieces)}, expected ${JSON.stringify(want.pieces)}`);
  }
  return { plugin: `tissue-detector/${definition.name}`, mismatches };
}

/** Problems with a tissue GeoJSON: a FeatureCollection of Polygon features, rings closed, inside the slide. */
export function geojsonProblems(geojson: unknown, level0: { width: number; height: number }): string[] {
  const problems: string[] = [];
  const collection = geojson as { type?: unknown; features?: unknown };
  if (collection?.type !== 'FeatureCollection' || !Array.isArray(collection.features)) return ['not a FeatureCollection with a features array'];
  (collection.features as unknown[]).forEach((raw, f) => {
    const feature = raw as { type?: unknown; geometry?: { type?: unknown; coordinates?: unknown } };
    if (feature?.type !== 'Feature') problems.push(`feature ${f}: type ${JSON.stringify(feature?.type)}, expected "Feature"`);
    if (feature?.geometry?.type !== 'Polygon') return void problems.push(`feature ${f}: geometry type ${JSON.stringify(feature?.geometry?.type)}, expected "Polygon"`);
    const rings = feature.geometry.coordinates;
    if (!Array.isArray(rings) || rings.length === 0) return void problems.push(`feature ${f}: no rings`);
    rings.forEach((ring: unknown, r) => {
      if (!Array.isArray(ring) || ring.length < 4) return void problems.push(`feature ${f} ring ${r}: fewer than 4 positions`);
      for (const position of ring as unknown[]) {
        const [x, y] = (Array.isArray(position) ? position : []) as unknown[];
        if (!Array.isArray(position) || position.length !== 2 || typeof x !== 'number' || typeof y !== 'number' || !Number.isFinite(x) || !Number.isFinite(y)) {
          return void problems.push(`feature ${f} ring ${r}: position ${JSON.stringify(position)} is not [x, y]`);
        }
        if (x < 0 || y < 0 || x > level0.width || y > level0.height) return void problems.push(`feature ${f} ring ${r}: position [${x}, ${y}] outside the ${level0.width}×${level0.height} slide`);
      }
      const first = ring[0] as number[];
      const last = ring[ring.length - 1] as number[];
      if (first[0] !== last[0] || first[1] !== last[1]) problems.push(`feature ${f} ring ${r}: not closed (first ${JSON.stringify(first)}, last ${JSON.stringify(last)})`);
      let twiceArea = 0;
      for (let i = 0; i + 1 < ring.length; i += 1) twiceArea += ((ring[i] as number[])[0] as number) * ((ring[i + 1] as number[])[1] as number) - ((ring[i + 1] as number[])[0] as number) * ((ring[i] as number[])[1] as number);
      if (twiceArea === 0) problems.push(`feature ${f} ring ${r}: encloses no area`);
    });
  });
  return problems;
}

export interface TissueDetectorSuiteOptions extends SuiteOptions {
  readonly optionsFor?: (name: string) => Readonly<Record<string, unknown>>;
}

const PINK: Rgb = [212, 132, 186];
const PURPLE: Rgb = [150, 92, 172];
const GLASS: Rgb = [238, 236, 240];
/** Level downsamples of the contract's slides: a 16384 × 12288 scan with levels down to 64× (256 × 192). */
const CONTRACT_DOWNSAMPLES = [1, 4, 16, 64];
const SIDE = { width: 16384, height: 12288 };

/** Two large pieces (one with a large hole) and a dust speck, on glass. */
export const CONTRACT_SCENE: TissueScene = {
  ...SIDE,
  background: GLASS,
  noise: 4,
  ellipses: [
    { cx: 5200, cy: 6000, rx: 4600, ry: 3800, rgb: PINK },
    { cx: 5000, cy: 5600, rx: 1400, ry: 1100, rgb: GLASS },
    { cx: 12400, cy: 6400, rx: 3300, ry: 3000, rgb: PURPLE },
    { cx: 12000, cy: 1000, rx: 200, ry: 200, rgb: PURPLE },
  ],
};

export function tissueDetectorContract(definitions: readonly AnyPluginDefinition[], suite: TissueDetectorSuiteOptions = {}): void {
  describe.each(definitions.map((d) => [d.name, d] as const))('tissue-detector/%s contract', (name, definition) => {
    const options = suite.optionsFor?.(name) ?? {};
    const detect = async (scene: TissueScene): Promise<TissueResult> => {
      const reader = sceneSlideReader(scene, CONTRACT_DOWNSAMPLES);
      try {
        return await createTissueDetector(definition, options).detect(reader);
      } finally {
        await reader.close();
      }
    };

    it('parses its defaults, and the parsed options survive a JSON round trip', () => {
      expectDefaultsParse(definition);
    });

    it('returns a two-valued mask with the shape of the level it analysed', async () => {
      const result = await detect(CONTRACT_SCENE);
      const level = sceneSlideReader(CONTRACT_SCENE, CONTRACT_DOWNSAMPLES).levels[result.level];
      expect(level, `level ${result.level} exists`).toBeDefined();
      expect([result.width, result.height, result.downsample, result.mask.length]).toEqual([level?.width, level?.height, level?.downsample, (level?.width ?? 0) * (level?.height ?? 0)]);
      const values = new Set(result.mask);
      expect([...values].every((v) => v === 0 || v === 255), `mask values ${[...values].join(', ')} are 0 (background) or 255 (tissue)`).toBe(true);
    });

    it('is deterministic', async () => {
      const [a, b] = [await detect(CONTRACT_SCENE), await detect(CONTRACT_SCENE)];
      expect(createHash('sha256').update(b.mask).digest('hex')).toBe(createHash('sha256').update(a.mask).digest('hex'));
      expect(JSON.stringify(b.geojson)).toBe(JSON.stringify(a.geojson));
    });

    it('finds no tissue on an empty slide', async () => {
      const result = await detect({ ...SIDE, background: GLASS, noise: 6, ellipses: [] });
      expect(result.mask.some((v) => v !== 0), 'tissue pixels on bare glass').toBe(false);
      expect(result.geojson.features).toEqual([]);
    });

    it('finds tissue on a slide covered in tissue', async () => {
      const result = await detect({ ...SIDE, background: PINK, noise: 6, ellipses: [] });
      const tissue = result.mask.reduce((n, v) => n + (v === 0 ? 0 : 1), 0);
      expect(tissue / result.mask.length, 'fraction of the slide found as tissue').toBeGreaterThan(0.9);
      expect(result.geojson.features.length).toBeGreaterThan(0);
    });

    it('puts the tissue where the slide has it and describes it as closed polygons inside the slide', async () => {
      const result = await detect(CONTRACT_SCENE);
      let detected = 0;
      let detectedOnTissue = 0;
      let painted = 0;
      let paintedFound = 0;
      for (let y = 0; y < result.height; y += 1) {
        for (let x = 0; x < result.width; x += 1) {
          const colour = paintedAt(CONTRACT_SCENE, Math.round(x * result.downsample), Math.round(y * result.downsample));
          const onTissue = colour >= 0 && (CONTRACT_SCENE.ellipses[colour] as SceneEllipse).rgb !== GLASS;
          const found = result.mask[y * result.width + x] !== 0;
          detected += found ? 1 : 0;
          detectedOnTissue += found && onTissue ? 1 : 0;
          painted += onTissue ? 1 : 0;
          paintedFound += found && onTissue ? 1 : 0;
        }
      }
      expect(detectedOnTissue / Math.max(1, detected), 'share of the detected pixels on painted tissue').toBeGreaterThan(0.9);
      expect(paintedFound / painted, 'share of the painted tissue detected').toBeGreaterThan(0.5);
      expect(result.geojson.features.length).toBeGreaterThan(0);
      expect(geojsonProblems(result.geojson, SIDE)).toEqual([]);
    });

    const golden = goldenPath(suite, name);
    it.skipIf(!golden && !suite.requireGolden)('matches its golden case', async () => {
      if (!golden) throw new Error(missingGolden(suite, 'tissue-detector', name));
      const report = await checkTissueDetectorGolden(definition, readGolden<TissueDetectorGoldenCase, TissueDetectorGoldenExpected>(golden, 'tissue-detector'));
      expect(report.mismatches, golden).toEqual([]);
    });
  });
}
