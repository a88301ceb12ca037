// Writes any BagSource to disk in CLAM's layout (h5_files/<slide_id>.h5 with (1, D)-chunked `features`,
// `coords`, optional `thumbs` and `instance_labels`, plus a slide-table CSV), so synthetic benchmarks
// exercise exactly the file path real cohorts take, and can be read by CLAM/TRIDENT-based tools.
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { storageError, writeFileDurably } from '../io/disk.js';
import type { BagData, BagSource } from '../../registry/contracts/data.js';
import type { Logger } from '../logger.js';
import { INSTANCE_LABELS_KEY } from './readers.js';
import { SYNTHETIC_PATCH_SIZE, THUMB_SIDE } from './synthetic.js';


/** Writes one bag as a CLAM-layout h5 file: features float32 [N, D] in (1, D) chunks with an unlimited first axis. */
export async function writeH5Bag(file: string, bag: BagData): Promise<void> {
  const h5 = (await import('h5wasm/node')).default;
  await h5.ready;
  // Written beside the target and renamed, so an interrupted export never leaves a truncated file behind.
  const partial = `${file}.partial`;
  const f = new h5.File(partial, 'w');
  try {
    const rows = Math.max(bag.n, 1);
    f.create_dataset({ name: 'features', data: bag.features, shape: [bag.n, bag.d], dtype: '<f', maxshape: [null, bag.d], chunks: [1, bag.d] });
    if (bag.coords !== undefined) {
      f.create_dataset({ name: 'coords', data: Int32Array.from(bag.coords), shape: [bag.n, 2], dtype: '<i', maxshape: [null, 2], chunks: [1, 2] });
      const coords = f.get('coords') as { create_attribute(name: string, data: number): void };
      coords.create_attribute('patch_level', 0);
      coords.create_attribute('patch_size', SYNTHETIC_PATCH_SIZE);
    }
    if (bag.thumbs !== undefined) {
      f.create_dataset({ name: 'thumbs', data: bag.thumbs, shape: [bag.n, THUMB_SIDE, THUMB_SIDE, 3], dtype: '|B', chunks: [Math.min(rows, 256), THUMB_SIDE, THUMB_SIDE, 3] });
    }
    if (bag.instanceLabels !== undefined) f.create_dataset({ name: INSTANCE_LABELS_KEY, data: bag.instanceLabels, shape: [bag.n], dtype: '|B' });
  } finally {
    f.close();
  }
  await rename(partial, file).catch((error: unknown) => {
    throw storageError(error, file, 'write the feature file');
  });
}

export interface ExportResult {
  readonly slideTable: string;
  readonly featuresDir: string;
  readonly slides: number;
}

/**
 * Exports every slide of `source`: `<outDir>/h5_files/<slide_id>.h5` and `<outDir>/slides.csv` with
 * slide_id, case_id, label (the class name) and the metadata columns.
 */
export async function exportDataset(source: BagSource, outDir: string, opts: { logger: Logger; thumbs?: boolean }): Promise<ExportResult> {
  const featuresDir = path.join(outDir, 'h5_files');
  await mkdir(featuresDir, { recursive: true });
  let done = 0;
  for (const slide of source.slides) {
    const bag = await source.load(slide.slideId);
    const { thumbs, ...rest } = bag;
    await writeH5Bag(path.join(featuresDir, `${slide.slideId}.h5`), opts.thumbs === false || thumbs === undefined ? rest : { ...rest, thumbs });
    done += 1;
    if (done % 50 === 0) opts.logger.info(`exported ${done}/${source.slides.length} slides`);
  }
  const metaColumns = [...new Set(source.slides.flatMap((s) => Object.keys(s.meta)))];
  const records = [['slide_id', 'case_id', 'label', ...metaColumns], ...source.slides.map((s) => [s.slideId, s.caseId, s.labelName, ...metaColumns.map((c) => s.meta[c] ?? '')])];
  const slideTable = path.join(outDir, 'slides.csv');
  await writeFileDurably(slideTable, stringify(records), { action: 'write the slide table' });
  return { slideTable, featuresDir, slides: done };
}
