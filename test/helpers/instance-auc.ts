// Instance-level AUC of a model's per-patch scores against the planted tumour masks of synthetic slides, read from
// the `<slide>.scores.csv` files that `milkit infer --heatmaps` writes: a patch is tumour when more than half of its
// ground-truth mask pixels are (masks/<id>_tumour.png, written at `maskDownsample`).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import sharp from 'sharp';
import { expect } from 'vitest';
import { binaryAuc } from '../../src/core/eval/classification.js';

export interface PlantedTumourScores {
  readonly slidesDir: string;
  readonly heatmapsDir: string;
  readonly slideIds: readonly string[];
  readonly maskDownsample: number;
  /** Column of the scores CSV to rank by (`score`, or `score_<class>` for class-wise attention). */
  readonly scoreColumn: string;
}

/** The pooled instance AUC over the slides' patches; fails the test when a slide has too few patches or a class is missing. */
export async function plantedTumourAuc(options: PlantedTumourScores): Promise<number> {
  const tumour: boolean[] = [];
  const scores: number[] = [];
  for (const slideId of options.slideIds) {
    const mask = await sharp(path.join(options.slidesDir, 'masks', `${slideId}_tumour.png`)).greyscale().raw().toBuffer({ resolveWithObject: true });
    const rows = parseCsv(await readFile(path.join(options.heatmapsDir, `${slideId}.scores.csv`), 'utf8'), { columns: true }) as Array<Record<string, string>>;
    expect(rows.length).toBeGreaterThan(50);
    for (const row of rows) {
      const x = Number(row.x) / options.maskDownsample;
      const y = Number(row.y) / options.maskDownsample;
      const side = Number(row.patch_size) / options.maskDownsample;
      let marked = 0;
      for (let dy = 0; dy < side; dy += 1) for (let dx = 0; dx < side; dx += 1) marked += (mask.data[(y + dy) * mask.info.width + x + dx] as number) > 127 ? 1 : 0;
      tumour.push(marked * 2 > side * side);
      scores.push(Number(row[options.scoreColumn]));
    }
  }
  const positives = tumour.filter(Boolean).length;
  expect(positives).toBeGreaterThan(5);
  expect(positives).toBeLessThan(tumour.length);
  return binaryAuc(tumour, scores) as number;
}
