// What dataset plugins may use from core (re-exported by src/registry/index.ts, the plugins' only door into
// src/): label maps, the byte-bounded cache, synthetic building blocks and feature-file readers.
export { ByteLruCache, bagBytes } from './cache.js';
export { resolveLabelMap, applyDeclaredLabels, deriveHierarchy, type LabelMap } from './labels.js';
export {
  SYNTHETIC_PATCH_SIZE,
  THUMB_SIDE,
  tissueGrid,
  clusteredRegion,
  orthonormalRows,
  subtractProjection,
  addToRow,
  renderThumbs,
  hashUniform,
  drawCount,
  logUniform,
  balancedLabels,
  GeneratedBagSource,
  lesionStructure,
  generateLesionBag,
  combineBasis,
  syntheticOptionFields,
  syntheticOptions,
  officialTestCases,
  minMaxIssues,
  bagBudgetIssues,
  SYNTHETIC_LIMITS,
  type SyntheticOptionDefaults,
  type SyntheticOptionRules,
  type LesionStructure,
  type LesionBagSpec,
  type TissueGrid,
} from './synthetic.js';
export { FeatureFolderBaseOptions, featureFolderOptions, openFeatureFolder, FeatureFolderSource, FEATURE_EXTENSIONS, type FeatureFormat, type FeatureFolderOptions } from './file-source.js';
export { readSlideTable, parseSlideTable, type SlideTable, type SlideTableColumns, type SlideTableOptions } from './slide-table.js';
export { INSTANCE_LABELS_KEY, readH5Bag, readH5Arrays, readSafetensorsBag, readNpyBag, readNpyArray, CLAM_KEYS, type BagKeys, type HostArray } from './readers.js';
export { loadMnistDigits, MNIST_PIXELS, MNIST_SIDE, type MnistDigits } from './mnist.js';
