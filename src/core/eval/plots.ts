// ROC and precision-recall figures: Vega-Lite specs compiled by vega-lite, rendered headless to SVG by
// vega's View (renderer "none", no canvas package), rasterised to PNG by sharp. One figure per fold plus
// the mean ROC across folds (TPR interpolated on a common FPR grid, ±1 std band).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { MetricInput } from '../../registry/contracts/metric.js';
import { averagePrecision, binaryAuc, prCurve, rocCurve } from './classification.js';

/** One line of a figure: a name and its (x, y) points in drawing order. */
export interface CurveSeries {
  readonly name: string;
  readonly x: readonly number[];
  readonly y: readonly number[];
}

export interface FoldPredictions {
  readonly fold: number;
  readonly input: MetricInput;
}

/** One-vs-rest problems to draw: the positive class for binary tasks, every class present otherwise. */
function problems(input: MetricInput, classNames: readonly string[]): Array<{ name: string; isPositive: boolean[]; scores: number[] }> {
  const classes = input.numClasses === 2 ? [1] : Array.from({ length: input.numClasses }, (_, c) => c);
  return classes
    .map((c) => ({ name: classNames[c] ?? `class ${c}`, isPositive: input.labels.map((y) => y === c), scores: input.probs.map((p) => p[c] as number) }))
    .filter((p) => p.isPositive.some(Boolean) && p.isPositive.some((v) => !v));
}

/** ROC series per one-vs-rest problem, named with their AUC. */
export function rocSeries(input: MetricInput, classNames: readonly string[]): CurveSeries[] {
  return problems(input, classNames).map((p) => {
    const roc = rocCurve(p.isPositive, p.scores);
    return { name: `${p.name} (AUC ${(binaryAuc(p.isPositive, p.scores) as number).toFixed(3)})`, x: roc.fpr, y: roc.tpr };
  });
}

/** Precision-recall series per one-vs-rest problem, named with their average precision. */
export function prSeries(input: MetricInput, classNames: readonly string[]): CurveSeries[] {
  return problems(input, classNames).map((p) => {
    const pr = prCurve(p.isPositive, p.scores);
    return { name: `${p.name} (AP ${averagePrecision(pr).toFixed(3)})`, x: pr.recall, y: pr.precision };
  });
}

/** TPR of a ROC curve at `x` (the upper end of a vertical step, linear between points). */
export function interpolateRoc(fpr: readonly number[], tpr: readonly number[], x: number): number {
  let i = 0;
  while (i + 1 < fpr.length && (fpr[i + 1] as number) <= x) i += 1;
  if (i + 1 >= fpr.length || (fpr[i] as number) === x) return tpr[i] as number;
  const x0 = fpr[i] as number;
  const x1 = fpr[i + 1] as number;
  return (tpr[i] as number) + ((x - x0) / (x1 - x0)) * ((tpr[i + 1] as number) - (tpr[i] as number));
}

export interface MeanRoc {
  readonly fpr: number[];
  readonly meanTpr: number[];
  readonly stdTpr: number[];
  /** AUC of each fold (binary: class 1; multi-class: macro over one-vs-rest), for the legend. */
  readonly foldAucs: number[];
}

/** Mean ROC over folds on a 101-point FPR grid; multi-class folds contribute their macro (class-averaged) curve. */
export function meanRoc(folds: readonly FoldPredictions[], gridPoints = 101): MeanRoc {
  const fpr = Array.from({ length: gridPoints }, (_, i) => i / (gridPoints - 1));
  const perFold: number[][] = [];
  const foldAucs: number[] = [];
  for (const { input } of folds) {
    const curves = problems(input, []).map((p) => ({ roc: rocCurve(p.isPositive, p.scores), auc: binaryAuc(p.isPositive, p.scores) as number }));
    if (curves.length === 0) continue;
    perFold.push(fpr.map((x) => (x === 0 ? 0 : curves.reduce((a, c) => a + interpolateRoc(c.roc.fpr, c.roc.tpr, x), 0) / curves.length)));
    foldAucs.push(curves.reduce((a, c) => a + c.auc, 0) / curves.length);
  }
  const meanTpr = fpr.map((_, i) => (perFold.length === 0 ? Number.NaN : perFold.reduce((a, f) => a + (f[i] as number), 0) / perFold.length));
  const stdTpr = fpr.map((_, i) => {
    if (perFold.length < 2) return 0;
    const m = meanTpr[i] as number;
    return Math.sqrt(perFold.reduce((a, f) => a + ((f[i] as number) - m) ** 2, 0) / (perFold.length - 1));
  });
  return { fpr, meanTpr, stdTpr, foldAucs };
}

export type VegaLiteSpec = Record<string, unknown>;

const WIDTH = 360;
/** DejaVu Sans ships with fontconfig on Debian; unflushed labels keep 0.0 under its tick. */
const CONFIG = { font: 'DejaVu Sans', axis: { labelFlush: false, tickCount: 5 } };

/** A curve figure (ROC with its chance diagonal, or PR) as a Vega-Lite spec. */
export function curveSpec(title: string, xTitle: string, yTitle: string, series: readonly CurveSeries[], diagonal: boolean): VegaLiteSpec {
  const values = series.flatMap((s) => s.x.map((x, i) => ({ series: s.name, x, y: s.y[i], order: i })));
  const axis = (t: string) => ({ title: t, scale: { domain: [0, 1] }, axis: { tickCount: 5, grid: true } });
  const layers: VegaLiteSpec[] = [];
  if (diagonal) {
    layers.push({ data: { values: [{ x: 0, y: 0 }, { x: 1, y: 1 }] }, mark: { type: 'line', strokeDash: [4, 4], color: '#999999' }, encoding: { x: { field: 'x', type: 'quantitative', ...axis(xTitle) }, y: { field: 'y', type: 'quantitative', ...axis(yTitle) } } });
  }
  layers.push({
    data: { values },
    mark: { type: 'line', interpolate: 'linear', strokeWidth: 2 },
    encoding: {
      x: { field: 'x', type: 'quantitative', ...axis(xTitle) },
      y: { field: 'y', type: 'quantitative', ...axis(yTitle) },
      order: { field: 'order', type: 'quantitative' },
      color: { field: 'series', type: 'nominal', legend: { title: null, orient: 'bottom-right', labelLimit: 260 } },
    },
  });
  return { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', title, width: WIDTH, height: WIDTH, background: 'white', layer: layers, config: CONFIG };
}

function meanRocSpec(title: string, mean: MeanRoc): VegaLiteSpec {
  const n = mean.foldAucs.length;
  const aucMean = mean.foldAucs.reduce((a, b) => a + b, 0) / Math.max(n, 1);
  const aucStd = n < 2 ? 0 : Math.sqrt(mean.foldAucs.reduce((a, v) => a + (v - aucMean) ** 2, 0) / (n - 1));
  const label = `mean ROC (AUC ${aucMean.toFixed(3)} ± ${aucStd.toFixed(3)}, ${n} folds)`;
  const values = mean.fpr.map((x, i) => ({
    x,
    y: mean.meanTpr[i],
    lo: Math.max(0, (mean.meanTpr[i] as number) - (mean.stdTpr[i] as number)),
    hi: Math.min(1, (mean.meanTpr[i] as number) + (mean.stdTpr[i] as number)),
    series: label,
  }));
  const x = { field: 'x', type: 'quantitative', title: 'False positive rate', scale: { domain: [0, 1] } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: WIDTH,
    height: WIDTH,
    background: 'white',
    config: CONFIG,
    layer: [
      { data: { values: [{ x: 0, y: 0 }, { x: 1, y: 1 }] }, mark: { type: 'line', strokeDash: [4, 4], color: '#999999' }, encoding: { x, y: { field: 'y', type: 'quantitative', title: 'True positive rate', scale: { domain: [0, 1] } } } },
      { data: { values }, mark: { type: 'area', opacity: 0.25, color: '#4c78a8' }, encoding: { x, y: { field: 'lo', type: 'quantitative', title: 'True positive rate', scale: { domain: [0, 1] } }, y2: { field: 'hi' } } },
      {
        data: { values },
        mark: { type: 'line', strokeWidth: 2.5, color: '#4c78a8' },
        encoding: { x, y: { field: 'y', type: 'quantitative', scale: { domain: [0, 1] } }, color: { field: 'series', type: 'nominal', scale: { range: ['#4c78a8'] }, legend: { title: null, orient: 'bottom-right', labelLimit: 300 } } },
      },
    ],
  };
}

/** Vega-Lite spec → SVG text, headless (vega View with renderer "none"). */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const vl = await import('vega-lite');
  const vega = await import('vega');
  const compiled = vl.compile(spec as unknown as Parameters<typeof vl.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Vega-Lite spec → PNG file (SVG rasterised by sharp at 2× for legible text). */
export async function writePng(spec: VegaLiteSpec, file: string): Promise<void> {
  const sharp = (await import('sharp')).default;
  const svg = await renderSvg(spec);
  await mkdir(path.dirname(file), { recursive: true });
  await sharp(Buffer.from(svg), { density: 144 }).flatten({ background: '#ffffff' }).png().toFile(file);
}

export interface CurveFiles {
  /** Files written, by figure. */
  readonly roc: string[];
  readonly pr: string[];
  readonly meanRoc?: string;
}

/**
 * Writes `roc_fold<k>.png` and `pr_fold<k>.png` per fold and `roc_mean.png` across folds into `dir`.
 * Folds whose labels hold a single class have no curve and are skipped (the AUC metric reports them).
 */
export async function writeCurvePlots(dir: string, folds: readonly FoldPredictions[], classNames: readonly string[], title = ''): Promise<CurveFiles> {
  const roc: string[] = [];
  const pr: string[] = [];
  const prefix = title === '' ? '' : `${title} · `;
  for (const { fold, input } of folds) {
    const rocs = rocSeries(input, classNames);
    if (rocs.length === 0) continue;
    const rocFile = path.join(dir, `roc_fold${fold}.png`);
    await writePng(curveSpec(`${prefix}ROC, fold ${fold}`, 'False positive rate', 'True positive rate', rocs, true), rocFile);
    roc.push(rocFile);
    const prFile = path.join(dir, `pr_fold${fold}.png`);
    await writePng(curveSpec(`${prefix}Precision-recall, fold ${fold}`, 'Recall', 'Precision', prSeries(input, classNames), false), prFile);
    pr.push(prFile);
  }
  if (roc.length === 0) return { roc, pr };
  const meanFile = path.join(dir, 'roc_mean.png');
  await writePng(meanRocSpec(`${prefix}Mean ROC across folds`, meanRoc(folds)), meanFile);
  return { roc, pr, meanRoc: meanFile };
}

/** One line of a forest plot: an estimate with its interval and the ▲/▼/≈ mark of its test. */
export interface ForestRow {
  readonly label: string;
  readonly estimate: number;
  readonly low: number;
  readonly high: number;
  readonly mark: string;
}

export interface ForestOptions {
  readonly title: string;
  /** Axis title, e.g. "Δ auc vs baseline (95% CI)". */
  readonly xTitle: string;
  /** Name of the reference line at 0 (the baseline row). */
  readonly baseline: string;
}

const MARK_COLORS = { '▲': '#2e7d32', '▼': '#c62828', '≈': '#546e7a' } as const;

/** Vega-Lite spec of a forest plot: one row per label, interval bar and point, a dashed baseline rule at 0. */
export function forestPlotSpec(rows: readonly ForestRow[], options: ForestOptions): VegaLiteSpec {
  const values = rows.map((r, order) => ({ ...r, order, markLabel: r.mark === '▲' ? '▲ higher' : r.mark === '▼' ? '▼ lower' : '≈ not significant' }));
  const y = { field: 'label', type: 'nominal', title: null, sort: { field: 'order' }, axis: { labelLimit: 420 } };
  const colour = {
    field: 'markLabel', type: 'nominal', title: null,
    scale: { domain: ['▲ higher', '▼ lower', '≈ not significant'], range: [MARK_COLORS['▲'], MARK_COLORS['▼'], MARK_COLORS['≈']] },
    legend: { orient: 'bottom' },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: options.title,
    width: WIDTH * 1.4,
    height: { step: 28 },
    background: 'white',
    config: CONFIG,
    layer: [
      { data: { values: [{ x: 0, name: `baseline: ${options.baseline}` }] }, mark: { type: 'rule', strokeDash: [5, 4], color: '#777777' }, encoding: { x: { field: 'x', type: 'quantitative' } } },
      // zero: the baseline rule at 0 stays in view even when every interval lies on one side of it.
      { data: { values }, mark: { type: 'rule', strokeWidth: 2.5 }, encoding: { y, x: { field: 'low', type: 'quantitative', title: options.xTitle, scale: { zero: true } }, x2: { field: 'high' }, color: colour } },
      { data: { values }, mark: { type: 'point', filled: true, size: 70 }, encoding: { y, x: { field: 'estimate', type: 'quantitative' }, color: colour } },
      { data: { values: [{ x: 0, name: `baseline: ${options.baseline}` }] }, mark: { type: 'text', dy: -8, dx: 4, align: 'left', baseline: 'bottom', color: '#555555', y: 0 }, encoding: { x: { field: 'x', type: 'quantitative' }, text: { field: 'name' } } },
    ],
  };
}

/** Writes the forest plot PNG (nothing when there are no rows). */
export async function writeForestPlot(file: string, rows: readonly ForestRow[], options: ForestOptions): Promise<string | undefined> {
  if (rows.length === 0) return undefined;
  await writePng(forestPlotSpec(rows, options), file);
  return file;
}
