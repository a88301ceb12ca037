// dataset/features-dir over CLAM pt_files/ (bare tensors) with npy coordinates and HDMIL-style .pt thumbnails.
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dump } from 'npyjs';
import { describe, expect, it } from 'vitest';
import { builtinManifest } from '../../../plugins/index.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { Registry, type BagSource } from '../../../src/registry/index.js';
import { asyncErrorText } from './error-text.js';

const FIXTURES = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../reference/fixtures/pt');
const registry = new Registry(builtinManifest());

async function create(options: Record<string, unknown>, baseDir: string): Promise<BagSource> {
  const resolved = await registry.resolve('dataset', { name: 'features-dir', ...options }, { key: 'data.dataset' });
  return registry.create(resolved, { seed: 0, logger: new MemoryLogger(), baseDir });
}

describe('dataset/features-dir with .pt files', () => {
  it('reads pt_files/, coordinates from coordsDir and RGBA thumbnails from a .pt thumbsDir', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'milkit-pt-'));
    for (const sub of ['pt_files', 'coords', 'thumbs']) mkdirSync(path.join(dir, sub));
    copyFileSync(path.join(FIXTURES, 'features.pt'), path.join(dir, 'pt_files', 'a.pt'));
    copyFileSync(path.join(FIXTURES, 'ordered.pt'), path.join(dir, 'pt_files', 'b.pt'));
    // HDMIL 1.25x_img_pt layout: uint8 [5, 16, 16, 4], rows matching b's 5 feature rows.
    copyFileSync(path.join(FIXTURES, 'thumbs-rgba.pt'), path.join(dir, 'thumbs', 'b.pt'));
    const coords = Array.from({ length: 6 }, (_, i) => [i * 256, 512]).flat();
    writeFileSync(path.join(dir, 'coords', 'a.npy'), Buffer.from(dump(Float32Array.from(coords), [6, 2])));
    writeFileSync(path.join(dir, 'a.csv'), 'slide_id,case_id,label\na,c1,neg\n');
    writeFileSync(path.join(dir, 'b.csv'), 'slide_id,case_id,label\nb,c2,pos\n');

    const source = await create({ slideTable: 'a.csv', featuresDir: 'pt_files', format: 'pt', coordsDir: 'coords' }, dir);
    const a = await source.load('a');
    expect([source.featureDim, a.n, a.d]).toEqual([32, 6, 32]);
    expect(Array.from(a.coords ?? [])).toEqual(coords);
    expect(a.features[33]).toBe((((1 * 7919 + 1 * 104729) % 2001) - 1000) / 64);

    const withThumbs = await create({ slideTable: 'b.csv', featuresDir: 'pt_files', thumbsDir: 'thumbs' }, dir);
    const b = await withThumbs.load('b');
    expect([b.n, b.d]).toEqual([5, 16]);
    const expected: number[] = [];
    for (let i = 0; i < 5; i += 1) for (let y = 0; y < 16; y += 1) for (let x = 0; x < 16; x += 1) for (let c = 0; c < 3; c += 1) expected.push((i * 31 + y * 7 + x * 3 + c * 50) % 256);
    expect(Array.from(b.thumbs ?? [])).toEqual(expected);
  });

  it('auto-detects .pt and refuses a hostile file naming the slide', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'milkit-pt-'));
    mkdirSync(path.join(dir, 'feats'));
    copyFileSync(path.join(FIXTURES, 'features.pt'), path.join(dir, 'feats', 'good.pt'));
    copyFileSync(path.join(FIXTURES, 'hostile-system.pt'), path.join(dir, 'feats', 'evil.pt'));
    writeFileSync(path.join(dir, 'slides.csv'), 'slide_id,case_id,label\ngood,c1,neg\nevil,c2,pos\n');
    const source = await create({ slideTable: 'slides.csv', featuresDir: 'feats' }, dir);
    expect((await source.load('good')).n).toBe(6);
    const text = await asyncErrorText(() => source.load('evil'));
    expect(text).toContain('DataError[unsafe-pickle]');
    expect(text).toContain('slide "evil": cannot read the .pt file: refused global "posix.system"');
  });
});
