// HDMIL-style patch thumbnails from a slide: exact pixels when a level matches the thumbnail scale, box
// averages otherwise (close to averaging level 0 itself), white beyond the slide.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPatchThumbnails } from '../../../src/core/slides/patch-thumbnails.js';
import { TiffSlideReader } from '../../../src/core/slides/tiff-reader.js';
import { asyncErrorText } from '../data/error-text.js';

const SLIDE = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../reference/fixtures/slides/synthetic.svs');
const coords = [0, 0, 256, 512, 768, 256, 1024, 768]; // a 256-px patch grid; the last patch reaches the border

describe('slides/patch-thumbnails', () => {
  it('copies the level whose downsample equals the thumbnail scale', async () => {
    const reader = await TiffSlideReader.open(SLIDE); // levels 1, 2, 4, 8
    const thumbs = await readPatchThumbnails(reader, coords, { patchSize: 128, side: 16 }); // 8 level-0 px per thumb px
    for (let i = 0; i < 4; i += 1) {
      const level = await reader.readRegion({ x: coords[2 * i] as number, y: coords[2 * i + 1] as number, level: 3, width: 16, height: 16 });
      expect(Array.from(thumbs.subarray(i * 768, (i + 1) * 768))).toEqual(Array.from(level.data));
    }
  });

  it('box-averages a finer level to 16 × 16 per 256-px patch, close to averaging level 0', async () => {
    const reader = await TiffSlideReader.open(SLIDE);
    const thumbs = await readPatchThumbnails(reader, coords, { patchSize: 256, side: 16 });
    expect(thumbs.length).toBe(4 * 16 * 16 * 3);
    let total = 0;
    for (let i = 0; i < 4; i += 1) {
      const full = await reader.readRegion({ x: coords[2 * i] as number, y: coords[2 * i + 1] as number, level: 0, width: 256, height: 256 });
      for (let ty = 0; ty < 16; ty += 1) {
        for (let tx = 0; tx < 16; tx += 1) {
          for (let c = 0; c < 3; c += 1) {
            let sum = 0;
            for (let y = 0; y < 16; y += 1) for (let x = 0; x < 16; x += 1) sum += full.data[((ty * 16 + y) * 256 + tx * 16 + x) * 3 + c] as number;
            total += Math.abs(sum / 256 - (thumbs[((i * 16 + ty) * 16 + tx) * 3 + c] as number));
          }
        }
      }
    }
    // The pyramid levels are JPEG re-encodings of box-filtered level 0: a few grey levels apart on average.
    expect(total / (4 * 16 * 16 * 3)).toBeLessThan(4);
  });

  it('gives white beyond the slide and rejects a patch size that is not a multiple of the side', async () => {
    const reader = await TiffSlideReader.open(SLIDE);
    const outside = await readPatchThumbnails(reader, [4096, 4096], { patchSize: 256, side: 16 });
    expect(outside.every((v) => v === 255)).toBe(true);
    expect(await asyncErrorText(() => readPatchThumbnails(reader, coords, { patchSize: 250, side: 16 }))).toContain('patch size 250 is not a whole multiple of the thumbnail side 16.');
  });
});
