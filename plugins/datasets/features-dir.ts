/**
 * Per-slide feature files of any supported format (dataset/features-dir)
 * Paper: the per-bag file layouts used across MIL tooling: CLAM/TRIDENT h5, CLAM pt_files (torch.save),
 *   torchmil-style .npy folders (features/, coords/ side folders), and .safetensors (docs/methods/datasets.md#feature-files).
 * Implements: slide table + <featuresDir>/<slide_id>.{h5|safetensors|npy|pt}; h5/safetensors (and .pt dicts) hold
 *   tensors `features`, `coords`, `thumbs`; npy and bare-tensor .pt features take coords and thumbs from side folders
 *   (.pt is read by a restricted unpickler that refuses any code; docs/slides.md)
 * Symbols: N instances · D feature width (from the files, checked against the model's inputDim)
 * Choices: `format: auto` picks per slide the first extension that exists (h5, safetensors, npy, pt), so a
 *   folder may mix formats; lazy loading into a byte-bounded LRU cache (data.cacheBytes)
 * Checked against: round-trips through every format in test/plugins/datasets/feature-folders.test.ts
 */
import { z } from 'zod';
import { definePlugin, featureFolderOptions, FeatureFolderBaseOptions, openFeatureFolder } from 'milkit';

export const FeaturesDirOptions = FeatureFolderBaseOptions.extend({
  format: z.enum(['auto', 'h5', 'safetensors', 'npy', 'pt']).default('auto').describe('feature file format; auto = by the extension that exists for each slide'),
  coordsDir: z.string().min(1).optional().describe('side folder of <slide_id>.npy coordinates (npy and bare-tensor .pt features)'),
});
export type FeaturesDirOptions = z.output<typeof FeaturesDirOptions>;

export default definePlugin({
  kind: 'dataset',
  name: 'features-dir',
  summary: 'per-slide .h5 / .safetensors / .npy / .pt feature files (+ side folders) and a slide table',
  options: FeaturesDirOptions,
  capabilities: { instanceLabels: false, thumbs: true, coords: true },
  create: (options, ctx) => openFeatureFolder(featureFolderOptions(options), ctx),
});
