// Host bags → tensors (with the train-time instance cap), and the pre-training validation pass that checks
// every slide's bag (shape, finiteness, coords/thumbs alignment, labels) and applies `data.onBadSlide`.
import * as tf from '@tensorflow/tfjs';
import { UNLABELLED, type BagData, type BagSource, type SlideRecord } from '../../registry/contracts/data.js';
import type { Bag } from '../../registry/contracts/model.js';
import { DataError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Rng } from '../runtime/random.js';
import { THUMB_SIDE } from './synthetic.js';

export interface BagToTensorsOptions {
  /** Keep at most this many instances: a fresh random subset (rows kept in file order) on every call. */
  readonly maxInstances?: number;
  /** Stream for the subset draw; required when `maxInstances` can bite. */
  readonly rng?: Rng;
  /** Bag views to build (`coords`, `thumbs` scaled to [0, 1], or any name of `data.views`); missing ones are absent. */
  readonly views?: readonly string[];
  /** Slide label, attached for training-time losses that need it. */
  readonly label?: number;
}

/** Sorted indices of a uniform random subset of size `k` from [0, n) (partial Fisher-Yates). */
export function sampleInstanceIndices(n: number, k: number, rng: Rng): Int32Array {
  const pool = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i += 1) {
    const j = i + rng.int(n - i);
    const tmp = pool[i] as number;
    pool[i] = pool[j] as number;
    pool[j] = tmp;
  }
  return pool.slice(0, k).sort();
}

function gatherRows<T extends Float32Array | Uint8Array | Int32Array>(source: T, width: number, rows: Int32Array, make: (size: number) => T): T {
  const out = make(rows.length * width);
  rows.forEach((row, i) => out.set(source.subarray(row * width, (row + 1) * width), i * width));
  return out;
}

/** Builds the tensors of one bag (features and the requested views); the caller owns (and disposes) every tensor. */
export function bagToTensors(data: BagData, opts: BagToTensorsOptions = {}): Bag {
  let rows: Int32Array | null = null;
  if (opts.maxInstances !== undefined && data.n > opts.maxInstances) {
    if (opts.rng === undefined) throw new RangeError('bagToTensors: maxInstances needs an rng for the subset draw');
    rows = sampleInstanceIndices(data.n, opts.maxInstances, opts.rng);
  }
  const features = rows === null ? data.features : gatherRows(data.features, data.d, rows, (s) => new Float32Array(s));
  return {
    slideId: data.slideId,
    features: tf.tensor2d(features, [rows?.length ?? data.n, data.d]),
    views: buildViews(data, opts.views ?? [], rows),
    ...(opts.label !== undefined ? { label: opts.label } : {}),
  };
}

/**
 * The named views of a bag as tensors, for `rows` of it (null = all, in order). `coords` and `thumbs` come from
 * their BagData fields, other names from `data.views`; views the data lacks are left out.
 */
export function buildViews(data: BagData, names: readonly string[], rows: ArrayLike<number> | null): Record<string, tf.Tensor> {
  const picked = rows === null ? null : Int32Array.from(rows as ArrayLike<number>);
  const n = picked?.length ?? data.n;
  const views: Record<string, tf.Tensor> = {};
  for (const name of new Set(names)) {
    if (name === 'coords') {
      if (data.coords !== undefined) views.coords = tf.tensor2d(picked ? gatherRows(data.coords, 2, picked, (s) => new Float32Array(s)) : data.coords, [n, 2]);
    } else if (name === 'thumbs') {
      if (data.thumbs !== undefined) views.thumbs = thumbsToTensor(picked ? gatherRows(data.thumbs, THUMB_SIDE * THUMB_SIDE * 3, picked, (s) => new Uint8Array(s)) : data.thumbs, n);
    } else {
      const host = data.views?.[name];
      if (host === undefined) continue;
      const width = host.shape.slice(1).reduce((a, b) => a * b, 1);
      const isInt = host.data instanceof Int32Array;
      const values = picked ? gatherRows<Float32Array | Int32Array>(host.data, width, picked, (s) => (isInt ? new Int32Array(s) : new Float32Array(s))) : host.data;
      views[name] = tf.tensor(values, [n, ...host.shape.slice(1)], isInt ? 'int32' : 'float32');
    }
  }
  return views;
}

/** [N, 16, 16, 3] uint8 thumbnails as a float tensor in [0, 1] (the `thumbs` view). */
export function thumbsToTensor(thumbs: Uint8Array, n: number): tf.Tensor4D {
  const scaled = new Float32Array(thumbs.length);
  for (let i = 0; i < thumbs.length; i += 1) scaled[i] = (thumbs[i] as number) / 255;
  return tf.tensor4d(scaled, [n, THUMB_SIDE, THUMB_SIDE, 3]);
}

/** Everything wrong with one bag, as DataErrors (empty when the bag is fine). Pure: no I/O. */
export function checkBag(data: BagData, expectedDim: number | undefined, file?: string): DataError[] {
  const where = file === undefined ? {} : { file };
  const slide = `slide "${data.slideId}"`;
  const problems: DataError[] = [];
  if (data.n === 0) {
    problems.push(new DataError('empty-bag', `${slide} has no instances (N = 0).`, { where, hint: 'Re-run patching/feature extraction for it, or set data.onBadSlide: skip.' }));
    return problems;
  }
  if (expectedDim !== undefined && data.d !== expectedDim) {
    problems.push(
      new DataError('feature-dim-mismatch', `${slide}: feature width ${data.d} ≠ ${expectedDim} expected by the model (inputDim).`, {
        where,
        hint: 'Use features from the same encoder for every slide, or re-extract this one.',
      }),
    );
  }
  if (data.features.length !== data.n * data.d) {
    problems.push(new DataError('feature-shape-mismatch', `${slide}: features hold ${data.features.length} values, expected N×D = ${data.n}×${data.d}.`, { where, hint: 'The file is inconsistent; re-export it.' }));
  }
  let bad = 0;
  let first = -1;
  for (let i = 0; i < data.features.length; i += 1) {
    if (!Number.isFinite(data.features[i] as number)) {
      bad += 1;
      if (first < 0) first = i;
    }
  }
  if (bad > 0) {
    const value = data.features[first] as number;
    problems.push(
      new DataError('non-finite-features', `${slide}: ${bad} non-finite feature value(s) (first ${value} at instance ${Math.floor(first / data.d)}, column ${first % data.d}).`, {
        where,
        hint: 'Re-extract the features of this slide, or set data.onBadSlide: skip.',
      }),
    );
  }
  if (data.coords !== undefined && data.coords.length !== data.n * 2) {
    problems.push(
      new DataError('coords-length-mismatch', `${slide}: coords have ${data.coords.length / 2} rows but features have N = ${data.n}.`, {
        where,
        hint: 'Features and coords must come from the same patching run (same row order).',
      }),
    );
  }
  const thumbSize = THUMB_SIDE * THUMB_SIDE * 3;
  if (data.thumbs !== undefined && data.thumbs.length !== data.n * thumbSize) {
    problems.push(
      new DataError('thumbs-length-mismatch', `${slide}: thumbs have ${data.thumbs.length / thumbSize} rows of 16×16×3 but features have N = ${data.n}.`, {
        where,
        hint: 'Thumbnails must be [N, 16, 16, 3] in the feature row order.',
      }),
    );
  }
  return problems;
}

export interface ValidateSourceOptions {
  /** D the model was built for; every bag must match it (and the source's declared featureDim). */
  readonly inputDim?: number;
  readonly onBadSlide: 'error' | 'skip';
  readonly logger: Logger;
}

export interface ValidationResult {
  /** Slides that passed, in table order. */
  readonly slides: SlideRecord[];
  readonly skipped: Array<{ slideId: string; reason: string }>;
}

/**
 * Loads every slide once and checks it; with `onBadSlide: 'error'` the first bad slide throws, with
 * `'skip'` each bad slide is logged (slide, file, reason) and the count is reported.
 */
export async function validateSource(source: BagSource, opts: ValidateSourceOptions): Promise<ValidationResult> {
  const expectedDim = opts.inputDim ?? source.featureDim;
  if (opts.inputDim !== undefined && opts.inputDim !== source.featureDim) {
    throw new DataError('feature-dim-mismatch', `the dataset's feature width is ${source.featureDim} but the model expects inputDim ${opts.inputDim}.`, {
      hint: 'Use features from the encoder the model was configured for.',
    });
  }
  const numClasses = source.classNames.length;
  const seen = new Set<string>();
  const slides: SlideRecord[] = [];
  const skipped: Array<{ slideId: string; reason: string }> = [];
  const reject = (slideId: string, error: DataError): void => {
    if (opts.onBadSlide === 'error') throw error;
    const reason = `[${error.code}] ${error.render()}`;
    opts.logger.warn(`skipping slide "${slideId}": ${reason}`);
    skipped.push({ slideId, reason });
  };
  for (const slide of source.slides) {
    if (seen.has(slide.slideId)) {
      // A duplicate id would let one slide sit in two partitions: never skippable.
      throw new DataError('duplicate-slide-id', `slide_id "${slide.slideId}" appears more than once in the slide table.`, { hint: 'Slide ids must be unique; remove or rename the duplicate row.' });
    }
    seen.add(slide.slideId);
    // An unlabelled cohort (prediction only) has no labels to check.
    if (!(source.unlabelled === true && slide.label === UNLABELLED) && (!Number.isInteger(slide.label) || slide.label < 0 || slide.label >= numClasses)) {
      reject(slide.slideId, new DataError('unknown-label', `slide "${slide.slideId}": label ${slide.label} (${slide.labelName}) is not a class index in [0, ${numClasses}).`, { hint: 'Fix the label map (data.labels).' }));
      continue;
    }
    let data: BagData;
    try {
      data = await source.load(slide.slideId);
    } catch (error) {
      if (!(error instanceof DataError)) throw error;
      reject(slide.slideId, error);
      continue;
    }
    const problem = checkBag(data, expectedDim, source.fileOf?.(slide.slideId))[0];
    if (problem !== undefined) {
      reject(slide.slideId, problem);
      continue;
    }
    slides.push(slide);
  }
  if (skipped.length > 0) opts.logger.warn(`skipped ${skipped.length} of ${source.slides.length} slides (data.onBadSlide: skip)`);
  if (slides.length === 0) throw new DataError('no-valid-slides', `none of the ${source.slides.length} slides passed validation.`, { hint: 'See the skipped-slide warnings above.' });
  return { slides, skipped };
}
