import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { JobResult } from '../../../../src/core/engine/job.js';
import { compareSweepRows, computeCellIntervals, loadRowRecords, metricRequests, renderComparisonMarkdown, renderIntervalMarkdown, rowLabel, rowLabels } from '../../../../src/core/engine/sweep/comparison.js';
import { readFoldPredictions } from '../../../../src/core/stats/report.js';
import { SweepLayout, writeAtomic, type PlannedCellRecord, type SweepRecord } from '../../../../src/core/engine/sweep/state.js';
import { renderMarkdown, summarizeSweep } from '../../../../src/core/engine/sweep/table.js';
import { writeForestPlot } from '../../../../src/core/eval/plots.js';
import { predictionsCsv } from '../../../../src/core/eval/predictions.js';
import { binaryAuc } from '../../../../src/core/eval/classification.js';
import { Rng } from '../../../../src/core/runtime/random.js';
import type { ComparisonResult } from '../../../../src/core/stats/compare.js';
import { cellInterval } from '../../../../src/core/stats/cell-interval.js';
import type { Metric } from '../../../../src/registry/index.js';

const FOLDS = 3;
const AUC: Metric = {
  compute: (input) => {
    const value = binaryAuc(input.labels.map((y) => y === 1), input.probs.map((p) => p[1] as number));
    return value === null ? { value, reason: 'one class' } : { value };
  },
};
const SLIDES = Array.from({ length: 24 }, (_, i) => ({ slideId: `s${String(i).padStart(2, '0')}`, caseId: `c${Math.floor(i / 2)}`, label: i % 2 }));

function cell(index: number, row: string, dataset?: string): PlannedCellRecord {
  return {
    index, name: [row, dataset].filter(Boolean).join(' | '), row, ...(dataset ? { dataset } : {}), params: {}, overrides: [], configHash: `h${index}`, folds: FOLDS,
    jobIds: Array.from({ length: FOLDS }, (_, f) => `job${index}f${f}`),
  };
}

/** Writes a job folder as runExperiment leaves it (splits/splits.json, fold-<k>/predictions.csv) and returns its result. */
async function writeJob(layout: SweepLayout, id: string, fold: number, strength: number, rng: Rng, valIsTest = false): Promise<JobResult> {
  const test = SLIDES.filter((_, i) => Math.floor(i / 2) % FOLDS === fold);
  const train = SLIDES.filter((s) => !test.includes(s)).map((s) => s.slideId);
  const testIds = test.map((s) => s.slideId);
  const folds = Array.from({ length: FOLDS }, (_, k) => (k === fold ? { index: k, train, val: valIsTest ? testIds : [], test: testIds } : { index: k, train: [], val: [], test: [] }));
  await writeAtomic(path.join(layout.jobDir(id), 'splits', 'splits.json'), JSON.stringify({ folds }));
  const rows = test.map((s) => {
    const p = Math.min(0.99, Math.max(0.01, 0.5 + strength * (s.label - 0.5) + 0.25 * rng.normal()));
    return { slideId: s.slideId, caseId: s.caseId, label: s.label, probs: [1 - p, p], prediction: p > 0.5 ? 1 : 0, fold };
  });
  await writeAtomic(path.join(layout.jobDir(id), `fold-${fold}`, 'predictions.csv'), predictionsCsv(rows, ['normal', 'tumor']));
  const auc = binaryAuc(rows.map((r) => r.label === 1), rows.map((r) => r.probs[1] as number));
  return { id, fold, metrics: { auc }, secondsPerSlide: 0.1, epochs: 1 };
}

async function sweepState(options: { failBaselineFold?: number; valIsTest?: boolean } = {}) {
  const layout = new SweepLayout(await mkdtemp(path.join(tmpdir(), 'milkit-comparison-')));
  const cells = [cell(0, 'ABMIL'), cell(1, '+ CKA'), cell(2, '+ screening')];
  const record: SweepRecord = { version: 1, name: 'table', specHash: 'abcd1234', experimentFile: '/e.yaml', cwd: '/', grid: [], zip: [], cells };
  const results = new Map<string, JobResult>();
  const rng = new Rng('comparison-test');
  const strengths = [0.3, 0.3, 0.8];
  for (const c of cells) {
    for (const [fold, id] of c.jobIds.entries()) {
      const job = await writeJob(layout, id, fold, strengths[c.index] as number, rng.fork(id), options.valIsTest === true && c.index === 1);
      if (!(c.index === 0 && fold === options.failBaselineFold)) results.set(id, job);
    }
  }
  return { layout, record, results };
}

describe('sweep comparison', () => {
  it('gives every cell its pooled out-of-fold metric with a bootstrap CI from a fixed stream, and flags a failed fold', async () => {
    const { layout, record, results } = await sweepState({ failBaselineFold: 2 });
    const rows = await loadRowRecords(record, results, layout);
    const intervals = computeCellIntervals(record, rows, ['auc', 's/slide'], { bootstrapResamples: 400, metricFor: (name) => (name === 'auc' ? AUC : undefined) });
    // The same numbers as cellInterval on the row's folds with the stream forked for (dataset, row, metric).
    const strong = intervals.byCell.get(2)?.auc;
    const direct = cellInterval(rows[2]?.folds ?? [], AUC, { resamples: 400, rng: new Rng('sweep-stats').fork('cell//+ screening/auc') });
    expect(strong).toEqual(direct);
    // Pooled over the 24 slides: the value is the AUC of all out-of-fold predictions of the row.
    const pooled = (rows[2]?.folds ?? []).flatMap((f) => (f?.predictions ? f.predictions.labels.map((y, i) => [y, f.predictions?.probs[i]?.[1] as number] as const) : []));
    expect(strong?.value).toBeCloseTo(binaryAuc(pooled.map(([y]) => y === 1), pooled.map(([, p]) => p)) as number, 12);
    expect(strong).toMatchObject({ units: 1, plannedFolds: 3, pooledFolds: 3, resamples: 400 });
    expect(intervals.byCell.get(0)?.auc).toMatchObject({ plannedFolds: 3, pooledFolds: 2 });
    const text = renderIntervalMarkdown(record, intervals, ['auc', 's/slide']);
    const lines = text.split('\n');
    expect(lines.slice(1, 5)).toEqual(['#### Pooled out-of-fold estimates with bootstrap CIs [^ci]', '', '| row | auc [95% CI] |', '| --- | --- |']);
    expect(lines[5]).toMatch(/^\| ABMIL \| [01]\.\d{4} \[[01]\.\d{4}, [01]\.\d{4}\] \(2\/3 folds\) \|$/);
    expect(lines[7]).toBe(`| + screening | ${strong?.value.toFixed(4)} [${strong?.ci[0].toFixed(4)}, ${strong?.ci[1].toFixed(4)}] |`);
    expect(text).toContain('**Warning**: ABMIL: folds without predictions (failed or missing) are left out of the pool');
    expect(text).toContain('400 resamples per repeat, drawn from the fixed random stream "sweep-stats"');
    // Off with 0 resamples.
    expect(renderIntervalMarkdown(record, computeCellIntervals(record, rows, ['auc'], { bootstrapResamples: 0, metricFor: () => AUC }), ['auc'])).toBe('');
  });

  it('reads fold predictions back from predictions.csv', async () => {
    const { layout } = await sweepState();
    const set = await readFoldPredictions(path.join(layout.jobDir('job0f1'), 'fold-1', 'predictions.csv'));
    expect(set?.numClasses).toBe(2);
    expect(set?.slideIds).toEqual(['s02', 's03', 's08', 's09', 's14', 's15', 's20', 's21']);
    expect(set?.caseIds.slice(0, 2)).toEqual(['c1', 'c1']);
    expect(await readFoldPredictions(path.join(layout.dir, 'missing.csv'))).toBeUndefined();
  });

  it('loads each fold with its split sizes and compares every row with the first', async () => {
    const { layout, record, results } = await sweepState();
    const rows = await loadRowRecords(record, results, layout);
    expect(rows.map((r) => r.label)).toEqual(['ABMIL', '+ CKA', '+ screening']);
    expect(rows[0]?.folds.map((f) => [f?.nTrain, f?.nTest, f?.repeat])).toEqual([[16, 8, 0], [16, 8, 0], [16, 8, 0]]);
    const comparison = compareSweepRows(rows, ['auc', 's/slide'], { bootstrapResamples: 200, metricFor: () => undefined });
    expect(comparison.rows.map((r) => [r.label, r.isBaseline, r.metrics.map((m) => m.metric)])).toEqual([['ABMIL', true, []], ['+ CKA', false, ['auc']], ['+ screening', false, ['auc']]]);
    const screening = comparison.rows[2]?.metrics[0];
    expect(screening?.pairedFolds).toBe(3);
    expect(screening?.delong?.units).toBe(1);
    const markdown = renderComparisonMarkdown(comparison);
    expect(markdown).toContain('#### auc: difference from the baseline (ABMIL) [^stats]');
    expect(markdown).toContain('| row | paired folds | Δ t-test [95% CI] | p (Holm) | mark | DeLong ΔAUC [95% CI] | p | bootstrap Δ [95% CI] | p |');
    expect(markdown).toContain('[^stats]: Δ = row − baseline. **Corrected resampled t-test** (Nadeau & Bengio 2003)');
    // Same results, same numbers: the bootstrap stream does not depend on the state folder or tracking settings.
    const withBootstrap = (): ComparisonResult => compareSweepRows(rows, ['auc'], { bootstrapResamples: 200, metricFor: () => AUC });
    expect(withBootstrap().rows[2]?.metrics[0]?.bootstrap?.units).toBe(1);
    expect(withBootstrap()).toEqual(withBootstrap());
  });

  it('puts the mark in the table cell and flags a failed baseline fold', async () => {
    const { layout, record, results } = await sweepState({ failBaselineFold: 2 });
    const rows = await loadRowRecords(record, results, layout);
    const comparison = compareSweepRows(rows, ['auc'], { bootstrapResamples: 0 });
    expect(comparison.rows[1]?.flags).toEqual(['fold(s) 2 failed or are missing in this row or the baseline and are left out of the tests']);
    expect(comparison.rows[1]?.metrics[0]?.pairedFolds).toBe(2);
    const marks = new Map([[1, { auc: comparison.rows[1]?.metrics[0]?.mark ?? '' }]]);
    const table = renderMarkdown(summarizeSweep(record, results, { metrics: ['auc'] }), { marks });
    expect(table.split('\n')[3]).toMatch(/^\| \+ CKA \| 3\/3 \| 0\.\d{4} ± 0\.\d{4} [▲▼≈] \|$/);
    expect(renderComparisonMarkdown(comparison)).toContain('- + CKA: fold(s) 2 failed or are missing in this row or the baseline and are left out of the tests');
  });

  it('warns when a row validated on its test slides, and when folds have no validation set', async () => {
    const { layout, record, results } = await sweepState({ valIsTest: true });
    const comparison = compareSweepRows(await loadRowRecords(record, results, layout), ['auc'], { bootstrapResamples: 0 });
    expect(comparison.warnings).toEqual([
      'ABMIL: 3 fold(s) have no validation set; make sure early stopping and model selection did not fall back to the test slides',
      '+ CKA: in 3 fold(s) the validation set is the test set, so model selection saw the test slides and every number of that row is optimistic',
      '+ screening: 3 fold(s) have no validation set; make sure early stopping and model selection did not fall back to the test slides',
    ]);
  });

  it('labels rows by name and grid values; datasets are groups, not labels', () => {
    const c = { ...cell(4, 'ABMIL', 'camelyon16'), params: { 'train.lr': '1e-4', seed: '1' } };
    expect(rowLabel(c)).toBe('ABMIL | train.lr=1e-4 seed=1');
    expect(rowLabels([cell(0, 'A', 'd1'), cell(1, 'A', 'd2'), cell(2, 'B', 'd1')])).toEqual(['A', 'B']);
  });

  it('writes a forest plot PNG', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'milkit-forest-')), 'forest.png');
    await writeForestPlot(file, [
      { label: '+ CKA', estimate: 0.01, low: -0.05, high: 0.07, mark: '≈' },
      { label: '+ screening', estimate: 0.08, low: 0.02, high: 0.14, mark: '▲' },
    ], { title: 'auc', xTitle: 'Δ auc', baseline: 'ABMIL' });
    const meta = await sharp(await readFile(file)).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThan(600);
    expect(await writeForestPlot(file, [], { title: '', xTitle: '', baseline: '' })).toBeUndefined();
  });
});

// Hierarchical rows: four fine classes under two coarse ones, as HMIL's sweeps report them. The fold metrics carry
// `coarse_*` keys; predictions.csv carries the coarse columns (coarse_label, pc_<class>).
const FINE_NAMES = ['a1', 'a2', 'b1', 'b2'];
const COARSE_NAMES = ['a', 'b'];
const parentOf = (fine: number): number => (fine < 2 ? 0 : 1);
const ACCURACY: Metric = {
  compute: (input) => ({ value: input.labels.filter((y, i) => (input.probs[i] ?? []).indexOf(Math.max(...(input.probs[i] ?? []))) === y).length / input.labels.length }),
};
const coarseProbs = (probs: readonly number[]): number[] => [(probs[0] ?? 0) + (probs[1] ?? 0), (probs[2] ?? 0) + (probs[3] ?? 0)];

async function writeHierarchicalJob(layout: SweepLayout, id: string, fold: number, strength: number, rng: Rng): Promise<JobResult> {
  const slides = SLIDES.map((s, i) => ({ ...s, label: i % 4 }));
  const test = slides.filter((_, i) => Math.floor(i / 2) % FOLDS === fold);
  const train = slides.filter((s) => !test.includes(s)).map((s) => s.slideId);
  const folds = Array.from({ length: FOLDS }, (_, k) => (k === fold ? { index: k, train, val: train.slice(0, 2), test: test.map((s) => s.slideId) } : { index: k, train: [], val: [], test: [] }));
  await writeAtomic(path.join(layout.jobDir(id), 'splits', 'splits.json'), JSON.stringify({ folds }));
  const rows = test.map((s) => {
    const logits = FINE_NAMES.map((_, k) => (k === s.label ? strength : 0) + rng.normal());
    const total = logits.reduce((a, l) => a + Math.exp(l), 0);
    const probs = logits.map((l) => Math.exp(l) / total);
    const coarse = coarseProbs(probs);
    return {
      slideId: s.slideId, caseId: s.caseId, label: s.label, probs, prediction: probs.indexOf(Math.max(...probs)), fold,
      coarse: { label: parentOf(s.label), probs: coarse, prediction: coarse[1] as number > 0.5 ? 1 : 0 },
    };
  });
  await writeAtomic(path.join(layout.jobDir(id), `fold-${fold}`, 'predictions.csv'), predictionsCsv(rows, FINE_NAMES, COARSE_NAMES));
  const coarseAuc = binaryAuc(rows.map((r) => r.coarse.label === 1), rows.map((r) => r.coarse.probs[1] as number));
  const coarseInput = { labels: rows.map((r) => r.coarse.label), probs: rows.map((r) => r.coarse.probs), numClasses: 2 };
  const fineInput = { labels: rows.map((r) => r.label), probs: rows.map((r) => r.probs), numClasses: 4 };
  return { id, fold, metrics: { accuracy: ACCURACY.compute(fineInput).value, coarse_auc: coarseAuc, coarse_accuracy: ACCURACY.compute(coarseInput).value }, secondsPerSlide: 0.1, epochs: 1 };
}

describe('sweep comparison at a second label level (coarse_* metrics)', () => {
  // Plugins by their own name and class count, as the CLI's registry hands them out: no `coarse_` plugin exists.
  const metricFor = (name: string, numClasses: number): Metric | undefined => (name === 'auc' && numClasses === 2 ? AUC : name === 'accuracy' ? ACCURACY : undefined);

  async function hierarchicalState() {
    const layout = new SweepLayout(await mkdtemp(path.join(tmpdir(), 'milkit-comparison-levels-')));
    const cells = [cell(0, 'HMIL'), cell(1, 'ABMIL')];
    const record: SweepRecord = { version: 1, name: 'levels', specHash: 'abcd1234', experimentFile: '/e.yaml', cwd: '/', grid: [], zip: [], cells };
    const results = new Map<string, JobResult>();
    const rng = new Rng('comparison-levels');
    for (const c of cells) {
      for (const [fold, id] of c.jobIds.entries()) results.set(id, await writeHierarchicalJob(layout, id, fold, c.index === 0 ? 0.5 : 2.5, rng.fork(id)));
    }
    return { layout, record, rows: await loadRowRecords(record, results, layout) };
  }

  it('reads the coarse level of predictions.csv as a second prediction set of the same slides', async () => {
    const { rows } = await hierarchicalState();
    const set = rows[0]?.folds[1]?.predictions;
    expect(set?.numClasses).toBe(4);
    const coarse = set?.levels?.coarse;
    expect(coarse?.numClasses).toBe(2);
    expect(coarse?.slideIds).toEqual(set?.slideIds);
    expect(coarse?.labels).toEqual(set?.labels.map(parentOf));
    for (const [i, p] of (set?.probs ?? []).entries()) expect(coarse?.probs[i]?.[1]).toBeCloseTo((p[2] ?? 0) + (p[3] ?? 0), 12);
    // A slide without a coarse label leaves the level out rather than scoring it on part of the slides.
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'milkit-levels-')), 'predictions.csv');
    const partialRows = [
      { slideId: 'x', caseId: 'x', label: 0, probs: [0.7, 0.1, 0.1, 0.1], prediction: 0, coarse: { label: 0, probs: [0.8, 0.2], prediction: 0 } },
      { slideId: 'y', caseId: 'y', label: 2, probs: [0.1, 0.1, 0.7, 0.1], prediction: 2 },
    ];
    await writeAtomic(file, predictionsCsv(partialRows, FINE_NAMES, COARSE_NAMES));
    const partial = await readFoldPredictions(file);
    expect(partial?.numClasses).toBe(4);
    expect(partial?.levels).toBeUndefined();
  });

  it('asks for each coarse_<metric> as <metric> at the coarse class count', async () => {
    const { rows } = await hierarchicalState();
    expect(metricRequests(rows, ['accuracy', 'coarse_auc', 'coarse_accuracy', 's/slide'])).toEqual([
      { name: 'accuracy', numClasses: 4 }, { name: 'coarse_auc', numClasses: 4 }, { name: 'auc', numClasses: 2 },
      { name: 'coarse_accuracy', numClasses: 4 }, { name: 'accuracy', numClasses: 2 },
    ]);
  });

  it('gives coarse_* metrics pooled CIs, the paired bootstrap and (binary coarse AUC) DeLong, like the flat ones', async () => {
    const { record, rows } = await hierarchicalState();
    const intervals = computeCellIntervals(record, rows, ['accuracy', 'coarse_auc', 'coarse_accuracy'], { bootstrapResamples: 300, metricFor });
    const coarseAuc = intervals.byCell.get(1)?.coarse_auc;
    // The value is the AUC of the pooled coarse probabilities of the row's three folds.
    const pooled = (rows[1]?.folds ?? []).flatMap((f) => {
      const c = f?.predictions?.levels?.coarse;
      return c ? c.labels.map((y, i) => [y, c.probs[i]?.[1] as number] as const) : [];
    });
    expect(pooled).toHaveLength(24);
    expect(coarseAuc?.value).toBeCloseTo(binaryAuc(pooled.map(([y]) => y === 1), pooled.map(([, p]) => p)) as number, 12);
    expect(coarseAuc).toEqual(cellInterval(rows[1]?.folds ?? [], AUC, { resamples: 300, rng: new Rng('sweep-stats').fork('cell//ABMIL/coarse_auc'), level: 'coarse' }));
    expect(coarseAuc?.ci[0]).toBeLessThanOrEqual(coarseAuc?.value as number);
    expect(intervals.byCell.get(0)?.coarse_accuracy).toMatchObject({ units: 1, pooledFolds: 3 });
    // The fine accuracy is still computed on the fine predictions (4 classes), not on the coarse ones.
    const fineAccuracy = intervals.byCell.get(0)?.accuracy;
    const finePooled = (rows[0]?.folds ?? []).flatMap((f) => (f?.predictions ? f.predictions.labels.map((y, i) => [y, f.predictions?.probs[i] ?? []] as const) : []));
    expect(fineAccuracy?.value).toBeCloseTo(finePooled.filter(([y, p]) => p.indexOf(Math.max(...p)) === y).length / 24, 12);
    const table = renderIntervalMarkdown(record, intervals, ['accuracy', 'coarse_auc', 'coarse_accuracy']);
    expect(table).toContain('| row | accuracy [95% CI] | coarse_auc [95% CI] | coarse_accuracy [95% CI] |');

    const comparison = compareSweepRows(rows, ['accuracy', 'coarse_auc', 'coarse_accuracy'], { bootstrapResamples: 300, metricFor });
    const abmil = comparison.rows[1];
    const byMetric = (m: string) => abmil?.metrics.find((x) => x.metric === m);
    expect(byMetric('coarse_auc')?.bootstrap?.units).toBe(1);
    expect(byMetric('coarse_accuracy')?.bootstrap?.units).toBe(1);
    expect(byMetric('coarse_auc')?.delong?.units).toBe(1);
    // The bootstrap's Δ is the pooled coarse AUC difference of the two rows on the same slides.
    const hmilCoarse = intervals.byCell.get(0)?.coarse_auc?.value as number;
    expect(byMetric('coarse_auc')?.bootstrap?.difference).toBeCloseTo((coarseAuc?.value as number) - hmilCoarse, 12);
    expect(byMetric('coarse_auc')?.delong?.difference).toBeCloseTo((coarseAuc?.value as number) - hmilCoarse, 12);
    // Fine accuracy keeps its bootstrap, and a fine AUC on 4 classes (no plugin here) still gets neither.
    expect(byMetric('accuracy')?.bootstrap?.units).toBe(1);
    expect(byMetric('accuracy')?.delong).toBeNull();
    const markdown = renderComparisonMarkdown(comparison);
    expect(markdown).toMatch(/#### coarse_auc: difference from the baseline \(HMIL\) \[\^stats\][\s\S]*\| ABMIL \| 3 \| [+-]0\.\d{4} \[[^\]]+\] \| [\d.<]+ \| [▲▼≈] \| [+-]0\.\d{4} \[/);
  });
});
