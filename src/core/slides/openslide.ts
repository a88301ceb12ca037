// OpenSlide (the system libopenslide.so.0, Debian package libopenslide0) through the koffi FFI: every format
// OpenSlide knows (Aperio .svs, generic tiled TIFF, Hamamatsu, MIRAX, ...). read_region returns pre-multiplied
// ARGB, which is composited on white here; coordinates are level-0 pixels, as in OpenSlide.
import { existsSync } from 'node:fs';
import { BackendError, DataError } from '../errors.js';
import { importKoffi, type KoffiFunction, type KoffiLibrary, type KoffiModule } from '../runtime/koffi.js';
import {
  checkRegion,
  positiveNumber,
  premultipliedArgbToRgb,
  type RegionRequest,
  type RgbImage,
  type SlideLevel,
  type SlideProperties,
  type SlideReader,
} from './reader.js';

/** Library names tried in order. */
export const OPENSLIDE_LIBRARIES: readonly string[] = ['libopenslide.so.0', 'libopenslide.so.1', 'libopenslide.so', 'libopenslide.0.dylib'];

type Handle = unknown;

interface OpenSlideApi {
  readonly version: string;
  readonly koffi: KoffiModule;
  open(file: string): Handle;
  getError(osr: Handle): string | null;
  levelCount(osr: Handle): number;
  levelDimensions(osr: Handle, level: number, width: number[], height: number[]): void;
  levelDownsample(osr: Handle, level: number): number;
  propertyNames(osr: Handle): unknown;
  propertyValue(osr: Handle, name: string): string | null;
  associatedNames(osr: Handle): unknown;
  associatedDimensions(osr: Handle, name: string, width: number[], height: number[]): void;
  readAssociated(osr: Handle, name: string, dest: Uint32Array): void;
  readRegion(osr: Handle, dest: Uint32Array, x: number, y: number, level: number, width: number, height: number): void;
  close(osr: Handle): void;
}

let api: Promise<OpenSlideApi> | undefined;

/** Loads libopenslide once; a missing library is a BackendError naming the Debian package. */
export function loadOpenSlide(libraries: readonly string[] = OPENSLIDE_LIBRARIES): Promise<OpenSlideApi> {
  if (libraries !== OPENSLIDE_LIBRARIES) return bind(libraries);
  api ??= bind(libraries);
  return api;
}

async function bind(libraries: readonly string[]): Promise<OpenSlideApi> {
  const koffi = await importKoffi();
  const failures: string[] = [];
  for (const name of libraries) {
    let lib: KoffiLibrary;
    try {
      lib = koffi.load(name);
    } catch (error) {
      failures.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    const f = (signature: string): KoffiFunction => lib.func(signature);
    const version = f('const char *openslide_get_version()');
    const getError = f('const char *openslide_get_error(void *osr)');
    const levelDimensions = f('void openslide_get_level_dimensions(void *osr, int32_t level, _Out_ int64_t *w, _Out_ int64_t *h)');
    const associatedDimensions = f('void openslide_get_associated_image_dimensions(void *osr, const char *name, _Out_ int64_t *w, _Out_ int64_t *h)');
    const readAssociated = f('void openslide_read_associated_image(void *osr, const char *name, _Out_ uint32_t *dest)');
    const readRegion = f('void openslide_read_region(void *osr, _Out_ uint32_t *dest, int64_t x, int64_t y, int32_t level, int64_t w, int64_t h)');
    const open = f('void *openslide_open(const char *filename)');
    const levelCount = f('int32_t openslide_get_level_count(void *osr)');
    const levelDownsample = f('double openslide_get_level_downsample(void *osr, int32_t level)');
    const propertyNames = f('void *openslide_get_property_names(void *osr)');
    const propertyValue = f('const char *openslide_get_property_value(void *osr, const char *name)');
    const associatedNames = f('void *openslide_get_associated_image_names(void *osr)');
    const close = f('void openslide_close(void *osr)');
    return {
      version: version() as string,
      koffi,
      open: (file) => open(file),
      getError: (osr) => getError(osr) as string | null,
      levelCount: (osr) => levelCount(osr) as number,
      levelDimensions: (osr, level, w, h) => void levelDimensions(osr, level, w, h),
      levelDownsample: (osr, level) => levelDownsample(osr, level) as number,
      propertyNames: (osr) => propertyNames(osr),
      propertyValue: (osr, name) => propertyValue(osr, name) as string | null,
      associatedNames: (osr) => associatedNames(osr),
      associatedDimensions: (osr, name, w, h) => void associatedDimensions(osr, name, w, h),
      readAssociated: (osr, name, dest) => void readAssociated(osr, name, dest),
      readRegion: (osr, dest, x, y, level, w, h) => void readRegion(osr, dest, x, y, level, w, h),
      close: (osr) => void close(osr),
    };
  }
  throw new BackendError('openslide-unavailable', `the OpenSlide library could not be loaded (${failures.join('; ')}).`, {
    hint: 'Install it with the Debian/Ubuntu package libopenslide0 (apt-get install libopenslide0), or use the slide reader "tiff" for pyramidal TIFF files.',
  });
}

/** A NULL-terminated `const char **` as strings. */
function stringList(koffi: KoffiModule, pointer: unknown): string[] {
  const out: string[] = [];
  if (pointer === null) return out;
  const width = koffi.sizeof('void *');
  for (let i = 0; ; i += 1) {
    const value = koffi.decode(pointer, i * width, 'const char *') as string | null;
    if (value === null) return out;
    out.push(value);
  }
}

export class OpenSlideReader implements SlideReader {
  private closed = false;

  private constructor(
    readonly file: string,
    private readonly lib: OpenSlideApi,
    private readonly osr: Handle,
    readonly levels: readonly SlideLevel[],
    readonly properties: SlideProperties,
    readonly associatedImages: readonly string[],
  ) {}

  /** Opens a slide; an unsupported or unreadable file is a DataError naming it. */
  static async open(file: string, libraries?: readonly string[]): Promise<OpenSlideReader> {
    if (!existsSync(file)) throw new DataError('missing-file', 'slide file not found.', { where: { file }, hint: 'Check the slide path (slide tables give it relative to the table).' });
    const lib = await loadOpenSlide(libraries);
    const osr = lib.open(file);
    if (osr === null) {
      throw new DataError('unsupported-slide', 'OpenSlide does not recognise this file format.', { where: { file }, hint: 'OpenSlide reads Aperio, Hamamatsu, Leica, MIRAX, Philips, Sakura, Trestle, Ventana and tiled TIFF files; convert others to a pyramidal TIFF.' });
    }
    const failure = lib.getError(osr);
    if (failure !== null) {
      lib.close(osr);
      throw new DataError('unreadable-slide', `OpenSlide cannot read the slide: ${failure}.`, { where: { file }, hint: 'The file may be truncated or damaged; re-copy it.' });
    }
    const levels: SlideLevel[] = [];
    for (let level = 0; level < lib.levelCount(osr); level += 1) {
      const w = [0];
      const h = [0];
      lib.levelDimensions(osr, level, w, h);
      levels.push({ width: Number(w[0]), height: Number(h[0]), downsample: lib.levelDownsample(osr, level) });
    }
    const all: Record<string, string> = {};
    for (const name of stringList(lib.koffi, lib.propertyNames(osr))) all[name] = lib.propertyValue(osr, name) ?? '';
    const properties: SlideProperties = {
      vendor: all['openslide.vendor'],
      objectivePower: positiveNumber(all['openslide.objective-power']),
      mppX: positiveNumber(all['openslide.mpp-x']),
      mppY: positiveNumber(all['openslide.mpp-y']),
      all,
    };
    return new OpenSlideReader(file, lib, osr, levels, properties, stringList(lib.koffi, lib.associatedNames(osr)));
  }

  private check(): void {
    if (this.closed) throw new DataError('slide-closed', 'the slide reader was closed.', { where: { file: this.file } });
    const failure = this.lib.getError(this.osr);
    if (failure !== null) throw new DataError('unreadable-slide', `OpenSlide failed reading the slide: ${failure}.`, { where: { file: this.file }, hint: 'The file may be damaged; re-copy it.' });
  }

  // async so that a bad request or a closed reader rejects the promise instead of throwing at the call.
  async readRegion(request: RegionRequest): Promise<RgbImage> {
    checkRegion(this.file, this.levels, request);
    this.check();
    const { x, y, level, width, height } = request;
    const argb = new Uint32Array(width * height);
    this.lib.readRegion(this.osr, argb, x, y, level, width, height);
    this.check();
    return premultipliedArgbToRgb(argb, width, height);
  }

  async readAssociatedImage(name: string): Promise<RgbImage> {
    this.check();
    if (!this.associatedImages.includes(name)) {
      throw new DataError('missing-associated-image', `no associated image "${name}" (the slide has: ${this.associatedImages.join(', ') || 'none'}).`, { where: { file: this.file } });
    }
    const w = [0];
    const h = [0];
    this.lib.associatedDimensions(this.osr, name, w, h);
    const width = Number(w[0]);
    const height = Number(h[0]);
    const argb = new Uint32Array(width * height);
    this.lib.readAssociated(this.osr, name, argb);
    this.check();
    return premultipliedArgbToRgb(argb, width, height);
  }

  close(): Promise<void> {
    if (!this.closed) this.lib.close(this.osr);
    this.closed = true;
    return Promise.resolve();
  }
}
