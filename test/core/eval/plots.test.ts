import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { interpolateRoc, meanRoc, renderSvg, rocSeries, prSeries, writeCurvePlots } from '../../../src/core/eval/plots.js';

const binaryFold = (fold: number, probs1: number[], labels: number[]) => ({ fold, input: { labels, probs: probs1.map((p) => [1 - p, p]), numClasses: 2 } });

describe('core/eval/plots', () => {
  it('interpolates a ROC step curve (upper end of vertical steps, linear between points)', () => {
    const fpr = [0, 0, 0.5, 1];
    const tpr = [0, 0.5, 1, 1];
    expect(interpolateRoc(fpr, tpr, 0)).toBe(0.5);
    expect(interpolateRoc(fpr, tpr, 0.25)).toBe(0.75);
    expect(interpolateRoc(fpr, tpr, 0.5)).toBe(1);
    expect(interpolateRoc(fpr, tpr, 1)).toBe(1);
  });

  it('averages folds on a common FPR grid with a sample-std band', () => {
    // Fold A is perfect (TPR 1 from FPR 0); fold B ranks every positive last (TPR 0 until FPR 1).
    const perfect = binaryFold(0, [0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]);
    const inverted = binaryFold(1, [0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]);
    const mean = meanRoc([perfect, inverted], 5);
    expect(mean.fpr).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(mean.meanTpr).toEqual([0, 0.5, 0.5, 0.5, 1]);
    // std of {1, 0} with ddof = 1 is 1/√2.
    expect(mean.stdTpr[2]).toBeCloseTo(Math.SQRT1_2, 12);
    expect(mean.foldAucs).toEqual([1, 0]);
  });

  it('names series with their AUC / AP and skips single-class folds', () => {
    const fold = binaryFold(0, [0.9, 0.6, 0.4, 0.1], [1, 0, 1, 0]);
    expect(rocSeries(fold.input, ['normal', 'tumor']).map((s) => s.name)).toEqual(['tumor (AUC 0.750)']);
    expect(prSeries(fold.input, ['normal', 'tumor']).map((s) => s.name)).toEqual(['tumor (AP 0.833)']);
    expect(rocSeries(binaryFold(1, [0.3, 0.4], [0, 0]).input, ['normal', 'tumor'])).toEqual([]);
    const multi = { labels: [0, 1, 2, 2], probs: [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4]], numClasses: 3 };
    expect(rocSeries(multi, ['a', 'b', 'c']).map((s) => s.name)).toEqual(['a (AUC 1.000)', 'b (AUC 1.000)', 'c (AUC 1.000)']);
  });

  it('renders a Vega-Lite figure to SVG headlessly, with the legend text in it', async () => {
    const fold = binaryFold(0, [0.9, 0.6, 0.4, 0.1], [1, 0, 1, 0]);
    const dir = mkdtempSync(path.join(tmpdir(), 'milkit-plots-'));
    const files = await writeCurvePlots(dir, [fold, binaryFold(1, [0.3, 0.4], [0, 0])], ['normal', 'tumor'], 'test');
    expect(files.roc.map((f) => path.basename(f))).toEqual(['roc_fold0.png']);
    expect(files.pr.map((f) => path.basename(f))).toEqual(['pr_fold0.png']);
    expect(path.basename(files.meanRoc ?? '')).toBe('roc_mean.png');
    const png = sharp(files.roc[0] as string);
    const meta = await png.metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThan(600);
    // Not blank: a white background with dark strokes (the curve, axes and text).
    const stats = await png.stats();
    expect(stats.channels[0]?.max).toBe(255);
    expect(stats.channels[0]?.min).toBeLessThan(100);
    const svg = await renderSvg({ data: { values: [{ x: 0, y: 0 }, { x: 1, y: 1 }] }, mark: 'line', encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } }, title: 'hello' });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('hello');
  });
});
