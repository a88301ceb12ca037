// Memory trace of one slide's extraction (docs/slides.md#memory-while-extracting): runs the same steps as `milkit extract` — tissue
// detection, CLAM's grid, the read/embed loop, thumbnails — with color-texture and the tiff reader, and prints the
// process's resident memory (VmRSS), V8's heap and the memory held outside it (external, array buffers) every
// `--every` patches, as CSV on stdout. Usage:
//   node --conditions=milkit-source --import tsx test/bench/extract-memory-trace.ts SLIDE.svs [--every 256] [--limit N] [--trim]
// (--trim returns the allocator's free memory to the system after every batch, to tell fragmentation from a leak).
import { readFileSync } from 'node:fs';
import { register } from 'node:module';
import { silentLogger } from '../../src/core/logger.js';
import { TiffSlideReader } from '../../src/core/slides/tiff-reader.js';
import type { TissueDetector } from '../../src/core/slides/tissue.js';
import { tissuePatchGrid } from '../../src/core/slides/patch-grid.js';
import { readPatchThumbnails } from '../../src/core/slides/patch-thumbnails.js';
import { embedPatches, patchGeometry } from '../../src/core/extract/pipeline.js';
import { createFeatureExtractor } from '../../src/testing/contracts/feature-extractor.js';
import { parseOptions } from '../../src/testing/contracts/shared.js';
import { builtinRegistry, REPO_ROOT } from '../contracts/builtins.js';

register('../../bin/source-conditions.mjs', import.meta.url);

const [file, ...rest] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: extract-memory-trace.ts SLIDE [--every N] [--limit N]');
const flag = (name: string, fallback: number): number => {
  const at = rest.indexOf(name);
  return at >= 0 ? Number(rest[at + 1]) : fallback;
};
const every = flag('--every', 256);
const limit = flag('--limit', Number.POSITIVE_INFINITY);

// glibc's own account of the native heap over all malloc arenas: bytes in use and bytes freed but kept by the
// allocator (fragmentation), which RSS includes and process.memoryUsage() does not see.
interface GlibcHeap { readonly inUse: number; readonly freeKept: number; readonly mmapped: number }
interface KoffiStructs {
  load(path: string): { func(name: string, result: unknown, args: unknown[]): (...args: unknown[]) => unknown };
  struct(name: string, fields: Record<string, string>): unknown;
}
const koffi = ((await import('koffi')) as { default: KoffiStructs }).default;
const libc = koffi.load('libc.so.6');
const MallInfo2 = koffi.struct('mallinfo2', { arena: 'size_t', ordblks: 'size_t', smblks: 'size_t', hblks: 'size_t', hblkhd: 'size_t', usmblks: 'size_t', fsmblks: 'size_t', uordblks: 'size_t', fordblks: 'size_t', keepcost: 'size_t' });
const mallinfo2 = libc.func('mallinfo2', MallInfo2, []);
const mallocTrim = libc.func('malloc_trim', 'int', ['size_t']);
function glibcHeap(): GlibcHeap {
  const info = mallinfo2() as Record<string, number | bigint>;
  return { inUse: Number(info.uordblks), freeKept: Number(info.fordblks), mmapped: Number(info.hblkhd) };
}
const trim = rest.includes('--trim');

const started = performance.now();
function vm(field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}
function sample(stage: string, done: number): void {
  const m = process.memoryUsage();
  const mb = (b: number): string => (b / 1048576).toFixed(1);
  const heap = glibcHeap();
  console.log([stage, ((performance.now() - started) / 1000).toFixed(1), done, vm('VmRSS').toFixed(1), vm('VmHWM').toFixed(1), mb(m.heapUsed), mb(m.external), mb(m.arrayBuffers), mb(heap.inUse), mb(heap.freeKept), mb(heap.mmapped)].join(','));
}

console.log('stage,seconds,patches,rss_mb,peak_rss_mb,heap_mb,external_mb,array_buffers_mb,malloc_in_use_mb,malloc_free_kept_mb,malloc_mmapped_mb');
sample('start', 0);
const registry = builtinRegistry();
const extractor = await createFeatureExtractor(await registry.get('feature-extractor', 'color-texture'), {}, REPO_ROOT);
// The `clam` tissue detector with the options `milkit extract` gives it by default.
const clam = await registry.get('tissue-detector', 'clam');
const detector = (clam.create as (options: unknown, ctx: unknown) => TissueDetector)(parseOptions(clam, {}), { logger: silentLogger });
const reader = await TiffSlideReader.open(file);
const geometry = patchGeometry(reader, { patchSize: 256, magnification: 20, thumbs: true });
const tissue = await detector.detect(reader);
const base = reader.levels[0] as { width: number; height: number };
const all = tissuePatchGrid(tissue, { patchSize: geometry.patchSizeLevel0, step: geometry.patchSizeLevel0, width: base.width, height: base.height });
const coords = all.subarray(0, Math.min(all.length, limit * 2));
sample('tissue', 0);
let next = every;
await embedPatches(reader, coords, geometry, extractor, (done) => {
  if (trim) mallocTrim(0);
  if (done >= next) {
    sample('embed', done);
    next = done + every;
  }
});
sample('embedded', coords.length / 2);
await readPatchThumbnails(reader, coords, { patchSize: geometry.patchSizeLevel0, side: 16 });
sample('thumbs', coords.length / 2);
await reader.close();
silentLogger.info('done');
