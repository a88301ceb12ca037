// A folder of small h5 feature files (features, coords with CLAM's patch attributes, optional extractor
// attributes) and its slides.csv, for predict tests.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Rng } from '../../src/core/runtime/random.js';

/** Feature width of the cohorts. */
export const D = 6;

export interface H5CohortOptions {
  /** Slide ids (default s<seed>-<i>). */
  readonly ids?: readonly string[];
  /** Level-0 top-left corners of the patches of every slide (default a 3 × 2 grid of 256 px). */
  readonly coords?: Float32Array;
}

/** Label 1 slides have their first feature shifted by +2 on every instance (easy to learn). */
export async function writeH5Cohort(dir: string, seed: number, extractor: string | undefined, slides = 10, options: H5CohortOptions = {}): Promise<void> {
  const h5 = (await import('h5wasm/node')).default;
  await h5.ready;
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(seed);
  const rows = ['slide_id,case_id,label'];
  for (let s = 0; s < slides; s += 1) {
    const label = s % 2;
    const grid = options.coords ?? Float32Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? (Math.floor(i / 2) % 3) * 256 : Math.floor(i / 6) * 256));
    const n = grid.length / 2;
    const id = options.ids?.[s] ?? `s${seed}-${s}`;
    const features = rng.uniformArray(n * D, -1, 1).map((v, i) => (label === 1 && i % D === 0 ? v + 2 : v));
    const coords = grid;
    const f = new h5.File(path.join(dir, `${id}.h5`), 'w');
    f.create_dataset({ name: 'features', data: features, shape: [n, D] });
    f.create_dataset({ name: 'coords', data: coords, shape: [n, 2] });
    const coordsNode = f.get('coords') as unknown as { create_attribute(name: string, value: number): void };
    coordsNode.create_attribute('patch_size', 256);
    coordsNode.create_attribute('patch_level', 0);
    if (extractor !== undefined) {
      f.create_attribute('extractor', extractor);
      f.create_attribute('extractor_input_size', 224);
    }
    f.close();
    rows.push(`${id},c-${id},${label === 1 ? 'tumor' : 'normal'}`);
  }
  writeFileSync(path.join(dir, 'slides.csv'), `${rows.join('\n')}\n`);
}

