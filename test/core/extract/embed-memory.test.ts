// What keeps extraction's memory flat whatever the number of patches: the read-ahead is one batch (never the
// whole slide's reads queued at once), and the native heap the decoders free is handed back after each batch
// (docs/slides.md#memory-while-extracting).
import { describe, expect, it } from 'vitest';
import type { FeatureExtractor, PatchBatch } from '../../../src/core/extract/extractor.js';
import { nativeHeapTrimmer } from '../../../src/core/extract/native-heap.js';
import { embedPatches, type PatchGeometry } from '../../../src/core/extract/pipeline.js';
import type { RegionRequest, RgbImage, SlideReader } from '../../../src/core/slides/reader.js';

const geometry: PatchGeometry = { scale: 1, patchSizeLevel0: 4, readLevel: 0, readSize: 4, targetMpp: 0.5, targetMagnification: 20 };

/** A reader whose reads finish one macrotask later and which records how many are pending at once. */
function countingReader(): SlideReader & { started: number; pendingMax: number } {
  let pending = 0;
  const reader = {
    file: 'counting.svs',
    levels: [{ width: 1 << 20, height: 1 << 20, downsample: 1 }],
    properties: { vendor: 'test', objectivePower: 20, mppX: 0.5, mppY: 0.5, all: {} },
    associatedImages: [],
    started: 0,
    pendingMax: 0,
    readRegion: (request: RegionRequest): Promise<RgbImage> => {
      reader.started += 1;
      pending += 1;
      reader.pendingMax = Math.max(reader.pendingMax, pending);
      return new Promise((resolve) => setTimeout(() => {
        pending -= 1;
        // Every pixel carries the patch's x, so the features below say which patch was embedded where.
        resolve({ width: request.width, height: request.height, data: new Uint8Array(request.width * request.height * 3).fill(request.x % 251) });
      }, 0));
    },
    readAssociatedImage: () => Promise.reject(new Error('not used')),
    close: () => Promise.resolve(),
  };
  return reader;
}

/** One feature per patch: its first pixel. Records how far the reader had got when each batch was embedded. */
function recordingExtractor(reader: { started: number }, batchSize: number, readAheadSeen: number[]): FeatureExtractor {
  let embedded = 0;
  return {
    identity: { name: 'test/first-pixel', modelSha256: '', inputSize: 4, normalisation: { mean: [0, 0, 0], std: [1, 1, 1] }, dim: 1 },
    batchSize,
    embed: async (batch: PatchBatch): Promise<Float32Array> => {
      embedded += batch.count;
      readAheadSeen.push(reader.started - embedded);
      // A slow encoder: if reads were not bounded, the reader would run far ahead while this waits.
      await new Promise((resolve) => setTimeout(resolve, 2));
      return Float32Array.from({ length: batch.count }, (_, i) => batch.rgb[i * batch.side * batch.side * 3] as number);
    },
    close: () => Promise.resolve(),
  };
}

describe('embedPatches memory', () => {
  it('reads at most one batch ahead of the encoder, however many patches the slide has, and keeps the row order', async () => {
    const n = 1000;
    const batchSize = 16;
    const coords = Int32Array.from({ length: 2 * n }, (_, i) => (i % 2 === 0 ? (i / 2) * 4 : 0));
    const reader = countingReader();
    const readAhead: number[] = [];
    const features = await embedPatches(reader, coords, geometry, recordingExtractor(reader, batchSize, readAhead));
    expect(reader.started).toBe(n);
    expect(readAhead).toHaveLength(Math.ceil(n / batchSize));
    // While batch b is embedded only batch b + 1 has been asked for: never more than one batch of reads outstanding.
    expect(Math.max(...readAhead)).toBe(batchSize);
    expect(reader.pendingMax).toBe(batchSize);
    expect(Array.from(features.subarray(0, 4))).toEqual([0, 4, 8, 12]);
    expect(features[n - 1]).toBe(((n - 1) * 4) % 251);
  });

  it('has glibc\'s malloc_trim on glibc Linux and nothing elsewhere', async () => {
    const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
    const trim = await nativeHeapTrimmer();
    if (process.platform === 'linux' && typeof header?.glibcVersionRuntime === 'string') {
      expect(trim).toBeTypeOf('function');
      expect(typeof trim?.()).toBe('boolean');
      // Loaded once per process.
      expect(await nativeHeapTrimmer()).toBe(trim);
    } else {
      expect(trim).toBeUndefined();
    }
  });
});
