// Memory the slide decoders free goes back to glibc's malloc, not to the system. libvips (sharp) decodes tiles on
// libuv's worker threads, each with its own malloc arena; patch after patch those arenas fragment, and glibc only
// gives memory back from the top of an arena, so RSS creeps up with the number of patches read although nothing
// is kept (docs/slides.md#memory-while-extracting). `malloc_trim(0)` walks every arena and returns its free pages
// to the system; extraction calls it after each batch. Other C libraries (musl, macOS) are left alone.
import { importKoffi, type KoffiFunction } from '../runtime/koffi.js';

/** Returns freed native memory to the system; true when glibc released some. */
export type NativeHeapTrim = () => boolean;

let trimmer: Promise<NativeHeapTrim | undefined> | undefined;

function usesGlibc(): boolean {
  if (process.platform !== 'linux') return false;
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return typeof header?.glibcVersionRuntime === 'string';
}

async function loadTrimmer(): Promise<NativeHeapTrim | undefined> {
  if (!usesGlibc()) return undefined;
  try {
    const koffi = await importKoffi();
    const mallocTrim: KoffiFunction = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)');
    return () => mallocTrim(0) === 1;
  } catch {
    // No FFI on this machine (koffi missing or libc not loadable): memory is only less tidy, nothing is wrong.
    return undefined;
  }
}

/** glibc's malloc_trim, or undefined where there is no glibc (loaded once per process). */
export function nativeHeapTrimmer(): Promise<NativeHeapTrim | undefined> {
  trimmer ??= loadTrimmer();
  return trimmer;
}
