/**
 * OpenSlide through the system library (slide-reader/openslide)
 * Paper: A. Goode, B. Gilbert, J. Harkes, D. Jukic, M. Satyanarayanan, "OpenSlide: A vendor-neutral software
 *   foundation for digital pathology", J. Pathol. Inform. 2013. doi:10.4103/2153-3539.119005
 * Implements: openslide_open / level count, dimensions, downsamples / properties (vendor, objective power, mpp) /
 *   read_region / associated images, bound with koffi to libopenslide.so.0 (Debian package libopenslide0)
 * Symbols: level 0 = full resolution · downsample_k = level-0 pixels per level-k pixel · (x, y) in level-0 pixels
 * Choices: pre-multiplied ARGB is composited on white (c' + 255 − α), so pixels outside the scan are white and
 *   partly transparent edge pixels keep their colour; regions are capped at 64 Mpx per call (docs/slides.md)
 * Checked against: python3-openslide on a generated slide, test/reference/openslide_regions.py →
 *   test/reference/fixtures/slides/openslide-regions.json (test/core/slides/parity.test.ts)
 */
import { z } from 'zod';
import { definePlugin, OpenSlideReader, OPENSLIDE_LIBRARIES } from 'milkit';

export const OpenSlideReaderOptions = z.strictObject({
  library: z.string().min(1).optional().describe('shared library name or path to load instead of the usual libopenslide.so.0'),
});
export type OpenSlideReaderOptions = z.output<typeof OpenSlideReaderOptions>;

export default definePlugin({
  kind: 'slide-reader',
  name: 'openslide',
  summary: 'any format OpenSlide reads (Aperio .svs, tiled TIFF, Hamamatsu, MIRAX, ...) via libopenslide0',
  paper: { cite: 'Goode et al., OpenSlide, J. Pathol. Inform. 2013', doi: '10.4103/2153-3539.119005' },
  options: OpenSlideReaderOptions,
  capabilities: { extensions: ['*'], nativeLibrary: 'libopenslide.so.0 (Debian: libopenslide0)' },
  create: (options) => ({
    open: (file: string) => OpenSlideReader.open(file, options.library === undefined ? OPENSLIDE_LIBRARIES : [options.library]),
  }),
});
