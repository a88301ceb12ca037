// A BagSource over a folder of per-slide feature files (CLAM/TRIDENT h5, safetensors, npy) and a slide
// table. Bags load lazily and stay in a byte-bounded LRU cache, so memory is `data.cacheBytes`, not the cohort.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { BagData, BagSource, DatasetContext, LabelHierarchy, SlideRecord } from '../../registry/contracts/data.js';
import { DataError } from '../errors.js';
import { checkBag } from './bags.js';
import { ByteLruCache, bagBytes } from './cache.js';
import { deriveHierarchy } from './labels.js';
import { readPtArray, readPtBag } from './pt-reader.js';
import { assembleBag, readH5Arrays, readH5Bag, readNpyArray, readNpyBag, readSafetensorsBag, thumbsFromArray, type BagKeys, type HostArray } from './readers.js';
import { readSlideTable, type SlideTableColumns } from './slide-table.js';

export type FeatureFormat = 'h5' | 'safetensors' | 'npy' | 'pt';
export const FEATURE_EXTENSIONS: Readonly<Record<FeatureFormat, string>> = { h5: '.h5', safetensors: '.safetensors', npy: '.npy', pt: '.pt' };

export interface FeatureFolderOptions {
  /** Slide-table CSV. */
  readonly slideTable: string;
  /** Folder of `<slide_id><ext>` feature files. */
  readonly featuresDir: string;
  /** File format; `auto` picks per slide from the extension that exists (h5, then safetensors, then npy). */
  readonly format: FeatureFormat | 'auto';
  readonly keys: BagKeys;
  readonly columns: SlideTableColumns;
  /** Load thumbnails when the files have them. */
  readonly thumbs: boolean;
  /** Side folder of `<slide_id>.npy` / `<slide_id>.h5` thumbnails (when not stored beside the features). */
  readonly thumbsDir?: string;
  /** Side folder of `<slide_id>.npy` coordinates (npy features). */
  readonly coordsDir?: string;
}

const DEFAULT_CACHE_BYTES = 2 * 1024 ** 3;

export class FeatureFolderSource implements BagSource {
  private readonly cache: ByteLruCache<BagData>;
  private readonly files = new Map<string, string>();
  /** D: set by openFeatureFolder from the files. */
  featureDim = 0;
  readonly hierarchy?: LabelHierarchy;
  readonly unlabelled?: boolean;

  constructor(
    readonly slides: readonly SlideRecord[],
    readonly classNames: readonly string[],
    private readonly options: FeatureFolderOptions,
    cacheBytes: number,
    labelled = true,
  ) {
    this.cache = new ByteLruCache<BagData>(cacheBytes, bagBytes);
    if (!labelled) this.unlabelled = true;
    const hierarchy = deriveHierarchy(slides, classNames);
    if (hierarchy !== undefined) this.hierarchy = hierarchy;
  }

  /** The file a slide reads from (for `auto`, the first existing extension, else the h5 name). */
  fileOf(slideId: string): string {
    const known = this.files.get(slideId);
    if (known !== undefined) return known;
    const formats: FeatureFormat[] = this.options.format === 'auto' ? ['h5', 'safetensors', 'npy', 'pt'] : [this.options.format];
    const candidates = formats.map((f) => path.join(this.options.featuresDir, `${slideId}${FEATURE_EXTENSIONS[f]}`));
    const file = candidates.find((c) => existsSync(c)) ?? (candidates[0] as string);
    this.files.set(slideId, file);
    return file;
  }

  async load(slideId: string): Promise<BagData> {
    const file = this.fileOf(slideId);
    const bag = await this.cache.getOrLoad(slideId, async () => {
      const read = await this.read(slideId, file);
      const problem = checkBag(read, undefined, file)[0];
      if (problem !== undefined) throw problem;
      return read;
    });
    // D is checked outside the cache: it is only known once the folder is open.
    if (this.featureDim > 0 && bag.d !== this.featureDim) {
      throw checkBag(bag, this.featureDim, file).find((p) => p.code === 'feature-dim-mismatch') as DataError;
    }
    return bag;
  }

  private async read(slideId: string, file: string): Promise<BagData> {
    const { keys, thumbs } = this.options;
    const withThumbs = thumbs && this.options.thumbsDir === undefined;
    let bag: BagData;
    if (file.endsWith('.h5')) bag = await readH5Bag(file, slideId, keys, { thumbs: withThumbs });
    else if (file.endsWith('.safetensors')) bag = await readSafetensorsBag(file, slideId, keys, { thumbs: withThumbs });
    else if (file.endsWith('.pt')) bag = await this.withSideCoords(await readPtBag(file, slideId, keys, { thumbs: withThumbs }), slideId);
    else {
      const side = (dir: string | undefined): string | undefined => (dir === undefined ? undefined : path.join(dir, `${slideId}.npy`));
      const coords = side(this.options.coordsDir);
      bag = await readNpyBag({ features: file, ...(coords === undefined ? {} : { coords }) }, slideId);
    }
    if (thumbs && this.options.thumbsDir !== undefined) bag = { ...bag, thumbs: await this.readSideThumbs(slideId) };
    return bag;
  }

  private async readSideThumbs(slideId: string): Promise<Uint8Array> {
    const dir = this.options.thumbsDir as string;
    const name = this.options.keys.thumbs;
    const h5 = path.join(dir, `${slideId}.h5`);
    if (existsSync(h5)) return thumbsFromArray((await readH5Arrays(h5, slideId, [name], name)).get(name) as HostArray, slideId, h5, name);
    // HDMIL keeps its 1.25× thumbnails as uint8 [N, 16, 16, 4] tensors in <slide_id>.pt.
    const pt = path.join(dir, `${slideId}.pt`);
    if (existsSync(pt)) return thumbsFromArray(await readPtArray(pt, slideId, name), slideId, pt, name);
    const npy = path.join(dir, `${slideId}.npy`);
    return thumbsFromArray(await readNpyArray(npy, slideId), slideId, npy, 'thumbs');
  }

  /** CLAM pt_files hold features only; coordinates may come from a coordsDir of <slide_id>.npy. */
  private async withSideCoords(bag: BagData, slideId: string): Promise<BagData> {
    if (bag.coords !== undefined || this.options.coordsDir === undefined) return bag;
    const file = path.join(this.options.coordsDir, `${slideId}.npy`);
    const checked = assembleBag(slideId, file, { shape: [bag.n, bag.d], data: bag.features }, await readNpyArray(file, slideId), undefined, this.options.keys);
    return checked.coords === undefined ? bag : { ...bag, coords: checked.coords };
  }

  close(): Promise<void> {
    this.cache.clear();
    return Promise.resolve();
  }
}

/**
 * Opens a feature folder: reads the slide table (label map declared or inferred), then takes D from the
 * first slide whose file loads (bad slides are left for validation to report or skip).
 */
export async function openFeatureFolder(options: FeatureFolderOptions, ctx: DatasetContext): Promise<FeatureFolderSource> {
  const resolved: FeatureFolderOptions = {
    ...options,
    slideTable: path.resolve(ctx.baseDir, options.slideTable),
    featuresDir: path.resolve(ctx.baseDir, options.featuresDir),
    ...(options.thumbsDir === undefined ? {} : { thumbsDir: path.resolve(ctx.baseDir, options.thumbsDir) }),
    ...(options.coordsDir === undefined ? {} : { coordsDir: path.resolve(ctx.baseDir, options.coordsDir) }),
  };
  if (!existsSync(resolved.featuresDir)) {
    throw new DataError('missing-file', 'features folder not found.', { where: { file: resolved.featuresDir, key: 'data.dataset.featuresDir' }, hint: 'Point featuresDir at the folder of per-slide feature files (CLAM: h5_files/).' });
  }
  const table = await readSlideTable(resolved.slideTable, {
    columns: resolved.columns, logger: ctx.logger, ...(ctx.labelMap === undefined ? {} : { labels: ctx.labelMap }), ...(ctx.allowUnlabelled ? { allowUnlabelled: true } : {}),
  });
  const source = new FeatureFolderSource(table.slides, table.classNames, resolved, ctx.cacheBytes ?? DEFAULT_CACHE_BYTES, table.labelled);
  // D is the most common width among the first few readable slides, so one odd file cannot set it.
  const widths = new Map<number, number>();
  let firstError: unknown;
  for (const slide of table.slides) {
    try {
      const d = (await source.load(slide.slideId)).d;
      widths.set(d, (widths.get(d) ?? 0) + 1);
    } catch (error) {
      if (!(error instanceof DataError)) throw error;
      firstError ??= error;
    }
    if ([...widths.values()].reduce((a, b) => a + b, 0) >= 5) break;
  }
  if (widths.size === 0) throw new DataError('no-readable-slides', `none of the ${table.slides.length} slides could be read.`, { where: { file: resolved.featuresDir }, hint: 'The cause below is the first failure.', cause: firstError });
  source.featureDim = [...widths.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0] as number;
  return source;
}

/** Options shared by the feature-folder dataset plugins (features-h5, features-dir). */
export const FeatureFolderBaseOptions = z.strictObject({
  slideTable: z.string().min(1).describe('slide-table CSV (slide_id, case_id, label, + metadata columns); relative to the experiment file'),
  featuresDir: z.string().min(1).describe('folder of per-slide feature files named <slide_id><ext> (CLAM: h5_files/, TRIDENT: features_<encoder>/)'),
  featuresKey: z.string().min(1).default('features').describe('dataset/tensor name of the [N, D] features'),
  coordsKey: z.string().min(1).default('coords').describe('dataset/tensor name of the [N, 2] patch coordinates'),
  thumbsKey: z.string().min(1).default('thumbs').describe('dataset/tensor name of the [N, 16, 16, 3] uint8 thumbnails'),
  thumbs: z.boolean().default(true).describe('load thumbnails when the files (or thumbsDir) have them'),
  thumbsDir: z.string().min(1).optional().describe('side folder of <slide_id>.h5 / .pt / .npy thumbnails, when not stored beside the features (HDMIL: 1.25x_img_pt/)'),
  slideColumn: z.string().min(1).default('slide_id').describe('slide-table column of slide ids'),
  caseColumn: z.string().min(1).default('case_id').describe('slide-table column of patient/case ids (splits group by it)'),
  labelColumn: z.string().min(1).default('label').describe('slide-table column of labels'),
});
export type FeatureFolderBaseOptions = z.output<typeof FeatureFolderBaseOptions>;

/** Plugin options → source options. */
export function featureFolderOptions(options: FeatureFolderBaseOptions & { format: FeatureFormat | 'auto'; coordsDir?: string | undefined }): FeatureFolderOptions {
  return {
    slideTable: options.slideTable,
    featuresDir: options.featuresDir,
    format: options.format,
    keys: { features: options.featuresKey, coords: options.coordsKey, thumbs: options.thumbsKey },
    columns: { slide: options.slideColumn, case: options.caseColumn, label: options.labelColumn },
    thumbs: options.thumbs,
    ...(options.thumbsDir === undefined ? {} : { thumbsDir: options.thumbsDir }),
    ...(options.coordsDir === undefined ? {} : { coordsDir: options.coordsDir }),
  };
}
