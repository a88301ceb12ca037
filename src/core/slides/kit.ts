// What slide-reader plugins may use from core (re-exported by src/registry/index.ts): the reader interface,
// the OpenSlide binding, the sharp-based pyramidal TIFF reader and CLAM-style tissue detection.
export {
  bestLevelForDownsample,
  DEFAULT_SLIDE_READER_CAPABILITIES,
  MAX_REGION_PIXELS,
  type RegionRequest,
  type RgbImage,
  type SlideLevel,
  type SlideOpener,
  type SlideProperties,
  type SlideReader,
  type SlideReaderCapabilities,
  type SlideReaderContext,
} from './reader.js';
export { OpenSlideReader, OPENSLIDE_LIBRARIES } from './openslide.js';
export { TiffSlideReader } from './tiff-reader.js';
export { readPatchThumbnails, type PatchThumbnailOptions } from './patch-thumbnails.js';
export { tissuePatchGrid, type PatchGridOptions } from './patch-grid.js';
export { readPatchCoordsH5, type PatchCoords } from './patch-coords.js';
export { CLAM_TISSUE_DEFAULTS, detectTissue, tissuePreview, type TissueDetector, type TissueOptions, type TissueResult, type TissueGeoJson } from './tissue.js';
