/**
 * CLAM tissue segmentation (tissue-detector/clam)
 * Paper: M. Y. Lu, D. F. K. Williamson, T. Y. Chen, R. J. Chen, M. Barbieri, F. Mahmood, "Data-efficient and weakly
 *   supervised computational pathology on whole-slide images", Nat. Biomed. Eng. 2021. doi:10.1038/s41551-020-00682-w
 * Implements: create_patches_fp's segmentation with its defaults: HSV saturation → median blur (mthresh 7) →
 *   threshold (sthresh 8, or Otsu) → closing (close 4) → tissue pieces and holes filtered by area (a_t 100,
 *   a_h 16 in 512-px reference patches, max_n_holes 8), on the level nearest 64× downsample
 * Symbols: sthresh → saturationThreshold · mthresh → medianKernel · close → closeKernel · a_t → minTissueArea ·
 *   a_h → minHoleArea · max_n_holes → maxHoles · ref_patch_size → referencePatchSize
 * Choices: penFilter (off by default, not in CLAM) drops marker-ink pixels before the threshold (docs/slides.md);
 *   areas are pixel counts of 8-connected pieces and 4-connected holes (CLAM: cv2 contour areas); rings are
 *   pixel outlines in level-0 coordinates; the pixel steps are bit-exact with OpenCV (docs/slides.md)
 * Checked against: test/reference/tissue_opencv.py → test/reference/fixtures/slides/tissue-opencv.json
 *   (test/core/slides/tissue.test.ts)
 */
import { z } from 'zod';
import { CLAM_TISSUE_DEFAULTS, definePlugin, detectTissue, type SlideReader } from 'milkit';

const d = CLAM_TISSUE_DEFAULTS;
export const ClamTissueOptions = z.strictObject({
  downsample: z.number().positive().default(d.downsample).describe('level-0 pixels per analysis pixel wanted; the largest level not above it is read'),
  saturationThreshold: z.int().min(0).max(255).default(d.saturationThreshold).describe('sthresh: tissue where the blurred HSV saturation exceeds it'),
  otsu: z.boolean().default(d.otsu).describe("use Otsu's threshold of the blurred saturation instead of saturationThreshold"),
  medianKernel: z.int().min(1).max(31).refine((k) => k % 2 === 1, 'must be odd').default(d.medianKernel).describe('mthresh: median blur window (odd)'),
  closeKernel: z.int().min(0).max(64).default(d.closeKernel).describe('close: side of the square closing kernel in analysis pixels (0 = none)'),
  minTissueArea: z.number().min(0).default(d.minTissueArea).describe('a_t: minimum tissue piece area, in reference patches'),
  minHoleArea: z.number().min(0).default(d.minHoleArea).describe('a_h: minimum hole area, in reference patches'),
  maxHoles: z.int().min(0).default(d.maxHoles).describe('max_n_holes: holes kept per piece, largest first'),
  referencePatchSize: z.int().positive().default(d.referencePatchSize).describe('ref_patch_size: level-0 side of the reference patch the areas count'),
  penFilter: z.boolean().default(false).describe('ignore blue, green and black marker ink before thresholding (not in CLAM, which keeps pen strokes as tissue)'),
});
export type ClamTissueOptions = z.output<typeof ClamTissueOptions>;

export default definePlugin({
  kind: 'tissue-detector',
  name: 'clam',
  summary: "CLAM's saturation-threshold tissue segmentation with area-filtered pieces and holes",
  paper: { cite: 'Lu et al., CLAM, Nat. Biomed. Eng. 2021', doi: '10.1038/s41551-020-00682-w' },
  options: ClamTissueOptions,
  capabilities: {},
  create: (options) => ({ detect: (reader: SlideReader) => detectTissue(reader, options) }),
});
