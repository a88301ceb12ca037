/**
 * Colour and texture statistics, no model needed (feature-extractor/color-texture)
 * Paper: none — classical descriptors. Colour moments; gradient-orientation histograms in the manner of HOG
 *   (Dalal & Triggs, CVPR 2005); rotation-invariant uniform local binary patterns (Ojala, Pietikäinen & Mäenpää,
 *   IEEE TPAMI 2002), here over a whole patch.
 * Implements: per patch (resized to inputSize), 49 numbers: per channel the mean and std of the normalised values
 *   (6); per channel an 8-bin histogram of the 8-bit values, bin = v >> 5 (24); on the grey sum s = r + g + b, the
 *   central-difference gradient at interior pixels — an 8-bin histogram of its unsigned orientation weighted by
 *   magnitude (8) and the mean magnitude (1), both divided by 765 —, and the 10-bin histogram of the 8-neighbour
 *   uniform LBP codes (number of neighbours ≥ centre for uniform codes, 9 for the rest) (10). Histograms are
 *   fractions of the counted pixels.
 * Symbols: s = r + g + b (0..765) · gx = s(x+1, y) − s(x−1, y) · gy = s(x, y+1) − s(x, y−1) · θ = atan2(gy, gx) mod π
 * Choices: integer grey sums keep every comparison exact, so the numpy reference agrees to rounding
 *   (test/reference/goldens_feature_extractors.py); for making the pipeline run without a model and for tests, not
 *   for accuracy (docs/slides.md#feature-extraction)
 * Checked against: numpy, plugins/feature-extractors/color-texture.golden.json
 */
import { z } from 'zod';
import { definePlugin, featureExtractorBaseOptions, resizePatches, type FeatureExtractor, type PatchBatch } from 'milkit';

export const ColorTextureOptions = z.strictObject({ ...featureExtractorBaseOptions(256, 64) });
export type ColorTextureOptions = z.output<typeof ColorTextureOptions>;

export const COLOR_TEXTURE_DIM = 49;

/** LBP neighbours clockwise from the top-left (dx, dy), so that "uniform" means ≤ 2 transitions around the ring. */
const RING: ReadonlyArray<readonly [number, number]> = [[-1, -1], [0, -1], [1, -1], [1, 0], [1, 1], [0, 1], [-1, 1], [-1, 0]];

function describePatch(rgb: Uint8Array, offset: number, side: number, options: ColorTextureOptions, out: Float32Array, at: number): void {
  const pixels = side * side;
  const { mean, std } = options.normalisation;
  const sum = [0, 0, 0];
  const sumSq = [0, 0, 0];
  const histogram = new Float64Array(24);
  const grey = new Int32Array(pixels);
  for (let p = 0; p < pixels; p += 1) {
    let s = 0;
    for (let c = 0; c < 3; c += 1) {
      const v = rgb[offset + p * 3 + c] as number;
      const x = (v / 255 - (mean[c] as number)) / (std[c] as number);
      sum[c] = (sum[c] as number) + x;
      sumSq[c] = (sumSq[c] as number) + x * x;
      histogram[c * 8 + (v >> 5)] = (histogram[c * 8 + (v >> 5)] as number) + 1;
      s += v;
    }
    grey[p] = s;
  }
  for (let c = 0; c < 3; c += 1) {
    const m = (sum[c] as number) / pixels;
    out[at + c * 2] = m;
    out[at + c * 2 + 1] = Math.sqrt(Math.max(0, (sumSq[c] as number) / pixels - m * m));
  }
  for (let i = 0; i < 24; i += 1) out[at + 6 + i] = (histogram[i] as number) / pixels;
  const orientation = new Float64Array(8);
  const lbp = new Float64Array(10);
  let magnitudeSum = 0;
  let interior = 0;
  for (let y = 1; y < side - 1; y += 1) {
    for (let x = 1; x < side - 1; x += 1) {
      const p = y * side + x;
      const gx = (grey[p + 1] as number) - (grey[p - 1] as number);
      const gy = (grey[p + side] as number) - (grey[p - side] as number);
      const magnitude = Math.sqrt(gx * gx + gy * gy);
      if (magnitude > 0) {
        let theta = Math.atan2(gy, gx);
        if (theta < 0) theta += Math.PI;
        const bin = Math.min(7, Math.floor((theta / Math.PI) * 8));
        orientation[bin] = (orientation[bin] as number) + magnitude;
        magnitudeSum += magnitude;
      }
      const centre = grey[p] as number;
      let ones = 0;
      let transitions = 0;
      let previous = (grey[p + (RING[7] as readonly [number, number])[1] * side + (RING[7] as readonly [number, number])[0]] as number) >= centre ? 1 : 0;
      for (const [dx, dy] of RING) {
        const bit = (grey[p + dy * side + dx] as number) >= centre ? 1 : 0;
        ones += bit;
        if (bit !== previous) transitions += 1;
        previous = bit;
      }
      const code = transitions <= 2 ? ones : 9;
      lbp[code] = (lbp[code] as number) + 1;
      interior += 1;
    }
  }
  const scale = Math.max(1, interior) * 765;
  for (let i = 0; i < 8; i += 1) out[at + 30 + i] = (orientation[i] as number) / scale;
  out[at + 38] = magnitudeSum / scale;
  for (let i = 0; i < 10; i += 1) out[at + 39 + i] = (lbp[i] as number) / Math.max(1, interior);
}

class ColorTextureExtractor implements FeatureExtractor {
  readonly identity;
  readonly batchSize: number;

  constructor(private readonly options: ColorTextureOptions) {
    this.batchSize = options.batchSize;
    this.identity = { name: 'feature-extractor/color-texture', modelSha256: '', inputSize: options.inputSize, normalisation: options.normalisation, dim: COLOR_TEXTURE_DIM };
  }

  embed(batch: PatchBatch): Promise<Float32Array> {
    const input = resizePatches(batch, this.options.inputSize);
    const side = input.side;
    const out = new Float32Array(input.count * COLOR_TEXTURE_DIM);
    for (let n = 0; n < input.count; n += 1) describePatch(input.rgb, n * side * side * 3, side, this.options, out, n * COLOR_TEXTURE_DIM);
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export default definePlugin({
  kind: 'feature-extractor',
  name: 'color-texture',
  summary: 'built-in deterministic colour moments, colour histograms, gradient-orientation and LBP histograms (49-d); no model file',
  options: ColorTextureOptions,
  capabilities: { modelFile: false, deterministic: true },
  create: (options) => Promise.resolve(new ColorTextureExtractor(options)),
});
