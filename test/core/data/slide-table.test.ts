import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSlideTable, readSlideTable } from '../../../src/core/data/slide-table.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { UNLABELLED } from '../../../src/registry/contracts/data.js';
import { asyncErrorText, errorText } from './error-text.js';

const FILE = 'data/slides.csv';
const parse = (text: string, labels?: Record<string, number>, logger = new MemoryLogger()) => parseSlideTable(text, FILE, { logger, ...(labels ? { labels } : {}) });

describe('core/data/slide-table', () => {
  it('reads slides, cases, declared labels and keeps extra columns as metadata', () => {
    const table = parse('case_id,slide_id,label,site,coarse_label\nP1,s1,tumor_tissue,A,malignant\nP1,s2,normal_tissue,A,benign\nP2,s3,tumor_tissue,B,malignant\n', { normal_tissue: 0, tumor_tissue: 1 });
    expect(table.classNames).toEqual(['normal_tissue', 'tumor_tissue']);
    expect(table.slides).toEqual([
      { slideId: 's1', caseId: 'P1', label: 1, labelName: 'tumor_tissue', meta: { site: 'A', coarse_label: 'malignant' } },
      { slideId: 's2', caseId: 'P1', label: 0, labelName: 'normal_tissue', meta: { site: 'A', coarse_label: 'benign' } },
      { slideId: 's3', caseId: 'P2', label: 1, labelName: 'tumor_tissue', meta: { site: 'B', coarse_label: 'malignant' } },
    ]);
  });

  it('infers a sorted label map (integers numerically) and prints it', () => {
    const logger = new MemoryLogger();
    const table = parse('slide_id,case_id,label\na,1,10\nb,2,9\nc,3,10\n', undefined, logger);
    expect(table.classNames).toEqual(['9', '10']);
    expect(table.slides.map((s) => s.label)).toEqual([1, 0, 1]);
    expect(logger.text()).toBe('info: labels inferred (declare data.labels to fix the order): 9=0, 10=1');
  });

  it('maps several label names to one class (CLAM subtyping maps)', () => {
    const table = parse('slide_id,label\na,IDC\nb,ILC\nc,mixed\n', { IDC: 0, ILC: 1, mixed: 1 });
    expect(table.classNames).toEqual(['IDC', 'ILC|mixed']);
    expect(table.slides.map((s) => s.label)).toEqual([0, 1, 1]);
  });

  it('makes each slide its own case when there is no case_id column, and says so', () => {
    const logger = new MemoryLogger();
    const table = parse('slide_id,label\na,x\nb,y\n', undefined, logger);
    expect(table.slides.map((s) => s.caseId)).toEqual(['a', 'b']);
    expect(logger.text()).toContain('data/slides.csv: no "case_id" column, so every slide is its own case (splits group by case)');
  });

  it.each([
    ['label not in the map', 'slide_id,case_id,label\na,1,normal\nb,2,tumour\n', { normal: 0, tumor: 1 }, 'DataError[unknown-label] data/slides.csv:3: slide "b": label "tumour" is not in data.labels (declared: normal, tumor). Did you mean "tumor"? Add it to data.labels or fix the slide table.'],
    ['duplicate slide_id', 'slide_id,case_id,label\na,1,x\nb,2,x\na,3,y\n', undefined, 'DataError[duplicate-slide-id] data/slides.csv:4: slide_id "a" appears twice (lines 2 and 4). Slide ids must be unique; remove or rename the duplicate row.'],
    ['missing label column', 'slide_id,case_id,labels\na,1,x\n', undefined, 'DataError[slide-table-columns] data/slides.csv: the slide table has no "label" column (columns: slide_id, case_id, labels). Did you mean "labels"? Name the columns slide_id, case_id, label, or set data.dataset.labelColumn.'],
    ['missing slide_id column', 'slide,label\na,x\n', undefined, 'DataError[slide-table-columns] data/slides.csv: the slide table has no "slide_id" column (columns: slide, label). Did you mean "slide"? Name the columns slide_id, case_id, label, or set data.dataset.slideColumn.'],
    ['empty label', 'slide_id,label\na,x\nb,\n', undefined, 'DataError[missing-label] data/slides.csv:3: slide "b" has an empty label. Fill in the label or drop the row.'],
    ['ragged row', 'slide_id,label\na,x,extra\n', undefined, 'DataError[slide-table-parse] data/slides.csv:2: cannot parse the slide table (Invalid Record Length: columns length is 2, got 3 on line 2). The slide table is a comma-separated file with a header row.'],
    ['declared map with a gap', 'slide_id,label\na,x\n', { x: 0, y: 2 }, 'ConfigError[label-map-gap] data.labels: data.labels maps no name to class 1 (classes must be 0..2 without gaps). Renumber the classes so every index from 0 to C-1 is used.'],
  ])('rejects a table with a %s', (_, text, labels, message) => {
    expect(errorText(() => parse(text, labels))).toBe(message);
  });

  describe('unlabelled cohorts (prediction only)', () => {
    const classes = { normal: 0, tumor: 1 };
    // null: no declared map (undefined would take the default).
    const open = (text: string, labels: Record<string, number> | null = classes) =>
      parseSlideTable(text, FILE, { logger: new MemoryLogger(), allowUnlabelled: true, ...(labels ? { labels } : {}) });

    it.each([
      ['without a label column', 'slide_id,case_id,site\na,P1,A\nb,P2,B\n'],
      ['with an empty label column', 'slide_id,case_id,label,site\na,P1,,A\nb,P2,,B\n'],
    ])('reads a table %s: every slide UNLABELLED, the classes from the declared map', (_, text) => {
      const table = open(text);
      expect(table.labelled).toBe(false);
      expect(table.classNames).toEqual(['normal', 'tumor']);
      expect(table.slides).toEqual([
        { slideId: 'a', caseId: 'P1', label: UNLABELLED, labelName: '', meta: { site: 'A' } },
        { slideId: 'b', caseId: 'P2', label: UNLABELLED, labelName: '', meta: { site: 'B' } },
      ]);
    });

    it('keeps the labels of a labelled table', () => {
      const table = open('slide_id,label\na,tumor\nb,normal\n');
      expect(table.labelled).toBe(true);
      expect(table.slides.map((s) => s.label)).toEqual([1, 0]);
    });

    it.each([
      ['half-filled label column', 'slide_id,label\na,tumor\nb,\n', classes, 'DataError[missing-label] data/slides.csv:3: slide "b" has an empty label. Fill in every label, or leave the whole column empty to predict without metrics.'],
      ['table without labels and no declared classes', 'slide_id\na\n', null, 'DataError[unlabelled-without-classes] data/slides.csv: the slide table has no labels (column "label"), and no label map says which classes exist. Declare data.labels, or add the label column.'],
    ])('rejects a %s', (_, text, labels, message) => {
      expect(errorText(() => open(text, labels))).toBe(message);
    });

    it('training (no allowUnlabelled) still requires the label column', () => {
      expect(errorText(() => parse('slide_id,case_id\na,1\n', classes))).toBe(
        'DataError[slide-table-columns] data/slides.csv: the slide table has no "label" column (columns: slide_id, case_id). Name the columns slide_id, case_id, label, or set data.dataset.labelColumn.',
      );
    });
  });

  it('names a missing slide table', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'milkit-table-')), 'nope.csv');
    expect(await asyncErrorText(() => readSlideTable(file, { logger: new MemoryLogger() }))).toBe(
      `DataError[missing-file] ${file}: slide table not found. Check data.dataset.slideTable (relative paths resolve against the experiment file).`,
    );
  });
});
