import { describe, expect, it } from 'vitest';
import type { JobResult } from '../../../../src/core/engine/job.js';
import type { PlannedCellRecord, SweepRecord } from '../../../../src/core/engine/sweep/state.js';
import { formatStat, meanStd, renderFoldsCsv, renderMarkdown, renderSummaryCsv, summarizeSweep } from '../../../../src/core/engine/sweep/table.js';

function cell(index: number, extra: Partial<PlannedCellRecord>, folds = 3): PlannedCellRecord {
  return {
    index, name: extra.name ?? `c${index}`, params: {}, overrides: [], configHash: `h${index}`, folds,
    jobIds: Array.from({ length: folds }, (_, f) => `c${index}f${f}`), ...extra,
  };
}

function record(cells: PlannedCellRecord[]): SweepRecord {
  return { version: 1, name: 't', specHash: 'x', experimentFile: '/e.yaml', cwd: '/', grid: [], zip: [], cells };
}

function result(id: string, metrics: Record<string, number | null>, secondsPerSlide = 0.5): JobResult {
  return { id, fold: Number(id.slice(-1)), metrics, secondsPerSlide, epochs: 3 };
}

describe('sweep table', () => {
  it('computes mean and sample standard deviation (n − 1) over finite values', () => {
    expect(meanStd([0.8, 0.9, 1.0]).mean).toBeCloseTo(0.9, 12);
    expect(meanStd([0.8, 0.9, 1.0]).std).toBeCloseTo(0.1, 12);
    // Hand value: values 1, 2, 3, 4 → mean 2.5, squared deviations sum 5, / 3 → std √(5/3).
    expect(meanStd([1, 2, 3, 4]).std).toBeCloseTo(Math.sqrt(5 / 3), 12);
    expect(meanStd([0.7, null, Number.NaN])).toEqual({ mean: 0.7, std: null, n: 1 });
    expect(meanStd([])).toEqual({ mean: null, std: null, n: 0 });
  });

  it('formats mean ± std and marks folds that did not report', () => {
    expect(formatStat({ mean: 0.6, std: Math.SQRT2 / 10, n: 2 }, 3)).toBe('0.6000 ± 0.1414 (n=2/3)');
    expect(formatStat({ mean: 0.9, std: 0.1, n: 3 }, 3)).toBe('0.9000 ± 0.1000');
    expect(formatStat({ mean: null, std: null, n: 0 }, 3)).toBe('—');
  });

  it('lists cells × metrics in sweep order with grid parameters as columns', () => {
    const rec = record([cell(0, { name: 'lr=1 wd=0', params: { lr: '1', wd: '0' } }), cell(1, { name: 'lr=2 wd=0', params: { lr: '2', wd: '0' } })]);
    const results = new Map<string, JobResult>([
      ['c0f0', result('c0f0', { auc: 0.8, acc: 0.5 })],
      ['c0f1', result('c0f1', { auc: 0.9, acc: 0.7 })],
      ['c0f2', result('c0f2', { auc: 1.0, acc: null })],
      ['c1f0', result('c1f0', { auc: 0.6, acc: 0.6 })],
    ]);
    const table = summarizeSweep(rec, results);
    expect(table.metrics).toEqual(['auc', 'acc', 's/slide']);
    expect(renderMarkdown(table)).toBe([
      '| lr | wd | folds | auc | acc | s/slide |',
      '| --- | --- | --- | --- | --- | --- |',
      '| 1 | 0 | 3/3 | 0.9000 ± 0.1000 | 0.6000 ± 0.1414 (n=2/3) | 0.5000 ± 0.0000 |',
      '| 2 | 0 | 1/3 | 0.6000 (n=1/3) | 0.6000 (n=1/3) | 0.5000 (n=1/3) |',
    ].join('\n'));
    const csv = renderSummaryCsv(summarizeSweep(rec, results, { metrics: ['auc'], includeTime: false })).trim().split('\n');
    expect(csv[0]).toBe('cell,row,dataset,lr,wd,folds,done,auc mean,auc std,auc n');
    expect(csv[1]).toBe('lr=1 wd=0,,,1,0,3,3,0.9,0.09999999999999998,3');
    const folds = renderFoldsCsv(table, results, new Map([['c1f1', { message: 'fold 1 fails on purpose.\nsecond line' }]])).trim().split('\n');
    expect(folds[0]).toBe('cell,fold,job,status,epochs,s/slide,auc,acc,error');
    expect(folds[5]).toBe('lr=2 wd=0,1,c1f1,failed,,,,,fold 1 fails on purpose.');
    expect(folds[6]).toBe('lr=2 wd=0,2,c1f2,missing,,,,,');
  });

  it('pivots rows × datasets with an Average column of per-dataset means (ablation-table layout)', () => {
    const rec = record([
      cell(0, { row: 'baseline', dataset: 'C16' }, 2), cell(1, { row: 'baseline', dataset: 'NSCLC' }, 2),
      cell(2, { row: '+DMIN', dataset: 'C16' }, 2), cell(3, { row: '+DMIN', dataset: 'NSCLC' }, 2),
    ]);
    const auc: Record<string, number> = { c0f0: 0.80, c0f1: 0.84, c1f0: 0.90, c1f1: 0.92, c2f0: 0.88, c2f1: 0.90, c3f0: 0.94 };
    const results = new Map(Object.entries(auc).map(([id, v]) => [id, result(id, { auc: v })]));
    const table = summarizeSweep(rec, results, { metrics: ['auc'], includeTime: false });
    // baseline: C16 mean 0.82 (std √((0.02²+0.02²)/1) = 0.0283), NSCLC 0.91 (0.0141); average (0.82+0.91)/2 = 0.865.
    // +DMIN: C16 0.89 (0.0141), NSCLC 0.94 from one of two folds; average (0.89+0.94)/2 = 0.915.
    expect(renderMarkdown(table)).toBe([
      '| row | C16 auc | NSCLC auc | Average auc |',
      '| --- | --- | --- | --- |',
      '| baseline | 0.8200 ± 0.0283 | 0.9100 ± 0.0141 | 0.8650 |',
      '| +DMIN | 0.8900 ± 0.0141 | 0.9400 (n=1/2) | 0.9150 |',
    ].join('\n'));
  });

  it('leaves the Average empty when a dataset has no value', () => {
    const rec = record([cell(0, { row: 'r', dataset: 'A' }, 1), cell(1, { row: 'r', dataset: 'B' }, 1)]);
    const table = summarizeSweep(rec, new Map([['c0f0', result('c0f0', { auc: 0.7 })]]), { includeTime: false });
    expect(renderMarkdown(table).split('\n')[2]).toBe('| r | 0.7000 | — | — |');
  });
});

describe('sweep table with repeated splits', () => {
  it('reports ± as the std of the per-repeat means and says so under the table', () => {
    const rec = record([cell(0, { name: 'abmil' }, 4)]);
    // Repeat 0: folds 0.8, 0.9 → 0.85; repeat 1: folds 0.6, 0.7 → 0.65 → mean 0.75, std √(2·0.1²) = 0.141421.
    const results = new Map<string, JobResult>([
      ['c0f0', result('c0f0', { auc: 0.8 })], ['c0f1', result('c0f1', { auc: 0.9 })],
      ['c0f2', result('c0f2', { auc: 0.6 })], ['c0f3', result('c0f3', { auc: 0.7 })],
    ]);
    const repeatOf = new Map([['c0f0', 0], ['c0f1', 0], ['c0f2', 1], ['c0f3', 1]]);
    const table = summarizeSweep(rec, results, { metrics: ['auc'], repeatOf });
    expect(table.cells[0]?.metrics.auc?.mean).toBeCloseTo(0.75, 12);
    expect(table.cells[0]?.metrics.auc?.std).toBeCloseTo(Math.SQRT2 * 0.1, 12);
    expect(table.cells[0]?.metrics.auc).toMatchObject({ n: 4, repeats: 2 });
    const text = renderMarkdown(table, { marks: new Map([[0, { auc: '≈' }]]) });
    expect(text.split('\n')[2]).toBe('| abmil | 4/4 | 0.7500 ± 0.1414 ≈ |');
    expect(text.split('\n').at(-1)).toBe('± is the sample standard deviation of the 2 per-repeat means (each the mean over that repeat\'s folds).');
    // Without repeats the plain fold std stays: std of 0.8, 0.9, 0.6, 0.7 = 0.129099.
    expect(summarizeSweep(rec, results, { metrics: ['auc'] }).cells[0]?.metrics.auc?.std).toBeCloseTo(0.1290994, 6);
  });
});
