// The onnx extractor against PyTorch: the small CNN of test/reference/onnx_encoder.py, exported to the committed
// test/reference/fixtures/extract/small-cnn.onnx, gives torch's embeddings (goldens_feature_extractors.py) within
// 1e-4; its identity carries the model file's SHA-256; a missing or unset model is one error naming the key.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import onnx from '../../../plugins/feature-extractors/onnx.js';
import { ConfigError } from '../../../src/index.js';
import { createFeatureExtractor, patchPattern, readGolden, type FeatureExtractorGolden } from '../../../src/testing/contracts/index.js';
import { goldenDirOf, REPO_ROOT } from '../../contracts/builtins.js';

const golden = readGolden(path.join(goldenDirOf('feature-extractor'), 'onnx.golden.json'), 'feature-extractor') as FeatureExtractorGolden;
const MODEL = 'test/reference/fixtures/extract/small-cnn.onnx';

describe('feature-extractor/onnx', () => {
  it('matches PyTorch\'s embeddings of the same CNN within 1e-4, and names the model by its SHA-256', async () => {
    const extractor = await createFeatureExtractor(onnx, { model: MODEL, inputSize: 32, batchSize: 3 }, REPO_ROOT);
    try {
      const features = await extractor.embed(patchPattern(4, 32));
      const expected = golden.expected.features.flat();
      expect(features.length).toBe(expected.length);
      const worst = expected.reduce((w, v, i) => Math.max(w, Math.abs(v - (features[i] as number))), 0);
      expect(worst).toBeLessThanOrEqual(1e-4);
      expect(extractor.identity.dim).toBe(16);
      expect(extractor.identity.modelSha256).toBe(createHash('sha256').update(readFileSync(path.join(REPO_ROOT, MODEL))).digest('hex'));
    } finally {
      await extractor.close();
    }
  });

  it('refuses a missing model file and an unset model with one error naming the key', async () => {
    const missing = createFeatureExtractor(onnx, { model: 'nowhere/encoder.onnx' }, REPO_ROOT);
    await expect(missing).rejects.toBeInstanceOf(ConfigError);
    await expect(missing).rejects.toMatchObject({ message: expect.stringMatching(/^extractor\.model: model file not found/) });
    await expect(createFeatureExtractor(onnx, {}, REPO_ROOT)).rejects.toThrow(/^extractor\.model is not set/);
  });
});
