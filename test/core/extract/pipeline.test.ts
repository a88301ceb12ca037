// Patch geometry (which level, how big, from the slide's own objective power or mpp), the shared bilinear resize
// and the ImageNet normalisation of the extractor input.
import { describe, expect, it } from 'vitest';
import { DataError } from '../../../src/core/errors.js';
import { IMAGENET_NORMALISATION, resizePatches, toNormalisedNchw } from '../../../src/core/extract/extractor.js';
import { patchGeometry } from '../../../src/core/extract/pipeline.js';
import type { SlideReader } from '../../../src/core/slides/reader.js';

function fakeReader(downsamples: number[], props: { objectivePower?: number; mpp?: number }): SlideReader {
  return {
    file: 'fake.svs',
    levels: downsamples.map((d) => ({ width: 40000 / d, height: 30000 / d, downsample: d })),
    properties: { vendor: 'aperio', objectivePower: props.objectivePower, mppX: props.mpp, mppY: props.mpp, all: {} },
    associatedImages: [],
    readRegion: () => Promise.reject(new Error('not used')),
    readAssociatedImage: () => Promise.reject(new Error('not used')),
    close: () => Promise.resolve(),
  };
}

const patching = { patchSize: 256, magnification: 20, thumbs: true };

describe('patchGeometry', () => {
  it('reads 256-px 20× patches from level 0 of a 20× slide', () => {
    expect(patchGeometry(fakeReader([1, 4, 16], { objectivePower: 20, mpp: 0.5 }), patching)).toEqual({ scale: 1, patchSizeLevel0: 256, readLevel: 0, readSize: 256, targetMpp: 0.5, targetMagnification: 20 });
  });

  it('reads the 2× level of a 40× slide, or level 0 enlarged-free and resized when no level matches', () => {
    expect(patchGeometry(fakeReader([1, 2, 8], { objectivePower: 40, mpp: 0.25 }), patching)).toMatchObject({ patchSizeLevel0: 512, readLevel: 1, readSize: 256, targetMpp: 0.5 });
    expect(patchGeometry(fakeReader([1, 4, 16], { objectivePower: 40 }), patching)).toMatchObject({ patchSizeLevel0: 512, readLevel: 0, readSize: 512, targetMpp: 0 });
  });

  it('takes a target mpp, and the scanner values from options when the file has none', () => {
    expect(patchGeometry(fakeReader([1, 2, 8], { mpp: 0.25 }), { ...patching, mpp: 1 })).toMatchObject({ scale: 4, patchSizeLevel0: 1024, readLevel: 1, readSize: 512, targetMpp: 1, targetMagnification: 10 });
    expect(patchGeometry(fakeReader([1, 2], {}), { ...patching, baseMagnification: 40 })).toMatchObject({ patchSizeLevel0: 512, readLevel: 1 });
  });

  it('refuses a slide without objective power or mpp, naming the file and the flag', () => {
    const attempt = (): unknown => patchGeometry(fakeReader([1], {}), patching);
    expect(attempt).toThrow(DataError);
    expect(attempt).toThrow(/neither objective power nor microns per pixel/);
    try {
      attempt();
    } catch (error) {
      expect((error as DataError).hint).toMatch(/--base-magnification/);
      expect(JSON.stringify((error as DataError).where)).toContain('fake.svs');
    }
  });
});

describe('resizePatches and toNormalisedNchw', () => {
  it('halves a patch into the means of its 2×2 blocks (bilinear, half-pixel centres) and keeps a patch of the right size', () => {
    const side = 4;
    const rgb = Uint8Array.from({ length: side * side * 3 }, (_, i) => (i * 7) % 251);
    const half = resizePatches({ count: 1, side, rgb }, 2);
    const at = (x: number, y: number, c: number): number => rgb[(y * side + x) * 3 + c] as number;
    for (let y = 0; y < 2; y += 1) {
      for (let x = 0; x < 2; x += 1) {
        for (let c = 0; c < 3; c += 1) {
          const mean = (at(2 * x, 2 * y, c) + at(2 * x + 1, 2 * y, c) + at(2 * x, 2 * y + 1, c) + at(2 * x + 1, 2 * y + 1, c)) / 4;
          expect(half.rgb[(y * 2 + x) * 3 + c]).toBe(Math.round(mean));
        }
      }
    }
    const same = { count: 1, side, rgb };
    expect(resizePatches(same, side)).toBe(same);
  });

  it('normalises channel-first with ImageNet statistics', () => {
    const input = toNormalisedNchw({ count: 1, side: 1, rgb: Uint8Array.from([255, 0, 128]) }, IMAGENET_NORMALISATION);
    expect(Array.from(input)).toEqual([(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225].map(Math.fround));
  });
});
