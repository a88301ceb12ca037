/**
 * Per-slide feature files of any supported format (dataset/features-dir)
 * Paper: the per-bag file layouts used across MIL tooling: CLAM/TRIDENT h5, torchmil-style .npy folders
 *   (features/, coords/ side folders), and .safetensors (docs/methods/datasets.md#feature-files).
 * Implements: slide table + <featuresDir>/<slide_id>.{h5|safetensors|npy}; h5/safetensors hold tensors
 *   `features`, `coords`, `thumbs`; npy features take coords and thumbs from side folders
 * Symbols: N instances · D feature width (from the files, checked against the model's inputDim)
 * Choices: `format: auto` picks per slide the first extension that exists (h5, safetensors, npy), so a
 *   folder may mix formats; lazy loading into a byte-bounded LRU cache (data.cacheBytes)
 * Checked against: round-trips through every format in test/plugins/datasets/feature-folders.test.ts
 */
import { z } from 'zod';
import { definePlugin, featureFolderOptions, FeatureFolderBaseOptions, openFeatureFolder } from '../../src/registry/index.js';

export const FeaturesDirOptions = FeatureFolderBaseOptions.extend({
  format: z.enum(['auto', 'h5', 'safetensors', 'npy']).default('auto').describe('feature file format; auto = by the extension that exists for each slide'),
  coordsDir: z.string().min(1).optional().describe('side folder of <slide_id>.npy coordinates (npy features)'),
});
export type FeaturesDirOptions = z.output<typeof FeaturesDirOptions>;

export default definePlugin({
  kind: 'dataset',
  name: 'features-dir',
  summary: 'per-slide .h5 / .safetensors / .npy feature files (+ side folders) and a slide table',
  options: FeaturesDirOptions,
  capabilities: { instanceLabels: false, thumbs: true, coords: true },
  create: (options, ctx) => openFeatureFolder(featureFolderOptions(options), ctx),
});
