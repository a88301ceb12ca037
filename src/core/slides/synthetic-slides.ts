// Synthetic whole-slide images: pyramidal JPEG-tiled TIFFs (and Aperio-style .svs) painted from a SlideScene,
// plus ground-truth masks and a slide table. Level 0 is never held in memory: it is painted in full-width
// strips streamed into a deflated stripped TIFF, which libvips reads sequentially while writing the tiled
// JPEG pyramid, so memory is one strip plus libvips' buffers whatever the slide size (50,000² included).
import { mkdir, rm } from 'node:fs/promises';
import { writeFileDurably } from '../io/disk.js';
import path from 'node:path';
import sharp from 'sharp';
import { stringify } from 'csv-stringify/sync';
import { ConfigError } from '../errors.js';
import type { Logger } from '../logger.js';
import { Rng } from '../runtime/random.js';
import { CELL, CLASS, classMap, drawScene, groundTruthMasks, mosaicScene, type ClassMap, type SlideScene } from './scene.js';
import { insertStripImage, readTiffLayout, setImageDescription, writeStripTiff } from './tiff-file.js';

/** Bytes of level-0 RGB painted at once (one strip). */
const STRIP_BYTES = 8 * 1024 * 1024;

type Rgb = readonly [number, number, number];

/** Per-class look: stroma colour, nucleus colour, nucleus grid pitch (px at level 0), nucleus rate and radius range, fibre strength. */
interface Look {
  readonly stroma: Rgb;
  readonly nucleus: Rgb;
  readonly pitch: number;
  readonly rate: number;
  readonly radius: readonly [number, number];
  readonly fibres: number;
}

// Tumour: crowded, larger, darker nuclei on a purpler stroma, no fibres, so it differs in texture at 20× and in
// mean colour at 1.25×. Faint tissue: pale and barely saturated.
const LOOKS: Readonly<Record<number, Look>> = {
  [CLASS.tissue]: { stroma: [234, 170, 198], nucleus: [112, 62, 152], pitch: 24, rate: 0.45, radius: [3, 5], fibres: 0.06 },
  [CLASS.tumour]: { stroma: [206, 136, 192], nucleus: [78, 34, 124], pitch: 14, rate: 0.85, radius: [4, 6], fibres: 0 },
  [CLASS.faint]: { stroma: [240, 226, 234], nucleus: [204, 180, 216], pitch: 28, rate: 0.3, radius: [3, 4], fibres: 0.02 },
};
const BACKGROUND: Rgb = [242, 242, 240];
const DUST: Rgb = [72, 68, 64];

function hash3(a: number, b: number, c: number): number {
  let h = Math.imul(a, 0x27d4eb2d) ^ Math.imul(b, 0x165667b1) ^ Math.imul(c, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function clampByte(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v | 0;
}

/** Paints level-0 rows [y0, y0 + rows) into `out` (RGB, width × rows). */
export function paintStrip(scene: SlideScene, map: ClassMap, salt: number, y0: number, rows: number, out: Uint8Array): void {
  const { width } = scene;
  for (let r = 0; r < rows; r += 1) {
    const y = y0 + r;
    for (let x = 0; x < width; x += 1) {
      const h = hash3(x, y, salt);
      // Jittered class lookup: ragged tissue edges instead of CELL-sized stairs.
      const jx = x + ((h & 15) - 8);
      const jy = y + (((h >>> 4) & 15) - 8);
      const ci = Math.min(map.columns - 1, Math.max(0, (jx / CELL) | 0));
      const cj = Math.min(map.rows - 1, Math.max(0, (jy / CELL) | 0));
      const cls = map.classes[cj * map.columns + ci] as number;
      const grain = ((h >>> 8) & 15) - 7.5; // ±7.5 luminance grain
      const at = (r * width + x) * 3;
      const look = LOOKS[cls];
      if (look === undefined) {
        out[at] = clampByte(BACKGROUND[0] + grain * 0.4);
        out[at + 1] = clampByte(BACKGROUND[1] + grain * 0.4);
        out[at + 2] = clampByte(BACKGROUND[2] + grain * 0.4);
        continue;
      }
      // One candidate nucleus per pitch × pitch cell, placed so that it stays inside its cell.
      const gx = (x / look.pitch) | 0;
      const gy = (y / look.pitch) | 0;
      const hc = hash3(gx, gy, salt ^ (cls * 0x3c6ef372));
      let colour: Rgb = look.stroma;
      let shade = 1 + look.fibres * Math.sin((x * 0.8 + y * 0.35) / 5 + 2 * Math.sin(y / 40)); // wavy collagen fibres
      if ((hc & 1023) < look.rate * 1024) {
        const radius = look.radius[0] + ((hc >>> 10) % (look.radius[1] - look.radius[0] + 1));
        const span = look.pitch - 2 * radius;
        const cx = gx * look.pitch + radius + (span > 0 ? (hc >>> 14) % span : 0);
        const cy = gy * look.pitch + radius + (span > 0 ? (hc >>> 22) % span : 0);
        const d2 = (x - cx) ** 2 + (y - cy) ** 2;
        if (d2 <= radius * radius) {
          colour = look.nucleus;
          shade = 1 + 0.15 * (d2 / (radius * radius)); // darker chromatin at the centre
        }
      }
      out[at] = clampByte(colour[0] * shade + grain);
      out[at + 1] = clampByte(colour[1] * shade + grain);
      out[at + 2] = clampByte(colour[2] * shade + grain);
    }
  }
  paintArtefacts(scene, y0, rows, out);
}

function blend(out: Uint8Array, at: number, rgb: Rgb, alpha: number): void {
  out[at] = clampByte((out[at] as number) * (1 - alpha) + rgb[0] * alpha);
  out[at + 1] = clampByte((out[at + 1] as number) * (1 - alpha) + rgb[1] * alpha);
  out[at + 2] = clampByte((out[at + 2] as number) * (1 - alpha) + rgb[2] * alpha);
}

/** Pen stroke, dust specks and bubble rings over the painted strip. */
function paintArtefacts(scene: SlideScene, y0: number, rows: number, out: Uint8Array): void {
  const { width } = scene;
  const y1 = y0 + rows;
  for (const pen of scene.pens ?? (scene.pen ? [scene.pen] : [])) {
    for (let x = Math.max(0, Math.floor(pen.x0)); x < Math.min(width, Math.ceil(pen.x1)); x += 1) {
      const centre = pen.y0 + pen.amplitude * Math.sin((2 * Math.PI * x) / pen.period);
      for (let y = Math.max(y0, Math.ceil(centre - pen.halfWidth)); y < Math.min(y1, Math.floor(centre + pen.halfWidth)); y += 1) blend(out, ((y - y0) * width + x) * 3, pen.rgb, 0.75);
    }
  }
  for (const speck of scene.dust) {
    for (let y = Math.max(y0, Math.ceil(speck.cy - speck.radius)); y < Math.min(y1, speck.cy + speck.radius); y += 1) {
      const half = Math.sqrt(Math.max(0, speck.radius ** 2 - (y - speck.cy) ** 2));
      for (let x = Math.max(0, Math.ceil(speck.cx - half)); x < Math.min(width, speck.cx + half); x += 1) blend(out, ((y - y0) * width + x) * 3, DUST, 0.85);
    }
  }
  for (const bubble of scene.bubbles) {
    const outer = bubble.radius + bubble.thickness / 2;
    const inner = bubble.radius - bubble.thickness / 2;
    for (let y = Math.max(y0, Math.ceil(bubble.cy - outer)); y < Math.min(y1, bubble.cy + outer); y += 1) {
      const half = Math.sqrt(Math.max(0, outer ** 2 - (y - bubble.cy) ** 2));
      for (let x = Math.max(0, Math.ceil(bubble.cx - half)); x < Math.min(width, bubble.cx + half); x += 1) {
        const d = Math.hypot(x - bubble.cx, y - bubble.cy);
        const at = ((y - y0) * width + x) * 3;
        if (d >= inner) blend(out, at, [60, 60, 66], 0.55);
        else blend(out, at, [255, 255, 255], 0.08); // the bubble's lens brightens what it covers
      }
    }
  }
}

export interface SlideFileOptions {
  readonly format: 'tiff' | 'svs';
  /** JPEG quality of the pyramid tiles. */
  readonly quality: number;
  readonly tileSize: number;
  /** Microns per level-0 pixel and objective power, written into the .svs description. */
  readonly mpp: number;
  readonly magnification: number;
  /** Salt of the pixel texture (the slide's seed). */
  readonly salt: number;
  readonly logger?: Logger;
}

/** Writes one slide file from a scene; level 0 goes through disk in deflated strips, never whole in memory. */
export async function writeSlideFile(file: string, scene: SlideScene, map: ClassMap, options: SlideFileOptions): Promise<void> {
  const { width, height } = scene;
  // A stripped intermediate that libvips reads sequentially while it writes the tiled pyramid: joining many
  // strip images instead (vips arrayjoin) keeps every decoded strip alive, so memory would grow with the slide.
  const intermediate = path.join(path.dirname(file), `.${path.basename(file)}.level0.tiff`);
  try {
    const rowsPerStrip = Math.max(CELL, Math.min(height, Math.floor(STRIP_BYTES / (width * 3) / CELL) * CELL));
    await writeStripTiff(intermediate, width, height, rowsPerStrip, (y0, rows, out) => {
      paintStrip(scene, map, options.salt, y0, rows, out);
      options.logger?.debug(`${path.basename(file)}: painted rows ${y0}..${y0 + rows} of ${height}`);
    });
    await sharp(intermediate, { limitInputPixels: false, sequentialRead: true })
      .tiff({ tile: true, tileWidth: options.tileSize, tileHeight: options.tileSize, pyramid: true, compression: 'jpeg', quality: options.quality })
      .toFile(file);
  } finally {
    await rm(intermediate, { force: true });
  }
  if (options.format === 'svs') {
    await makeAperio(file, scene, options);
    forgetCachedImages();
  }
}

/**
 * Empties libvips' operation cache, keeping its limits. makeAperio opened pyramid pages through sharp before it
 * inserted the thumbnail as directory 1, so page k + 1 is now what page k was; a reader in the same process would
 * otherwise be served the cached pre-patch page and fail ("bad extract area") or read the wrong level.
 */
function forgetCachedImages(): void {
  const limits = sharp.cache();
  sharp.cache(false);
  sharp.cache({ memory: limits.memory.max, files: limits.files.max, items: limits.items.max });
}

/** Level-0 description, thumbnail (directory 1), label and macro, as Aperio scanners lay them out. */
async function makeAperio(file: string, scene: SlideScene, options: SlideFileOptions): Promise<void> {
  const { width, height } = scene;
  await setImageDescription(
    file,
    0,
    `Aperio Image Library v12.0.0\n${width}x${height} [0,0 ${width}x${height}] (${options.tileSize}x${options.tileSize}) JPEG/RGB Q=${options.quality}|AppMag = ${options.magnification}|MPP = ${options.mpp}|Filename = ${path.basename(file, '.svs')}|Generator = milkit data slides`,
  );
  const layout = await readTiffLayout(file);
  // Aperio thumbnails are ~1/32 of level 0 at most 768 px wide (small slides keep small files).
  const thumbWidth = Math.min(768, Math.max(64, Math.round(width / 32)));
  // The smallest level still at least as wide as the thumbnail (levels shrink along the chain).
  const page = layout.directories.reduce((best, d) => (d.width >= thumbWidth ? d.index : best), 0);
  const thumbnail = await sharp(file, { page }).resize({ width: thumbWidth }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  await insertStripImage(file, 1, {
    width: thumbnail.info.width,
    height: thumbnail.info.height,
    rgb: new Uint8Array(thumbnail.data),
    description: `Aperio Image Library v12.0.0\n${width}x${height} -> ${thumbnail.info.width}x${thumbnail.info.height} - |AppMag = ${options.magnification}|MPP = ${options.mpp}`,
  });
  const label = labelImage(options.salt, 96);
  const count = layout.directories.length + 1;
  await insertStripImage(file, count, { ...label, description: `Aperio Image Library v12.0.0\nlabel ${label.width}x${label.height}` });
  const macroHeight = 64;
  const macroSlide = await sharp(thumbnail.data, { raw: { width: thumbnail.info.width, height: thumbnail.info.height, channels: 3 } })
    .resize({ width: 3 * macroHeight, height: macroHeight, fit: 'fill' })
    .raw()
    .toBuffer();
  const macroWidth = 4 * macroHeight;
  const macro = new Uint8Array(macroWidth * macroHeight * 3);
  // The macro is the glass overview: the label on the left, the slide to its right.
  const labelSmall = await sharp(Buffer.from(label.rgb), { raw: { width: label.width, height: label.height, channels: 3 } }).resize({ width: macroHeight, height: macroHeight }).raw().toBuffer();
  for (let y = 0; y < macroHeight; y += 1) {
    macro.set(labelSmall.subarray(y * macroHeight * 3, (y + 1) * macroHeight * 3), y * macroWidth * 3);
    macro.set(macroSlide.subarray(y * 3 * macroHeight * 3, (y + 1) * 3 * macroHeight * 3), (y * macroWidth + macroHeight) * 3);
  }
  await insertStripImage(file, count + 1, { width: macroWidth, height: macroHeight, rgb: macro, description: `Aperio Image Library v12.0.0\nmacro ${macroWidth}x${macroHeight}` });
}

/** A square label with a barcode-like pattern derived from the slide's salt. */
function labelImage(salt: number, side: number): { width: number; height: number; rgb: Uint8Array } {
  const rgb = new Uint8Array(side * side * 3).fill(250);
  for (let x = 8; x < side - 8; x += 1) {
    const dark = (hash3(Math.floor(x / 3), 0, salt) & 1) === 1;
    if (!dark) continue;
    for (let y = 12; y < side / 2; y += 1) rgb.fill(20, (y * side + x) * 3, (y * side + x) * 3 + 3);
  }
  return { width: side, height: side, rgb };
}

export interface SyntheticSlidesOptions {
  readonly outDir: string;
  readonly slides: number;
  /** Level-0 width. */
  readonly size: number;
  /** Level-0 height; 3/4 of `size` when absent (the 4:3 scene every existing slide and golden was made with). */
  readonly height?: number;
  readonly seed: number;
  readonly tumourFraction: number;
  readonly format: 'tiff' | 'svs' | 'both';
  readonly quality: number;
  readonly tileSize: number;
  readonly mpp: number;
  readonly magnification: number;
  /** Level-0 pixels per mask pixel (rounded to a multiple of 16). */
  readonly maskDownsample: number;
  /**
   * Width of one scene (its height 3/4 of it): a slide wider or taller than that is tiled with independent scenes
   * of this size (mosaicScene), so its tissue pieces, edges and artefacts look as on a slide of `sceneSize`.
   * Default: one scene as large as the slide (every slide generated before this option).
   */
  readonly sceneSize?: number;
  readonly logger: Logger;
}

export interface SyntheticSlidesResult {
  readonly slideTable: string;
  readonly files: readonly string[];
}

/** The level-0 height of a generated slide: `height` when given (at least 512), else 3/4 of the width. */
export function syntheticSlideHeight(size: number, height: number | undefined): number {
  if (height === undefined) return Math.round((size * 3) / 4);
  if (!Number.isInteger(height) || height < 512) throw new ConfigError('bad-option', `--height ${height} is too small for a pyramid.`, { hint: 'Use an integer of at least 512, or leave --height out for 3/4 of --size.' });
  return height;
}

export const TUMOUR_LABEL = 'tumor_tissue';
export const NORMAL_LABEL = 'normal_tissue';

/** Writes `slides` slides, their masks (masks/<id>_tissue.png, _tumour.png) and slides.csv into outDir. */
export async function writeSyntheticSlides(options: SyntheticSlidesOptions): Promise<SyntheticSlidesResult> {
  if (options.size < 512) throw new ConfigError('bad-option', `--size ${options.size} is too small for a pyramid.`, { hint: 'Use at least 512 (20000 gives a realistic small biopsy at 20×).' });
  const width = options.size;
  const height = syntheticSlideHeight(options.size, options.height);
  const sceneSize = options.sceneSize;
  if (sceneSize !== undefined && (!Number.isInteger(sceneSize) || sceneSize < 512)) {
    throw new ConfigError('bad-option', `sceneSize ${sceneSize} is too small for a scene.`, { hint: 'Use an integer of at least 512 (the size of the training slides a large slide should resemble), or leave it out for one scene per slide.' });
  }
  await mkdir(path.join(options.outDir, 'masks'), { recursive: true });
  const rng = new Rng(`slides/${options.seed}`);
  const tumourCount = Math.round(options.slides * options.tumourFraction);
  const labels = Array.from({ length: options.slides }, (_, i) => i < tumourCount);
  for (let i = labels.length - 1; i > 0; i -= 1) {
    const j = rng.int(i + 1);
    [labels[i], labels[j]] = [labels[j] as boolean, labels[i] as boolean];
  }
  const rows: Array<Record<string, string | number>> = [];
  const files: string[] = [];
  for (let i = 0; i < options.slides; i += 1) {
    const slideId = `synthetic-${String(i).padStart(3, '0')}`;
    const tumour = labels[i] as boolean;
    const seed = `slides/${options.seed}/${slideId}`;
    const tiled = sceneSize !== undefined && (sceneSize < width || syntheticSlideHeight(sceneSize, undefined) < height);
    const scene = tiled ? mosaicScene(width, height, seed, tumour, sceneSize, syntheticSlideHeight(sceneSize, undefined)) : drawScene(width, height, seed, tumour);
    const map = classMap(scene);
    const salt = hash3(options.seed, i, 0x51de);
    const formats: Array<'tiff' | 'svs'> = options.format === 'both' ? ['svs', 'tiff'] : [options.format];
    for (const format of formats) {
      const file = path.join(options.outDir, `${slideId}.${format}`);
      options.logger.info(`${path.basename(file)}: ${width}×${height}, ${tumour ? 'tumour' : 'normal'}`);
      await writeSlideFile(file, scene, map, { format, quality: options.quality, tileSize: options.tileSize, mpp: options.mpp, magnification: options.magnification, salt, logger: options.logger });
      files.push(file);
    }
    const masks = groundTruthMasks(map, width, height, options.maskDownsample);
    for (const [name, mask] of [['tissue', masks.tissue], ['tumour', masks.tumour]] as const) {
      await sharp(Buffer.from(mask), { raw: { width: masks.width, height: masks.height, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(options.outDir, 'masks', `${slideId}_${name}.png`));
    }
    rows.push({ slide_id: slideId, case_id: `case-${String(i).padStart(3, '0')}`, label: tumour ? TUMOUR_LABEL : NORMAL_LABEL, slide_file: path.basename(files[files.length - formats.length] as string), mask_downsample: Math.max(1, Math.round(options.maskDownsample / CELL)) * CELL, tumour_cells: Array.from(map.classes).filter((c) => c === CLASS.tumour).length });
  }
  const slideTable = path.join(options.outDir, 'slides.csv');
  await writeFileDurably(slideTable, stringify(rows, { header: true, columns: ['slide_id', 'case_id', 'label', 'slide_file', 'mask_downsample', 'tumour_cells'] }));
  return { slideTable, files };
}
