// The `feature-extractor` plugin kind: turns RGB patches into one feature row each (an ONNX image encoder, or the
// built-in colour/texture statistics). Every extractor has an identity — name, model-file hash, input size and
// normalisation — that `milkit extract` writes into each feature file, so features from different encoders are
// never mixed up even when their widths agree (docs/slides.md#feature-extraction).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Logger } from '../logger.js';

/** Per-channel mean and std applied to pixels scaled to [0, 1]: (v / 255 − mean) / std. */
export interface Normalisation {
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
}

/** torchvision's ImageNet statistics, the default of every extractor (CLAM uses them). */
export const IMAGENET_NORMALISATION: Normalisation = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** What a feature file records about the encoder that wrote it. */
export interface FeatureExtractorIdentity {
  /** Plugin id, e.g. `feature-extractor/onnx`. */
  readonly name: string;
  /** SHA-256 (hex) of the model file; empty for extractors without one. */
  readonly modelSha256: string;
  /** Side of the square image the encoder sees, in pixels. */
  readonly inputSize: number;
  readonly normalisation: Normalisation;
  /** Feature width. */
  readonly dim: number;
}

/** `count` square RGB patches of `side` pixels, interleaved row-major HWC, back to back. */
export interface PatchBatch {
  readonly count: number;
  readonly side: number;
  readonly rgb: Uint8Array;
}

/** What a `feature-extractor` plugin's create() resolves to. */
export interface FeatureExtractor {
  readonly identity: FeatureExtractorIdentity;
  /** Patches per embed() call the pipeline should aim for. */
  readonly batchSize: number;
  /** Features [count, dim] row-major, row i for patch i. Patches of another side are resized to the input size first. */
  embed(batch: PatchBatch): Promise<Float32Array>;
  close(): Promise<void>;
}

/** What a `feature-extractor` plugin's create() receives. */
export interface FeatureExtractorContext {
  readonly logger: Logger;
  /** Relative model paths resolve from here (the working directory, or the experiment file's folder). */
  readonly baseDir: string;
  /** The config key the extractor sits under, for error messages (e.g. `extractor`). */
  readonly key?: string;
}

export interface FeatureExtractorCapabilities {
  /** Needs a model file (its hash is part of the identity). */
  readonly modelFile: boolean;
  /** Same patches → bit-identical features on every run and machine. */
  readonly deterministic: boolean;
}

export const DEFAULT_FEATURE_EXTRACTOR_CAPABILITIES: FeatureExtractorCapabilities = { modelFile: false, deterministic: false };

/**
 * Bilinear resize of square RGB patches (half-pixel centres, edge clamped: PyTorch's `interpolate(...,
 * mode='bilinear', align_corners=False)` without antialiasing), rounded to uint8. A batch already at `size` is
 * returned as is.
 */
export function resizePatches(batch: PatchBatch, size: number): PatchBatch {
  if (batch.side === size) return batch;
  const { count, side } = batch;
  const out = new Uint8Array(count * size * size * 3);
  const scale = side / size;
  const x0s = new Int32Array(size);
  const x1s = new Int32Array(size);
  const wxs = new Float64Array(size);
  for (let i = 0; i < size; i += 1) {
    const src = Math.max(0, (i + 0.5) * scale - 0.5);
    const lo = Math.min(side - 1, Math.floor(src));
    x0s[i] = lo;
    x1s[i] = Math.min(side - 1, lo + 1);
    wxs[i] = src - lo;
  }
  for (let n = 0; n < count; n += 1) {
    const base = n * side * side * 3;
    const outBase = n * size * size * 3;
    for (let oy = 0; oy < size; oy += 1) {
      const y0 = x0s[oy] as number;
      const y1 = x1s[oy] as number;
      const wy = wxs[oy] as number;
      for (let ox = 0; ox < size; ox += 1) {
        const xa = x0s[ox] as number;
        const xb = x1s[ox] as number;
        const wx = wxs[ox] as number;
        for (let c = 0; c < 3; c += 1) {
          const p00 = batch.rgb[base + (y0 * side + xa) * 3 + c] as number;
          const p01 = batch.rgb[base + (y0 * side + xb) * 3 + c] as number;
          const p10 = batch.rgb[base + (y1 * side + xa) * 3 + c] as number;
          const p11 = batch.rgb[base + (y1 * side + xb) * 3 + c] as number;
          const top = p00 + (p01 - p00) * wx;
          const bottom = p10 + (p11 - p10) * wx;
          out[outBase + (oy * size + ox) * 3 + c] = Math.round(top + (bottom - top) * wy);
        }
      }
    }
  }
  return { count, side: size, rgb: out };
}

/** Normalised float32 NCHW input for an image encoder: (v / 255 − mean_c) / std_c. */
export function toNormalisedNchw(batch: PatchBatch, normalisation: Normalisation): Float32Array {
  const { count, side, rgb } = batch;
  const plane = side * side;
  const out = new Float32Array(count * 3 * plane);
  for (let n = 0; n < count; n += 1) {
    for (let c = 0; c < 3; c += 1) {
      const mean = normalisation.mean[c] as number;
      const std = normalisation.std[c] as number;
      const dst = (n * 3 + c) * plane;
      const src = n * plane * 3 + c;
      for (let p = 0; p < plane; p += 1) out[dst + p] = ((rgb[src + p * 3] as number) / 255 - mean) / std;
    }
  }
  return out;
}

/** SHA-256 of a file, streamed (model files can be hundreds of MB). */
export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** Identities are equal when every field is (normalisation compared to 1e-9). */
export function sameIdentity(a: FeatureExtractorIdentity, b: FeatureExtractorIdentity): boolean {
  const close = (x: readonly number[], y: readonly number[]): boolean => x.length === y.length && x.every((v, i) => Math.abs(v - (y[i] as number)) < 1e-9);
  return a.name === b.name && a.modelSha256 === b.modelSha256 && a.inputSize === b.inputSize && a.dim === b.dim
    && close(a.normalisation.mean, b.normalisation.mean) && close(a.normalisation.std, b.normalisation.std);
}
