/**
 * Pyramidal TIFF and Aperio .svs through sharp/libvips, no system library (slide-reader/tiff)
 * Paper: none — file format. TIFF 6.0 tiled images; Aperio's ImageDescription conventions (AppMag, MPP; label
 *   and macro directories) as OpenSlide reads them.
 * Implements: levels = the tiled directories from largest to smallest; region = sharp extract of the page under
 *   the request (only the covered tiles are decoded), white outside the level; Aperio mpp / objective power and
 *   thumbnail / label / macro images
 * Symbols: level 0 = full resolution · downsample_k = mean of the width and height ratios (as OpenSlide)
 * Choices: sub-pixel level coordinates round to the nearest level pixel (OpenSlide interpolates); regions whose
 *   x, y fall on the level's pixel grid are identical to OpenSlide's (docs/slides.md)
 * Checked against: the openslide reader on generated slides (test/core/slides/parity.test.ts)
 */
import { z } from 'zod';
import { definePlugin, TiffSlideReader } from 'milkit';

export const TiffReaderOptions = z.strictObject({});
export type TiffReaderOptions = z.output<typeof TiffReaderOptions>;

export default definePlugin({
  kind: 'slide-reader',
  name: 'tiff',
  summary: 'pyramidal (tiled) TIFF and Aperio .svs via sharp/libvips, no system library needed',
  options: TiffReaderOptions,
  capabilities: { extensions: ['.tif', '.tiff', '.svs'], nativeLibrary: undefined },
  create: () => ({ open: (file: string) => TiffSlideReader.open(file) }),
});
