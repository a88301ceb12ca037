// Feature-extractor contract: the identity names the plugin, its input size and normalisation and (for model-backed
// extractors) the model file's SHA-256; embed() returns count × dim finite numbers; a patch's features do not
// depend on the batch it came in; patches of another size are resized, not refused; deterministic extractors give
// bit-identical features twice; and the golden case (features an independent implementation computed for the
// "patch-v1" patches) matches.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.js';
import { DEFAULT_FEATURE_EXTRACTOR_CAPABILITIES, type FeatureExtractor, type FeatureExtractorCapabilities, type PatchBatch } from '../../core/extract/extractor.js';
import type { AnyPluginDefinition } from '../../registry/define-plugin.js';
import { compareValues, readGolden, type GoldenFile, type GoldenReport } from './golden.js';
import { goldenPath, missingGolden, parseOptions, type SuiteOptions } from './shared.js';

/**
 * "patch-v1": `count` RGB patches of `side` pixels, v(n, y, x, c) = (37n + 11y + 7x + 53c + 9·((x·y) mod 13) +
 * 60·((⌊x/4⌋ + ⌊y/4⌋) mod 2)) mod 256 — gradients, a checkerboard and a per-patch shift, so colour, texture and
 * convolution features all see something (test/reference/goldens_feature_extractors.py rebuilds it).
 */
export function patchPattern(count: number, side: number): PatchBatch {
  const rgb = new Uint8Array(count * side * side * 3);
  let i = 0;
  for (let n = 0; n < count; n += 1) {
    for (let y = 0; y < side; y += 1) {
      for (let x = 0; x < side; x += 1) {
        for (let c = 0; c < 3; c += 1) {
          rgb[i] = (37 * n + 11 * y + 7 * x + 53 * c + 9 * ((x * y) % 13) + 60 * ((Math.floor(x / 4) + Math.floor(y / 4)) % 2)) % 256;
          i += 1;
        }
      }
    }
  }
  return { count, side, rgb };
}

export interface FeatureExtractorGoldenCase {
  readonly options: Readonly<Record<string, unknown>>;
  readonly patches: { readonly pattern: 'patch-v1'; readonly count: number; readonly side: number };
}

export interface FeatureExtractorGoldenExpected {
  readonly dim: number;
  readonly features: number[][];
}

export type FeatureExtractorGolden = GoldenFile<FeatureExtractorGoldenCase, FeatureExtractorGoldenExpected>;

export interface FeatureExtractorSuiteOptions extends SuiteOptions {
  /** Options per plugin (an onnx extractor needs its `model`); default: the golden case's options, else `{}`. */
  readonly optionsFor?: (name: string) => Readonly<Record<string, unknown>> | undefined;
  /** Relative model paths resolve from here (the repository root for the built-ins). */
  readonly baseDir?: string;
}

/** Builds an extractor from a definition and raw options. */
export async function createFeatureExtractor(definition: AnyPluginDefinition, rawOptions: Readonly<Record<string, unknown>>, baseDir: string): Promise<FeatureExtractor> {
  const create = definition.create as (options: unknown, ctx: unknown) => Promise<FeatureExtractor>;
  return create(parseOptions(definition, rawOptions), { logger: silentLogger, baseDir, key: 'extractor' });
}

/** Runs the golden case; mismatches as data (empty = pass). */
export async function checkFeatureExtractorGolden(definition: AnyPluginDefinition, golden: FeatureExtractorGolden, baseDir: string): Promise<GoldenReport> {
  const extractor = await createFeatureExtractor(definition, golden.case.options, baseDir);
  try {
    const { count, side } = golden.case.patches;
    const features = await extractor.embed(patchPattern(count, side));
    const mismatches: string[] = [];
    if (extractor.identity.dim !== golden.expected.dim) mismatches.push(`dim ${extractor.identity.dim}, expected ${golden.expected.dim}`);
    mismatches.push(...compareValues('features', features, [count, features.length / Math.max(1, count)], golden.expected.features, golden.tolerance));
    return { plugin: definition.name, mismatches };
  } finally {
    await extractor.close();
  }
}

export function featureExtractorContract(definitions: readonly AnyPluginDefinition[], suite: FeatureExtractorSuiteOptions = {}): void {
  describe.each(definitions.map((d) => [d.name, d] as const))('feature-extractor/%s contract', (name, definition) => {
    const baseDir = suite.baseDir ?? process.cwd();
    const golden = goldenPath(suite, name);
    const goldenFile = golden ? readGolden<FeatureExtractorGoldenCase, FeatureExtractorGoldenExpected>(golden, 'feature-extractor') : undefined;
    const options = suite.optionsFor?.(name) ?? goldenFile?.case.options ?? {};
    const capabilities: FeatureExtractorCapabilities = { ...DEFAULT_FEATURE_EXTRACTOR_CAPABILITIES, ...(definition.capabilities as Partial<FeatureExtractorCapabilities>) };
    const make = (extra: Readonly<Record<string, unknown>> = {}): Promise<FeatureExtractor> => createFeatureExtractor(definition, { ...options, ...extra }, baseDir);

    it('exposes an identity: its name, input size, normalisation, width and (with a model) the model\'s SHA-256', async () => {
      const parsed = parseOptions(definition, options) as { inputSize?: number; normalisation?: unknown };
      const extractor = await make();
      try {
        const { identity } = extractor;
        expect(identity.name).toBe(`feature-extractor/${name.slice(name.indexOf(':') + 1)}`);
        expect(identity.inputSize).toBe(parsed.inputSize);
        expect(identity.normalisation).toEqual(parsed.normalisation);
        expect(Number.isInteger(identity.dim) && identity.dim > 0, `dim ${identity.dim} is a positive integer`).toBe(true);
        expect(identity.modelSha256).toMatch(capabilities.modelFile ? /^[0-9a-f]{64}$/ : /^$/);
        expect(Number.isInteger(extractor.batchSize) && extractor.batchSize > 0).toBe(true);
      } finally {
        await extractor.close();
      }
    });

    it('embeds a batch into count × dim finite numbers, the same as one patch at a time, and an empty batch into nothing', async () => {
      const extractor = await make();
      try {
        const side = extractor.identity.inputSize;
        const dim = extractor.identity.dim;
        const batch = patchPattern(3, side);
        const all = await extractor.embed(batch);
        expect(all.length).toBe(3 * dim);
        expect(all.every((v) => Number.isFinite(v)), 'finite features').toBe(true);
        for (let n = 0; n < 3; n += 1) {
          const one = await extractor.embed({ count: 1, side, rgb: batch.rgb.subarray(n * side * side * 3, (n + 1) * side * side * 3) });
          const row = all.subarray(n * dim, (n + 1) * dim);
          const worst = one.reduce((w, v, i) => Math.max(w, Math.abs(v - (row[i] as number))), 0);
          expect(worst, `patch ${n}: alone vs in a batch of 3`).toBeLessThanOrEqual(1e-5);
        }
        // Different patches give different features (a constant extractor passes nothing else).
        const spread = all.subarray(0, dim).reduce((w, v, i) => Math.max(w, Math.abs(v - (all[dim + i] as number))), 0);
        expect(spread, 'patches 0 and 1 differ').toBeGreaterThan(1e-6);
        expect((await extractor.embed({ count: 0, side, rgb: new Uint8Array(0) })).length).toBe(0);
      } finally {
        await extractor.close();
      }
    });

    it('resizes patches of another size to its input size', async () => {
      const extractor = await make();
      try {
        const side = extractor.identity.inputSize;
        const bigger = await extractor.embed(patchPattern(2, side * 2));
        expect(bigger.length).toBe(2 * extractor.identity.dim);
        expect(bigger.every((v) => Number.isFinite(v))).toBe(true);
      } finally {
        await extractor.close();
      }
    });

    it.runIf(capabilities.deterministic)('gives bit-identical features on a second run (declared deterministic)', async () => {
      const [a, b] = [await make(), await make()];
      try {
        const batch = patchPattern(2, a.identity.inputSize);
        expect(Array.from(await b.embed(batch))).toEqual(Array.from(await a.embed(batch)));
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('matches its golden case', async () => {
      if (!goldenFile) {
        if (suite.requireGolden) throw new Error(missingGolden(suite, 'feature-extractor', name));
        return;
      }
      const report = await checkFeatureExtractorGolden(definition, goldenFile, baseDir);
      expect(report.mismatches, `golden ${path.basename(golden ?? '')}`).toEqual([]);
    });
  });
}
