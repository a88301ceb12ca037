import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isPtTensor, parsePt, PtDict, ptHostArray, readPt, readPtBag } from '../../../src/core/data/pt-reader.js';
import { asyncErrorText, errorText } from './error-text.js';

const FIXTURES = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../reference/fixtures/pt');
const fixture = (name: string): string => path.join(FIXTURES, name);

/** The closed formulas of test/reference/make_pt_fixtures.py. */
function features(n: number, d: number): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from({ length: d }, (_, j) => (((i * 7919 + j * 104729) % 2001) - 1000) / 64));
}
function coords(n: number): number[] {
  return Array.from({ length: n }, (_, i) => [256 * (i % 5), 256 * Math.floor(i / 5)]).flat();
}
function thumbs(n: number, channels: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i += 1) for (let y = 0; y < 16; y += 1) for (let x = 0; x < 16; x += 1) for (let c = 0; c < channels; c += 1) out.push((i * 31 + y * 7 + x * 3 + c * 50) % 256);
  return out;
}

async function tensor(name: string) {
  const value = await readPt(fixture(name));
  if (!isPtTensor(value)) throw new Error(`${name} is not a tensor`);
  return value;
}

describe('core/data/pt-reader', () => {
  it('reads a CLAM pt_files float32 [N, D] tensor exactly', async () => {
    const t = await tensor('features.pt');
    expect(t.dtype).toBe('F32');
    expect(t.shape).toEqual([6, 32]);
    expect(Array.from(ptHostArray(t).data as Float32Array)).toEqual(features(6, 32).flat());
  });

  it('widens float16 exactly', async () => {
    const t = await tensor('half.pt');
    expect(t.dtype).toBe('F16');
    expect(Array.from(ptHostArray(t).data as Float32Array)).toEqual(features(3, 16).flat());
  });

  it('applies the storage offset and strides of a non-contiguous view', async () => {
    const t = await tensor('view.pt');
    const base = features(12, 32);
    // view = base[1:, 1::2].T  → shape [16, 11], element (r, c) = base[1 + c][1 + 2r]
    const expected = Array.from({ length: 16 }, (_, r) => Array.from({ length: 11 }, (_, c) => (base[1 + c] as number[])[1 + 2 * r] as number)).flat();
    expect(t.shape).toEqual([16, 11]);
    expect(Array.from(t.data as Float32Array)).toEqual(expected);
  });

  it('reads dicts with non-tensor values, OrderedDicts and tuples, keeping key order', async () => {
    const dict = await readPt(fixture('dict.pt'));
    expect(dict).toBeInstanceOf(PtDict);
    const d = dict as PtDict;
    expect([...d.entries.keys()]).toEqual(['features', 'coords', 'note', 'n']);
    expect(d.get('note')).toBe('synthetic');
    expect(d.get('n')).toBe(7);
    const c = d.get('coords');
    expect(isPtTensor(c) && c.dtype).toBe('I64');
    expect(isPtTensor(c) && Array.from(c.data as BigInt64Array, Number)).toEqual(coords(7));

    const ordered = (await readPt(fixture('ordered.pt'))) as PtDict;
    expect([...ordered.entries.keys()]).toEqual(['features', 'thumbs']);
    const th = ordered.get('thumbs');
    expect(isPtTensor(th) && th.shape).toEqual([5, 16, 16, 4]);
    expect(isPtTensor(th) && Array.from(th.data as Uint8Array)).toEqual(thumbs(5, 4));

    const tuple = await readPt(fixture('tuple.pt'));
    expect(Array.isArray(tuple) && tuple.length).toBe(2);
    const [f, k] = tuple as [unknown, unknown];
    expect(isPtTensor(f as never) && Array.from((f as { data: Float32Array }).data)).toEqual(features(4, 8).flat());
    expect(Array.from((k as { data: BigInt64Array }).data, Number)).toEqual(coords(4));
  });

  it('reads pickle protocol 4 (frames, memoize, stack globals)', async () => {
    const bag = await readPtBag(fixture('protocol4.pt'), 'p4');
    expect(Array.from(bag.features)).toEqual(features(3, 8).flat());
  });

  it('resolves two tensors that share one storage', async () => {
    const d = (await readPt(fixture('shared.pt'))) as PtDict;
    const head = d.get('head');
    expect(isPtTensor(head) && head.shape).toEqual([2, 16]);
    expect(isPtTensor(head) && Array.from(head.data as Float32Array)).toEqual(features(2, 16).flat());
  });

  it('assembles bags from a bare tensor and from a dict with coords and RGBA thumbnails', async () => {
    const bare = await readPtBag(fixture('features.pt'), 's1');
    expect([bare.n, bare.d, bare.coords]).toEqual([6, 32, undefined]);
    const withCoords = await readPtBag(fixture('dict.pt'), 's2');
    expect(Array.from(withCoords.coords ?? [])).toEqual(coords(7));
    const withThumbs = await readPtBag(fixture('ordered.pt'), 's3');
    expect(Array.from(withThumbs.thumbs ?? [])).toEqual(thumbs(5, 3));
  });

  it.each([
    ['hostile-system.pt', 'refused global "posix.system"'],
    ['hostile-eval.pt', 'refused global "__builtin__.eval"'], // protocol 2 spells builtins the Python 2 way,
    ['hostile-reduce.pt', 'REDUCE of something other than _rebuild_tensor_v2 or OrderedDict'],
  ])('refuses %s without running it', async (name, what) => {
    const text = await asyncErrorText(() => readPt(fixture(name)));
    expect(text).toContain('DataError[unsafe-pickle]');
    expect(text).toContain(fixture(name));
    expect(text).toContain(what);
  });

  it('pins the refused-global message', async () => {
    expect(await asyncErrorText(() => readPtBag(fixture('hostile-eval.pt'), 'evil'))).toBe(
      `DataError[unsafe-pickle] ${fixture('hostile-eval.pt')}: slide "evil": cannot read the .pt file: refused global "__builtin__.eval": a tensors-only .pt file references torch._utils._rebuild_tensor_v2, torch.*Storage and collections.OrderedDict only, and milkit never runs other code from a pickle. Save plain tensors (torch.save(tensor) or a dict of tensors); to convert a file you trust, load it in Python and re-save its tensors.`,
    );
  });

  it('explains the legacy format, truncation, a missing file and a missing key', async () => {
    expect(await asyncErrorText(() => readPt(fixture('legacy.pt')))).toContain('DataError[legacy-pt-format]');
    const bytes = new Uint8Array(readFileSync(fixture('features.pt')));
    expect(errorText(() => parsePt(bytes.subarray(0, bytes.length - 40), 'cut.pt'))).toContain('DataError[unreadable-file] cut.pt: cannot read the .pt file');
    expect(await asyncErrorText(() => readPtBag(fixture('absent.pt'), 'gone'))).toContain('DataError[missing-file]');
    expect(await asyncErrorText(() => readPtBag(fixture('ordered.pt'), 'x', { features: 'feats', coords: 'coords', thumbs: 'thumbs' }))).toContain('tensor "feats" not found (file has: features, thumbs)');
  });
});
