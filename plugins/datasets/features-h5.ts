/**
 * CLAM/TRIDENT h5 feature bags (dataset/features-h5)
 * Paper: the feature-file layout of CLAM (Lu et al., Nat. Biomed. Eng. 2021) and TRIDENT (Mahmood lab):
 *   one h5 per slide with `features` [N, D] float32 and `coords` [N, 2] (docs/methods/datasets.md#feature-files).
 * Implements: slide table (slide_id, case_id, label) + <featuresDir>/<slide_id>.h5, read with h5wasm; optional
 *   HDMIL thumbnails `thumbs` [N, 16, 16, 3] uint8 in the same row order (RGBA: alpha dropped)
 * Symbols: N instances · D feature width (taken from the files, checked against the model's inputDim)
 * Choices: lazy loading into a byte-bounded LRU cache (data.cacheBytes); D is the most common width of the
 *   first readable files; float16/float64/integer datasets are converted to float32
 * Checked against: h5py-written fixtures (CLAM's (1, 1024) chunking) in test/reference/h5_features.py,
 *   test/plugins/datasets/feature-folders.test.ts
 */
import { definePlugin, featureFolderOptions, FeatureFolderBaseOptions, openFeatureFolder } from '../../src/registry/index.js';

export const FeaturesH5Options = FeatureFolderBaseOptions;
export type FeaturesH5Options = FeatureFolderBaseOptions;

export default definePlugin({
  kind: 'dataset',
  name: 'features-h5',
  summary: 'CLAM/TRIDENT per-slide h5 files (features, coords, optional thumbs) + a slide table',
  paper: { cite: 'Lu et al., Data-efficient and weakly supervised computational pathology on whole-slide images, Nat. Biomed. Eng. 2021', doi: '10.1038/s41551-020-00682-w' },
  options: FeaturesH5Options,
  capabilities: { instanceLabels: false, thumbs: true, coords: true },
  create: (options, ctx) => openFeatureFolder(featureFolderOptions({ ...options, format: 'h5' }), ctx),
});
