// `milkit extract` with real processes on generated slides (docs/slides.md#feature-extraction):
// - killed (SIGKILL) while slide 3 of 4 is extracted, then rerun: slides 1–2 are not redone, no half-written .h5
//   exists, and every file has the contents of an uninterrupted run's;
// - a corrupt slide among good ones: its error is in the process list, the others are extracted, exit code 4;
// - the files carry the extractor identity and patch geometry, and the features-h5 dataset reads them unchanged.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseCsv } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { writeSyntheticSlides } from '../../../src/core/slides/synthetic-slides.js';
import { readFeatureFileIdentity } from '../../../src/index.js';
import { readFeatureFileAttributes } from '../../../src/core/extract/feature-file.js';
import { builtinRegistry } from '../../contracts/builtins.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = path.join(REPO, 'bin/milkit.mjs');
// Small synthetic slides keep CLAM's steps but need a finer analysis level and a smaller minimum piece area.
const COMMON = ['--reader', 'tiff', '--detector-set', 'downsample=16', '--detector-set', 'minTissueArea=0.5', '--extractor-set', 'batchSize=8'];

interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly out: string;
}

function milkit(args: readonly string[], cwd: string): { done: Promise<Finished>; kill(): void } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, MILKIT_SOURCE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  return { done: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, out }))), kill: () => child.kill('SIGKILL') };
}

type Row = Record<'slide_id' | 'slide_file' | 'status' | 'patches' | 'seconds' | 'error', string>;
const processList = (out: string): Row[] => parseCsv(readFileSync(path.join(out, 'process_list.csv'), 'utf8'), { columns: true }) as Row[];

/** Datasets and attributes of a feature file (HDF5 object headers hold timestamps, so bytes are not compared). */
async function contents(file: string): Promise<Record<string, unknown>> {
  const h5 = (await import('h5wasm/node')).default;
  await h5.ready;
  const f = new h5.File(file, 'r');
  try {
    const out: Record<string, unknown> = {};
    for (const name of ['features', 'coords', 'thumbs']) {
      const ds = f.get(name) as { shape: number[]; value: ArrayLike<number>; attrs: Record<string, { value: unknown }> } | null;
      if (ds) out[name] = { shape: ds.shape, values: Array.from(ds.value), attrs: Object.fromEntries(Object.entries(ds.attrs).map(([k, v]) => [k, String(v.value)])) };
    }
    out.attrs = Object.fromEntries(Object.entries(f.attrs as unknown as Record<string, { value: unknown }>).map(([k, v]) => [k, ArrayBuffer.isView(v.value) ? Array.from(v.value as unknown as ArrayLike<number>) : v.value]));
    return out;
  } finally {
    f.close();
  }
}

let root = '';
let table = '';
const IDS = ['slide-a', 'slide-b', 'slide-c', 'slide-d'];

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'milkit-extract-'));
  const base = { slides: 3, seed: 3, tumourFraction: 0.5, format: 'svs' as const, quality: 80, tileSize: 256, mpp: 0.5, magnification: 20, maskDownsample: 64, logger: silentLogger };
  await writeSyntheticSlides({ ...base, outDir: path.join(root, 'small'), size: 2048 });
  // Slide 3 is larger, so the kill lands while it is being extracted.
  await writeSyntheticSlides({ ...base, outDir: path.join(root, 'large'), slides: 1, seed: 4, size: 6144 });
  const files = ['small/synthetic-000.svs', 'small/synthetic-001.svs', 'large/synthetic-000.svs', 'small/synthetic-002.svs'];
  table = path.join(root, 'slides.csv');
  await writeFile(table, `slide_id,slide_file\n${IDS.map((id, i) => `${id},${files[i]}`).join('\n')}\n`);
  // The uninterrupted run every other run is compared with.
  const reference = await milkit(['extract', table, '--out', path.join(root, 'reference'), ...COMMON], root).done;
  if (reference.code !== 0) throw new Error(`reference extraction failed:\n${reference.out}`);
}, 400_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('milkit extract', () => {
  it('resumes after a SIGKILL during slide 3 without redoing slides 1–2, leaving no partial .h5, matching an uninterrupted run', async () => {
    expect(processList(path.join(root, 'reference')).map((r) => r.status)).toEqual(['extracted', 'extracted', 'extracted', 'extracted']);

    const out = path.join(root, 'killed');
    const first = milkit(['extract', table, '--out', out, ...COMMON], root);
    let killed = false;
    const watch = (async () => {
      for (;;) {
        if (existsSync(path.join(out, 'process_list.csv'))) {
          const rows = processList(out);
          if (rows.filter((r) => r.status === 'extracted').length >= 2) {
            first.kill();
            killed = true;
            return;
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const stopped = await Promise.race([first.done, watch.then(() => first.done)]);
    expect(killed, stopped.out).toBe(true);
    expect(stopped.signal).toBe('SIGKILL');
    const h5Dir = path.join(out, 'h5_files');
    expect(readdirSync(h5Dir).filter((n) => n.endsWith('.h5')).sort(), 'the kill landed during slide 3').toEqual(['slide-a.h5', 'slide-b.h5']);
    const before = Object.fromEntries(['slide-a', 'slide-b'].map((id) => [id, statSync(path.join(h5Dir, `${id}.h5`)).mtimeMs]));

    const rerun = await milkit(['extract', table, '--out', out, ...COMMON], root).done;
    expect(rerun.code, rerun.out).toBe(0);
    expect(rerun.out).toContain('2 slide(s) already extracted');
    const rows = processList(out);
    expect(rows.map((r) => [r.slide_id, r.status])).toEqual([['slide-a', 'existing'], ['slide-b', 'existing'], ['slide-c', 'extracted'], ['slide-d', 'extracted']]);
    for (const id of ['slide-a', 'slide-b']) expect(statSync(path.join(h5Dir, `${id}.h5`)).mtimeMs, `${id} not rewritten`).toBe(before[id]);
    expect(readdirSync(h5Dir).sort(), 'only finished files, no temporaries').toEqual(IDS.map((id) => `${id}.h5`));
    for (const id of IDS) {
      expect(await contents(path.join(h5Dir, `${id}.h5`)), id).toEqual(await contents(path.join(root, 'reference', 'h5_files', `${id}.h5`)));
    }
    expect(Number(rows[2]?.patches)).toBeGreaterThan(Number(rows[0]?.patches));

    // --force redoes every slide.
    const forced = await milkit(['extract', table, '--out', out, '--force', ...COMMON], root).done;
    expect(forced.code, forced.out).toBe(0);
    expect(processList(out).map((r) => r.status)).toEqual(['extracted', 'extracted', 'extracted', 'extracted']);
  }, 300_000);

  it('records a corrupt slide in the process list, extracts the others and exits non-zero', async () => {
    const corrupt = path.join(root, 'corrupt.svs');
    await writeFile(corrupt, Buffer.from('II*\0this is not a slide'.repeat(50)));
    const mixed = path.join(root, 'mixed.csv');
    await writeFile(mixed, `slide_id,slide_file\nslide-a,small/synthetic-000.svs\nbroken,corrupt.svs\nslide-d,small/synthetic-002.svs\n`);
    const out = path.join(root, 'mixed');
    const run = await milkit(['extract', mixed, '--out', out, ...COMMON], root).done;
    expect(run.code, run.out).toBe(4);
    expect(run.out).toMatch(/1 of 3 slide\(s\) failed \(broken\); the others were extracted/);
    expect(run.out).not.toMatch(/\n\s+at /); // no stack trace without --debug
    const rows = processList(out);
    expect(rows.map((r) => [r.slide_id, r.status])).toEqual([['slide-a', 'extracted'], ['broken', 'failed'], ['slide-d', 'extracted']]);
    expect(rows[1]?.error).toContain('corrupt.svs');
    expect(readdirSync(path.join(out, 'h5_files')).sort()).toEqual(['slide-a.h5', 'slide-d.h5']);
  }, 120_000);

  it('runs slides in parallel local worker processes (job kind extract-slide) with the same files as a run in one process', async () => {
    const pair = path.join(root, 'pair.csv');
    await writeFile(pair, `slide_id,slide_file\nslide-a,small/synthetic-000.svs\nslide-b,small/synthetic-001.svs\n`);
    const out = path.join(root, 'parallel');
    const run = await milkit(['extract', pair, '--out', out, '--workers', '2', ...COMMON], root).done;
    expect(run.code, run.out).toBe(0);
    expect(processList(out).map((r) => [r.slide_id, r.status, r.patches])).toEqual(processList(path.join(root, 'reference')).slice(0, 2).map((r) => [r.slide_id, r.status, r.patches]));
    const manifests = readdirSync(path.join(out, '.extract')).filter((n) => n.startsWith('manifest-'));
    expect(JSON.parse(readFileSync(path.join(out, '.extract', manifests[0] as string), 'utf8'))).toMatchObject({ jobKind: 'extract-slide', jobs: [{ label: 'slide-a' }, { label: 'slide-b' }] });
    for (const id of ['slide-a', 'slide-b']) {
      expect(await contents(path.join(out, 'h5_files', `${id}.h5`)), id).toEqual(await contents(path.join(root, 'reference', 'h5_files', `${id}.h5`)));
    }
  }, 300_000);

  it('writes the extractor identity and patch geometry, and the features-h5 dataset reads the files unchanged', async () => {
    const file = path.join(root, 'reference', 'h5_files', 'slide-a.h5');
    expect(await readFeatureFileIdentity(file)).toEqual({
      name: 'feature-extractor/color-texture', modelSha256: '', inputSize: 256, dim: 49, normalisation: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    });
    const attributes = await readFeatureFileAttributes(file);
    expect([attributes.patchSizeLevel0, attributes.patchSize, attributes.readLevel, attributes.targetMagnification, attributes.targetMpp]).toEqual([256, 256, 0, 20, 0.5]);
    const labels = path.join(root, 'labels.csv');
    await writeFile(labels, `slide_id,case_id,label\n${IDS.map((id, i) => `${id},case-${i},${i % 2 === 0 ? 'normal' : 'tumour'}`).join('\n')}\n`);
    const registry = builtinRegistry();
    const resolved = await registry.resolve('dataset', { name: 'features-h5', slideTable: labels, featuresDir: path.join(root, 'reference', 'h5_files') }, { key: 'data.dataset' });
    const source = await registry.create(resolved, { seed: 0, logger: silentLogger, baseDir: root });
    try {
      const bag = await source.load('slide-a');
      const stored = (await contents(file)) as { features: { shape: number[]; values: number[] } };
      expect([bag.n, bag.d]).toEqual(stored.features.shape);
      expect(Array.from(bag.features)).toEqual(stored.features.values);
      expect(bag.thumbs?.length).toBe(bag.n * 16 * 16 * 3);
      expect(bag.coords?.length).toBe(bag.n * 2);
    } finally {
      await source.close?.();
    }
  }, 60_000);
});
