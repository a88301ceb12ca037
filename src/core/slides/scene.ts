// The layout of one synthetic slide, drawn from a seed: tissue pieces with lobed outlines, holes, a faint
// (pale, low-saturation) fragment, tumour regions inside tissue, and artefacts (a pen stroke, dust specks, air
// bubbles). Geometry is in level-0 pixels; the class map samples it on a coarse grid (one cell per CELL
// pixels), which is all the painter and the ground-truth masks need.
import { Rng } from '../runtime/random.js';

export const CLASS = { background: 0, tissue: 1, tumour: 2, faint: 3 } as const;
export type TissueClass = (typeof CLASS)[keyof typeof CLASS];

/** Level-0 pixels per class-map cell. */
export const CELL = 16;

/** A closed outline r(θ) = R · (1 + Σ_k a_k sin(kθ + φ_k)) around (cx, cy). */
export interface Lobe {
  readonly cx: number;
  readonly cy: number;
  readonly radius: number;
  readonly harmonics: ReadonlyArray<{ readonly k: number; readonly amplitude: number; readonly phase: number }>;
}

export interface Ellipse {
  readonly cx: number;
  readonly cy: number;
  readonly rx: number;
  readonly ry: number;
}

export interface Circle {
  readonly cx: number;
  readonly cy: number;
  readonly radius: number;
}

export interface PenStroke {
  /** Centre line y(x) = y0 + amplitude · sin(2π x / period), for x in [x0, x1]. */
  readonly x0: number;
  readonly x1: number;
  readonly y0: number;
  readonly amplitude: number;
  readonly period: number;
  readonly halfWidth: number;
  readonly rgb: readonly [number, number, number];
}

export interface SlideScene {
  readonly width: number;
  readonly height: number;
  readonly tissue: readonly Lobe[];
  readonly faint: readonly Lobe[];
  readonly holes: readonly Ellipse[];
  readonly tumours: readonly Lobe[];
  readonly pen: PenStroke | undefined;
  /** More pen strokes (a mosaic's, one per scene that has one; `pen` is then undefined). */
  readonly pens?: readonly PenStroke[];
  readonly dust: readonly Circle[];
  /** Ring outlines; `thickness` level-0 pixels wide. */
  readonly bubbles: ReadonlyArray<Circle & { readonly thickness: number }>;
}

function lobe(rng: Rng, cx: number, cy: number, radius: number, wobble: number): Lobe {
  const harmonics = [2, 3, 4, 5, 7].map((k) => ({ k, amplitude: (wobble * (0.4 + 0.6 * rng.next())) / k, phase: 2 * Math.PI * rng.next() }));
  return { cx, cy, radius, harmonics };
}

export function insideLobe(l: Lobe, x: number, y: number): boolean {
  const dx = x - l.cx;
  const dy = y - l.cy;
  const r2 = dx * dx + dy * dy;
  // Cheap reject/accept by the outline's bounds (the harmonics move it by at most Σ a_k).
  const spread = l.harmonics.reduce((s, h) => s + h.amplitude, 0);
  if (r2 > (l.radius * (1 + spread)) ** 2) return false;
  if (r2 < (l.radius * (1 - spread)) ** 2) return true;
  const theta = Math.atan2(dy, dx);
  let scale = 1;
  for (const h of l.harmonics) scale += h.amplitude * Math.sin(h.k * theta + h.phase);
  return r2 < (l.radius * scale) ** 2;
}

function insideEllipse(e: Ellipse, x: number, y: number): boolean {
  const u = (x - e.cx) / e.rx;
  const v = (y - e.cy) / e.ry;
  return u * u + v * v < 1;
}

/** Draws a slide layout; `tumour` decides whether tumour regions exist (the slide's label). */
export function drawScene(width: number, height: number, seed: string, tumour: boolean): SlideScene {
  const rng = new Rng(seed);
  const pieces = 1 + rng.int(2);
  const tissue: Lobe[] = [];
  const holes: Ellipse[] = [];
  const tumours: Lobe[] = [];
  for (let i = 0; i < pieces; i += 1) {
    const radius = Math.min((width * 0.8) / pieces, height) * (0.3 + 0.08 * rng.next());
    const cx = (width * (i + 0.5)) / pieces + (rng.next() - 0.5) * 0.05 * width;
    const cy = height * (0.45 + 0.1 * rng.next());
    const piece = lobe(rng, cx, cy, radius, 0.35);
    tissue.push(piece);
    const holeCount = 2 + rng.int(4);
    for (let h = 0; h < holeCount; h += 1) {
      const angle = 2 * Math.PI * rng.next();
      const distance = 0.55 * radius * rng.next();
      const r = radius * (0.03 + 0.06 * rng.next());
      holes.push({ cx: cx + distance * Math.cos(angle), cy: cy + distance * Math.sin(angle), rx: r * (0.7 + 0.6 * rng.next()), ry: r });
    }
    if (tumour && (i === 0 || rng.next() < 0.5)) {
      const count = 1 + rng.int(2);
      for (let t = 0; t < count; t += 1) {
        const angle = 2 * Math.PI * rng.next();
        const distance = 0.4 * radius * rng.next();
        tumours.push(lobe(rng, cx + distance * Math.cos(angle), cy + distance * Math.sin(angle), radius * (0.12 + 0.15 * rng.next()), 0.3));
      }
    }
  }
  // A small detached pale fragment near a corner: the case CLAM's saturation threshold must still catch.
  const faintRadius = Math.min(width, height) * (0.05 + 0.03 * rng.next());
  const faint = [lobe(rng, width * (0.08 + 0.1 * rng.next()) + faintRadius, height - faintRadius * 1.6, faintRadius, 0.25)];
  const pen: PenStroke | undefined =
    rng.next() < 0.8
      ? {
          x0: width * (0.05 + 0.2 * rng.next()),
          x1: width * (0.45 + 0.3 * rng.next()),
          y0: height * (0.08 + 0.12 * rng.next()),
          amplitude: height * 0.03 * rng.next(),
          period: width * (0.1 + 0.2 * rng.next()),
          halfWidth: Math.max(3, Math.min(width, height) * 0.004),
          rgb: ([[40, 70, 170], [30, 120, 70], [40, 40, 50]] as const)[rng.int(3)] as [number, number, number],
        }
      : undefined;
  const dust: Circle[] = Array.from({ length: 30 + rng.int(40) }, () => ({ cx: width * rng.next(), cy: height * rng.next(), radius: 1.5 + 8 * rng.next() ** 2 }));
  const bubbles = Array.from({ length: 1 + rng.int(2) }, () => ({
    cx: width * rng.next(),
    cy: height * rng.next(),
    radius: Math.min(width, height) * (0.03 + 0.05 * rng.next()),
    thickness: Math.max(2, Math.min(width, height) * 0.0008),
  }));
  return { width, height, tissue, faint, holes, tumours, pen, dust, bubbles };
}

/**
 * A slide of `width` × `height` tiled with independent scenes of `sceneWidth` × `sceneHeight` (each drawn as
 * drawScene draws a slide of that size, from `<seed>/scene-<column>-<row>`, with the slide's label), clipped at
 * the right and bottom edges. drawScene scales tissue pieces, holes, tumours and artefacts with the slide, so a
 * large slide drawn as one scene has a much smaller share of tissue-edge patches and a pen stroke many times wider
 * than a small one; a mosaic keeps every local statistic of the small slide whatever the slide's size.
 */
export function mosaicScene(width: number, height: number, seed: string, tumour: boolean, sceneWidth: number, sceneHeight: number): SlideScene {
  const tissue: Lobe[] = [];
  const faint: Lobe[] = [];
  const holes: Ellipse[] = [];
  const tumours: Lobe[] = [];
  const pens: PenStroke[] = [];
  const dust: Circle[] = [];
  const bubbles: Array<Circle & { readonly thickness: number }> = [];
  for (let row = 0; row * sceneHeight < height; row += 1) {
    for (let column = 0; column * sceneWidth < width; column += 1) {
      const dx = column * sceneWidth;
      const dy = row * sceneHeight;
      const part = drawScene(sceneWidth, sceneHeight, `${seed}/scene-${column}-${row}`, tumour);
      const lobeAt = (l: Lobe): Lobe => ({ ...l, cx: l.cx + dx, cy: l.cy + dy });
      tissue.push(...part.tissue.map(lobeAt));
      faint.push(...part.faint.map(lobeAt));
      tumours.push(...part.tumours.map(lobeAt));
      holes.push(...part.holes.map((h) => ({ ...h, cx: h.cx + dx, cy: h.cy + dy })));
      dust.push(...part.dust.map((c) => ({ ...c, cx: c.cx + dx, cy: c.cy + dy })));
      bubbles.push(...part.bubbles.map((b) => ({ ...b, cx: b.cx + dx, cy: b.cy + dy })));
      if (part.pen) pens.push({ ...part.pen, x0: part.pen.x0 + dx, x1: part.pen.x1 + dx, y0: part.pen.y0 + dy });
    }
  }
  return { width, height, tissue, faint, holes, tumours, pen: undefined, pens, dust, bubbles };
}

/** The tissue class at a level-0 point (ignoring artefacts, which lie on top of the tissue). */
export function classAt(scene: SlideScene, x: number, y: number): TissueClass {
  if (scene.holes.some((h) => insideEllipse(h, x, y))) return CLASS.background;
  if (scene.tissue.some((l) => insideLobe(l, x, y))) return scene.tumours.some((t) => insideLobe(t, x, y)) ? CLASS.tumour : CLASS.tissue;
  if (scene.faint.some((l) => insideLobe(l, x, y))) return CLASS.faint;
  return CLASS.background;
}

export interface ClassMap {
  /** Cells across and down; cell (i, j) covers level-0 pixels [i·CELL, (i+1)·CELL) × [j·CELL, (j+1)·CELL). */
  readonly columns: number;
  readonly rows: number;
  readonly classes: Uint8Array;
}

/** Samples the scene at every cell centre. */
export function classMap(scene: SlideScene): ClassMap {
  const columns = Math.ceil(scene.width / CELL);
  const rows = Math.ceil(scene.height / CELL);
  const classes = new Uint8Array(columns * rows);
  for (let j = 0; j < rows; j += 1) for (let i = 0; i < columns; i += 1) classes[j * columns + i] = classAt(scene, (i + 0.5) * CELL, (j + 0.5) * CELL);
  return { columns, rows, classes };
}

/**
 * Ground-truth masks (0/255 bytes) at `downsample` level-0 pixels per mask pixel (a multiple of CELL): tissue
 * (any tissue class, holes excluded) and tumour, each mask pixel taking the majority of its cells.
 */
export function groundTruthMasks(map: ClassMap, width: number, height: number, downsample: number): { width: number; height: number; tissue: Uint8Array; tumour: Uint8Array } {
  const step = Math.max(1, Math.round(downsample / CELL));
  const w = Math.ceil(width / (step * CELL));
  const h = Math.ceil(height / (step * CELL));
  const tissue = new Uint8Array(w * h);
  const tumour = new Uint8Array(w * h);
  for (let y = 0; y < h; y += 1) {
    for (let x = 0; x < w; x += 1) {
      let cells = 0;
      let tissueCells = 0;
      let tumourCells = 0;
      for (let j = y * step; j < Math.min(map.rows, (y + 1) * step); j += 1) {
        for (let i = x * step; i < Math.min(map.columns, (x + 1) * step); i += 1) {
          const c = map.classes[j * map.columns + i] as number;
          cells += 1;
          if (c !== CLASS.background) tissueCells += 1;
          if (c === CLASS.tumour) tumourCells += 1;
        }
      }
      tissue[y * w + x] = 2 * tissueCells > cells ? 255 : 0;
      tumour[y * w + x] = 2 * tumourCells > cells ? 255 : 0;
    }
  }
  return { width: w, height: h, tissue, tumour };
}
