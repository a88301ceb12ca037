// Pyramidal TIFF (generic tiled TIFF and Aperio .svs) read through sharp/libvips, without OpenSlide: the
// directory layout comes from tiff-file.ts, pixels from `sharp(file, { page }).extract(...)`, which decodes
// only the tiles under the region. Level coordinates are level-0 coordinates divided by the downsample and
// rounded to the nearest level pixel (OpenSlide interpolates sub-pixel offsets instead; both give identical
// pixels whenever x and y divided by the downsample are whole numbers, e.g. patch grids of the level).
import { existsSync } from 'node:fs';
import sharp from 'sharp';
import { DataError } from '../errors.js';
import { checkRegion, levelsFromSizes, parseAperioDescription, positiveNumber, whiteImage, type RegionRequest, type RgbImage, type SlideLevel, type SlideProperties, type SlideReader } from './reader.js';
import { readTiffLayout, TiffFormatError, type TiffDirectory } from './tiff-file.js';

/** Aperio marks associated images by the first word of the description's second line. */
function aperioAssociatedName(directory: TiffDirectory, isSecond: boolean): string | undefined {
  const second = directory.description?.split('\n')[1]?.trim().split(' ')[0];
  if (second === 'label' || second === 'macro') return second;
  return isSecond ? 'thumbnail' : undefined;
}

export class TiffSlideReader implements SlideReader {
  private closed = false;

  private constructor(
    readonly file: string,
    readonly levels: readonly SlideLevel[],
    readonly properties: SlideProperties,
    private readonly levelPages: readonly number[],
    private readonly associatedPages: ReadonlyMap<string, number>,
  ) {}

  get associatedImages(): readonly string[] {
    return [...this.associatedPages.keys()];
  }

  static async open(file: string): Promise<TiffSlideReader> {
    if (!existsSync(file)) throw new DataError('missing-file', 'slide file not found.', { where: { file }, hint: 'Check the slide path (slide tables give it relative to the table).' });
    let directories: readonly TiffDirectory[];
    try {
      directories = (await readTiffLayout(file)).directories;
    } catch (error) {
      if (!(error instanceof TiffFormatError)) throw error;
      throw new DataError('unsupported-slide', `cannot read the file as a TIFF: ${error.message}.`, { where: { file }, hint: 'The "tiff" slide reader reads pyramidal (tiled) TIFF and Aperio .svs files; use the "openslide" reader for other formats.' });
    }
    const first = directories[0];
    const aperio = first?.description?.startsWith('Aperio') === true;
    const tiled = directories.filter((d) => d.tileWidth !== undefined && d.tileHeight !== undefined && d.subfileType !== 4);
    if (first === undefined || tiled.length === 0 || tiled[0] !== first) {
      throw new DataError('unsupported-slide', 'the TIFF has no tiled full-resolution first image, so it is not a pyramidal slide.', {
        where: { file },
        hint: 'Write slides as tiled pyramids (vips tiffsave --tile --pyramid, or `milkit data slides`), or use the "openslide" reader.',
      });
    }
    // Levels: tiled directories, largest first, each no larger than the one before (a stray tiled image is ignored).
    const levelDirs: TiffDirectory[] = [];
    for (const d of tiled) {
      const previous = levelDirs[levelDirs.length - 1];
      if (previous === undefined || (d.width <= previous.width && d.height <= previous.height)) levelDirs.push(d);
    }
    const associated = new Map<string, number>();
    if (aperio) {
      for (const d of directories) {
        if (d.tileWidth !== undefined) continue;
        const name = aperioAssociatedName(d, d.index === 1);
        if (name !== undefined && !associated.has(name)) associated.set(name, d.index);
      }
    }
    const levels = levelsFromSizes(levelDirs);
    const all: Record<string, string> = { 'openslide.vendor': aperio ? 'aperio' : 'generic-tiff', 'openslide.level-count': String(levels.length) };
    levels.forEach((level, i) => {
      all[`openslide.level[${i}].width`] = String(level.width);
      all[`openslide.level[${i}].height`] = String(level.height);
      all[`openslide.level[${i}].downsample`] = String(level.downsample);
    });
    let mpp: number | undefined;
    let magnification: number | undefined;
    if (aperio) {
      const fields = parseAperioDescription(first.description ?? '');
      for (const [key, value] of Object.entries(fields)) all[`aperio.${key}`] = value;
      mpp = positiveNumber(fields['MPP']);
      magnification = positiveNumber(fields['AppMag']);
      if (mpp !== undefined) all['openslide.mpp-x'] = all['openslide.mpp-y'] = fields['MPP'] as string;
      if (magnification !== undefined) all['openslide.objective-power'] = fields['AppMag'] as string;
    }
    const properties: SlideProperties = { vendor: all['openslide.vendor'], objectivePower: magnification, mppX: mpp, mppY: mpp, all };
    return new TiffSlideReader(file, levels, properties, levelDirs.map((d) => d.index), associated);
  }

  async readRegion(request: RegionRequest): Promise<RgbImage> {
    this.checkOpen();
    checkRegion(this.file, this.levels, request);
    const level = this.levels[request.level] as SlideLevel;
    const left = Math.round(request.x / level.downsample);
    const top = Math.round(request.y / level.downsample);
    const out = whiteImage(request.width, request.height);
    // The part of the request inside the level; the rest stays white.
    const x0 = Math.max(0, left);
    const y0 = Math.max(0, top);
    const x1 = Math.min(level.width, left + request.width);
    const y1 = Math.min(level.height, top + request.height);
    if (x1 <= x0 || y1 <= y0) return out;
    const pixels = await this.decode(this.levelPages[request.level] as number, { left: x0, top: y0, width: x1 - x0, height: y1 - y0 });
    const rowBytes = (x1 - x0) * 3;
    for (let row = 0; row < y1 - y0; row += 1) {
      out.data.set(pixels.subarray(row * rowBytes, (row + 1) * rowBytes), ((y0 - top + row) * request.width + (x0 - left)) * 3);
    }
    return out;
  }

  async readAssociatedImage(name: string): Promise<RgbImage> {
    this.checkOpen();
    const page = this.associatedPages.get(name);
    if (page === undefined) {
      throw new DataError('missing-associated-image', `no associated image "${name}" (the slide has: ${this.associatedImages.join(', ') || 'none'}).`, { where: { file: this.file } });
    }
    const { data, info } = await sharp(this.file, { page, limitInputPixels: false }).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  }

  private async decode(page: number, area: { left: number; top: number; width: number; height: number }): Promise<Uint8Array> {
    try {
      const { data } = await sharp(this.file, { page, limitInputPixels: false, sequentialRead: false })
        .extract(area)
        .removeAlpha()
        .toColourspace('srgb')
        .raw()
        .toBuffer({ resolveWithObject: true });
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    } catch (error) {
      throw new DataError('unreadable-slide', `cannot decode page ${page} of the TIFF: ${error instanceof Error ? error.message : String(error)}.`, { where: { file: this.file }, hint: 'The file may be truncated or damaged; re-copy it.', cause: error });
    }
  }

  /**
   * libvips keeps recently used loaders, and with them the file open, in its operation cache; trimming the cache's
   * open-file allowance to zero and restoring it drops them, so a closed slide holds no descriptor.
   */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      const allowed = sharp.cache().files.max;
      sharp.cache({ files: 0 });
      sharp.cache({ files: allowed });
    }
    return Promise.resolve();
  }

  private checkOpen(): void {
    if (this.closed) throw new DataError('slide-closed', 'the slide reader was closed.', { where: { file: this.file } });
  }
}
