// Dataset contract: a consistent slide table (unique ids, labels within the class names, label names matching,
// a valid hierarchy), bags consistent with it (D, sizes of features/coords/thumbs/instance labels, finite values,
// only declared extras), repeatable loads, the same data for the same seed, an unknown slide rejected, and the
// golden fingerprint.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';
import { DEFAULT_DATASET_CAPABILITIES, type BagData, type BagSource, type DatasetCapabilities, type DatasetContext } from '../../registry/contracts/data.js';
import { compareValues, readGolden, type GoldenFile, type GoldenReport } from './golden.js';
import { goldenPath, missingGolden, type SuiteOptions } from './shared.js';

/** Bag statistics that pin a slide's data without storing it. */
export interface BagFingerprint {
  readonly slideId: string;
  readonly n: number;
  readonly d: number;
  /** Σ features and Σ |features| (float64 sums in row-major order). */
  readonly featureSum: number;
  readonly featureAbsSum: number;
  /** The first min(4, D) features of row 0 and the last feature of the last row. */
  readonly firstRow: number[];
  readonly lastValue: number;
  readonly coordsSum?: number;
  readonly thumbsSum?: number;
  readonly instanceLabelSum?: number;
}

export interface DatasetFingerprint {
  readonly featureDim: number;
  readonly classNames: readonly string[];
  readonly numSlides: number;
  /** Slides per label, indexed by label. */
  readonly labelCounts: number[];
  /** [slideId, caseId, label, labelName] of the first 8 slides in table order. */
  readonly slides: Array<[string, string, number, string]>;
  readonly hierarchy?: { readonly coarseNames: readonly string[]; readonly fineToCoarse: readonly number[] };
  /** The first 3 slides' bags. */
  readonly bags: BagFingerprint[];
}

export interface DatasetGoldenCase {
  /** Plugin options; the strings `<tmp>` and `<base>` are replaced by the case's temp folder and the base folder. */
  readonly options: Readonly<Record<string, unknown>>;
  readonly seed: number;
  readonly labelMap?: Readonly<Record<string, number>>;
  /** Small text files (slide tables) written into `<tmp>` before the source opens. */
  readonly files?: Readonly<Record<string, string>>;
}

export interface DatasetGoldenExpected {
  readonly fingerprint: DatasetFingerprint;
}

export type DatasetGolden = GoldenFile<DatasetGoldenCase, DatasetGoldenExpected>;

function sum(values: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < values.length; i += 1) total += values[i] as number;
  return total;
}

export function bagFingerprint(bag: BagData): BagFingerprint {
  let absSum = 0;
  for (const v of bag.features) absSum += Math.abs(v);
  return {
    slideId: bag.slideId,
    n: bag.n,
    d: bag.d,
    featureSum: sum(bag.features),
    featureAbsSum: absSum,
    firstRow: Array.from(bag.features.subarray(0, Math.min(4, bag.d))),
    lastValue: bag.features[bag.features.length - 1] as number,
    ...(bag.coords ? { coordsSum: sum(bag.coords) } : {}),
    ...(bag.thumbs ? { thumbsSum: sum(bag.thumbs) } : {}),
    ...(bag.instanceLabels ? { instanceLabelSum: sum(bag.instanceLabels) } : {}),
  };
}

export async function datasetFingerprint(source: BagSource): Promise<DatasetFingerprint> {
  const labelCounts = source.classNames.map((_, label) => source.slides.filter((s) => s.label === label).length);
  const bags: BagFingerprint[] = [];
  for (const slide of source.slides.slice(0, 3)) bags.push(bagFingerprint(await source.load(slide.slideId)));
  return {
    featureDim: source.featureDim,
    classNames: [...source.classNames],
    numSlides: source.slides.length,
    labelCounts,
    slides: source.slides.slice(0, 8).map((s) => [s.slideId, s.caseId, s.label, s.labelName]),
    ...(source.hierarchy ? { hierarchy: { coarseNames: [...source.hierarchy.coarseNames], fineToCoarse: [...source.hierarchy.fineToCoarse] } } : {}),
    bags,
  };
}

/** Compares two fingerprints: structure exactly, sums within the tolerance. Returns the differences. */
export function compareFingerprints(actual: DatasetFingerprint, expected: DatasetFingerprint, tolerance: GoldenFile['tolerance'] = { atol: 1e-6, rtol: 1e-6 }): string[] {
  const out: string[] = [];
  const exact = (what: string, a: unknown, e: unknown): void => {
    if (JSON.stringify(a) !== JSON.stringify(e)) out.push(`${what}: ${JSON.stringify(a)}, expected ${JSON.stringify(e)}`);
  };
  exact('featureDim', actual.featureDim, expected.featureDim);
  exact('classNames', actual.classNames, expected.classNames);
  exact('numSlides', actual.numSlides, expected.numSlides);
  exact('labelCounts', actual.labelCounts, expected.labelCounts);
  exact('slides', actual.slides, expected.slides);
  exact('hierarchy', actual.hierarchy, expected.hierarchy);
  exact('bags (slide ids)', actual.bags.map((b) => b.slideId), expected.bags.map((b) => b.slideId));
  expected.bags.forEach((e, i) => {
    const a = actual.bags[i];
    if (!a) return;
    exact(`bag ${e.slideId} [n, d]`, [a.n, a.d], [e.n, e.d]);
    const numeric: Array<keyof BagFingerprint> = ['featureSum', 'featureAbsSum', 'lastValue', 'coordsSum', 'thumbsSum', 'instanceLabelSum'];
    for (const key of numeric) {
      if (e[key] === undefined || a[key] === undefined) exact(`bag ${e.slideId} ${key} present`, a[key] !== undefined, e[key] !== undefined);
      else out.push(...compareValues(`bag ${e.slideId} ${key}`, [a[key] as number], [], e[key], tolerance));
    }
    out.push(...compareValues(`bag ${e.slideId} firstRow`, a.firstRow, [a.firstRow.length], e.firstRow, tolerance));
  });
  return out;
}

/** Where a case's sources live: `<base>` (e.g. the repository root) and a fresh `<tmp>` folder per opening. */
export interface DatasetPlaces {
  readonly baseDir: string;
}

/** Opens the source a golden case (or any such case) describes, writing its files into a temp folder. */
export async function openDatasetCase(definition: AnyPluginDefinition, c: DatasetGoldenCase, places: DatasetPlaces): Promise<{ source: BagSource; cleanup: () => Promise<void> }> {
  const tmp = mkdtempSync(join(tmpdir(), 'milkit-dataset-contract-'));
  for (const [name, text] of Object.entries(c.files ?? {})) writeFileSync(join(tmp, name), text);
  const substitute = (value: unknown): unknown =>
    typeof value === 'string' ? value.replaceAll('<tmp>', tmp).replaceAll('<base>', places.baseDir) : Array.isArray(value) ? value.map(substitute) : value;
  const options = definition.options.parse(Object.fromEntries(Object.entries(c.options).map(([k, v]) => [k, substitute(v)])));
  const ctx: DatasetContext = { seed: c.seed, logger: silentLogger, baseDir: places.baseDir, ...(c.labelMap ? { labelMap: c.labelMap } : {}) };
  const source = await (definition.create as (options: unknown, ctx: DatasetContext) => Promise<BagSource>)(options, ctx);
  return {
    source,
    cleanup: async () => {
      await source.close?.();
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

export async function checkDatasetGolden(definition: AnyPluginDefinition, golden: DatasetGolden, places: DatasetPlaces): Promise<GoldenReport> {
  const { source, cleanup } = await openDatasetCase(definition, golden.case, places);
  try {
    return { plugin: `dataset/${definition.name}`, mismatches: compareFingerprints(await datasetFingerprint(source), golden.expected.fingerprint, golden.tolerance) };
  } finally {
    await cleanup();
  }
}

export interface DatasetSuiteOptions extends SuiteOptions, DatasetPlaces {
  /**
   * The case the generic checks open per plugin (small sizes!). Defaults to the golden case, else the plugin's
   * defaults with seed 0 (when they parse).
   */
  readonly caseFor?: (name: string) => DatasetGoldenCase | undefined;
}

function expectBagConsistent(bag: BagData, slideId: string, featureDim: number, caps: DatasetCapabilities): void {
  expect(bag.slideId).toBe(slideId);
  expect(bag.d, `${slideId}: D = featureDim`).toBe(featureDim);
  expect(bag.n, `${slideId}: at least one instance`).toBeGreaterThan(0);
  expect(bag.features.length, `${slideId}: features hold N·D values`).toBe(bag.n * bag.d);
  expect(bag.features.every(Number.isFinite), `${slideId}: finite features`).toBe(true);
  if (bag.coords) {
    expect(caps.coords, `${slideId} has coords, so capability coords is declared`).toBe(true);
    expect(bag.coords.length).toBe(bag.n * 2);
  }
  if (bag.thumbs) {
    expect(caps.thumbs, `${slideId} has thumbs, so capability thumbs is declared`).toBe(true);
    expect(bag.thumbs.length).toBe(bag.n * 16 * 16 * 3);
  }
  if (bag.instanceLabels) {
    expect(caps.instanceLabels, `${slideId} has instance labels, so capability instanceLabels is declared`).toBe(true);
    expect(bag.instanceLabels.length).toBe(bag.n);
    expect(bag.instanceLabels.every((v) => v === 0 || v === 1), 'instance labels are 0/1').toBe(true);
  }
}

export function datasetContract(definitions: readonly AnyPluginDefinition[], suite: DatasetSuiteOptions): void {
  describe.each(definitions.map((d) => [d.name, d] as const))('dataset/%s contract', (name, definition) => {
    const caps: DatasetCapabilities = { ...DEFAULT_DATASET_CAPABILITIES, ...(definition.capabilities as Partial<DatasetCapabilities>) };
    const goldenFile = goldenPath(suite, name);
    const golden = goldenFile ? readGolden<DatasetGoldenCase, DatasetGoldenExpected>(goldenFile, 'dataset') : undefined;
    const defaultsParse = definition.options.safeParse({}).success;
    const sampleCase = suite.caseFor?.(name) ?? golden?.case ?? (defaultsParse ? { options: {}, seed: 0 } : undefined);
    const opened: Array<() => Promise<void>> = [];
    const open = async (c: DatasetGoldenCase): Promise<BagSource> => {
      const { source, cleanup } = await openDatasetCase(definition, c, suite);
      opened.push(cleanup);
      return source;
    };
    afterAll(async () => {
      for (const cleanup of opened) await cleanup();
    });

    it('parses its defaults, or names every option it requires', () => {
      const parsed = definition.options.safeParse({});
      if (parsed.success) {
        expect(definition.options.parse(JSON.parse(JSON.stringify(parsed.data)))).toEqual(parsed.data);
        return;
      }
      for (const issue of parsed.error.issues) expect(issue.path.length, `only missing required options fail: ${issue.message}`).toBe(1);
    });

    it.skipIf(!sampleCase)('has a consistent slide table', async () => {
      const source = await open(sampleCase as DatasetGoldenCase);
      expect(source.slides.length).toBeGreaterThan(0);
      expect(new Set(source.slides.map((s) => s.slideId)).size, 'slide ids are unique').toBe(source.slides.length);
      expect(source.classNames.length).toBeGreaterThanOrEqual(1);
      for (const s of source.slides) {
        expect(Number.isInteger(s.label) && s.label >= 0 && s.label < source.classNames.length, `${s.slideId}: label ${s.label} indexes classNames`).toBe(true);
        expect(s.labelName, `${s.slideId}: labelName is classNames[label]`).toBe(source.classNames[s.label]);
        expect(s.caseId.length, `${s.slideId}: has a case id`).toBeGreaterThan(0);
      }
      if (source.hierarchy) {
        expect(source.hierarchy.fineToCoarse.length, 'one coarse class per label').toBe(source.classNames.length);
        for (const c of source.hierarchy.fineToCoarse) expect(c >= 0 && c < source.hierarchy.coarseNames.length).toBe(true);
      }
      expect(source.featureDim).toBeGreaterThan(0);
    });

    it.skipIf(!sampleCase)('loads bags consistent with the table and its declared capabilities, the same twice', async () => {
      const source = await open(sampleCase as DatasetGoldenCase);
      for (const slide of source.slides.slice(0, 3)) {
        const bag = await source.load(slide.slideId);
        expectBagConsistent(bag, slide.slideId, source.featureDim, caps);
        expect(bagFingerprint(await source.load(slide.slideId)), 'a second load gives the same bag').toEqual(bagFingerprint(bag));
      }
    });

    it.skipIf(!sampleCase)('gives the same data for the same seed', async () => {
      const c = sampleCase as DatasetGoldenCase;
      const [a, b] = [await open(c), await open(c)];
      expect(await datasetFingerprint(b)).toEqual(await datasetFingerprint(a));
    });

    it.skipIf(!sampleCase)('rejects an unknown slide id with an error naming it', async () => {
      const source = await open(sampleCase as DatasetGoldenCase);
      await expect(source.load('no-such-slide-contract')).rejects.toThrow(/no-such-slide-contract/);
    });

    it.skipIf(!golden && !suite.requireGolden)('matches its golden fingerprint', async () => {
      if (!golden || !goldenFile) throw new Error(missingGolden(suite, 'dataset', name));
      expect((await checkDatasetGolden(definition, golden, suite)).mismatches, goldenFile).toEqual([]);
    });
  });
}
