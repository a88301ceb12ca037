// What feature-extractor plugins may use from core (re-exported by src/registry/index.ts): the extractor
// interface, the shared options (input size, normalisation, batch size), resizing and normalisation of patches.
import { z } from 'zod';
import { IMAGENET_NORMALISATION } from './extractor.js';

export {
  DEFAULT_FEATURE_EXTRACTOR_CAPABILITIES,
  IMAGENET_NORMALISATION,
  resizePatches,
  sameIdentity,
  sha256File,
  toNormalisedNchw,
  type FeatureExtractor,
  type FeatureExtractorCapabilities,
  type FeatureExtractorContext,
  type FeatureExtractorIdentity,
  type Normalisation,
  type PatchBatch,
} from './extractor.js';
export { readFeatureFileIdentity, type FeatureFileAttributes } from './feature-file.js';

const channelTriple = z.tuple([z.number(), z.number(), z.number()]);

/** The options every extractor shares; `inputSize` defaults per extractor (224 for ImageNet encoders). */
export function featureExtractorBaseOptions(defaultInputSize: number, defaultBatchSize: number) {
  return {
    inputSize: z.int().min(8).max(4096).default(defaultInputSize).describe('side of the square image the encoder sees; patches of another size are resized (bilinear)'),
    normalisation: z
      .strictObject({
        mean: channelTriple.describe('per-channel mean of pixels scaled to [0, 1]'),
        std: channelTriple.refine((s) => s.every((v) => v > 0), 'std must be positive').describe('per-channel std'),
      })
      .default({ mean: [...IMAGENET_NORMALISATION.mean], std: [...IMAGENET_NORMALISATION.std] })
      .describe('(v / 255 − mean) / std per channel; ImageNet statistics by default'),
    batchSize: z.int().positive().max(4096).default(defaultBatchSize).describe('patches embedded per call'),
  };
}
