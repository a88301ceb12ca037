import { describe, expect, it } from 'vitest';
import { DataError } from '../../../src/core/errors.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import { checkSplitSense, leakedPatients } from '../../../src/core/data/split-checks.js';
import type { Fold } from '../../../src/core/data/splits.js';
import type { SlideRecord } from '../../../src/registry/contracts/data.js';

const slide = (slideId: string, caseId: string, label: number): SlideRecord => ({ slideId, caseId, label, labelName: String(label), meta: {} });
// Patients p1..p4, p1 and p3 with two slides each.
const SLIDES = [slide('a1', 'p1', 0), slide('a2', 'p1', 0), slide('b', 'p2', 1), slide('c1', 'p3', 1), slide('c2', 'p3', 1), slide('d', 'p4', 0), slide('e', 'p5', 1), slide('f', 'p6', 0)];
const CLASSES = ['normal', 'tumor'];

function run(folds: Fold[]): { error: unknown; warnings: string[] } {
  const logger = new MemoryLogger();
  let error: unknown;
  try {
    checkSplitSense(folds, SLIDES, { classNames: CLASSES, logger, file: 'splits/splits_0.csv' });
  } catch (e) {
    error = e;
  }
  return { error, warnings: logger.lines.filter((l) => l.level === 'warn').map((l) => l.message) };
}

describe('checkSplitSense', () => {
  it('accepts a clean fold silently', () => {
    expect(run([{ index: 0, train: ['a1', 'a2', 'b'], val: ['c1', 'c2', 'd'], test: ['e', 'f'] }])).toEqual({ error: undefined, warnings: [] });
  });

  it('refuses a patient whose slides sit in two partitions, listing every such patient', () => {
    const fold: Fold = { index: 2, train: ['a1', 'b', 'c1', 'f'], val: ['d'], test: ['a2', 'c2', 'e'] };
    expect(leakedPatients(fold, SLIDES)).toEqual([{ caseId: 'p1', partitions: ['train', 'test'] }, { caseId: 'p3', partitions: ['train', 'test'] }]);
    const { error } = run([fold]);
    expect(error).toBeInstanceOf(DataError);
    expect((error as DataError).code).toBe('patient-leakage');
    expect((error as DataError).render()).toContain('fold 2: 2 patient(s) have slides in more than one partition: p1 (train + test), p3 (train + test)');
    expect((error as DataError).render()).toContain('splits_0.csv');
  });

  it('refuses a training set of one class, and warns for one-class evaluation sets and val = test', () => {
    const oneClass = run([{ index: 0, train: ['a1', 'a2', 'd', 'f'], val: ['b'], test: ['c1', 'c2', 'e'] }]);
    expect((oneClass.error as DataError).code).toBe('one-class-train');
    expect((oneClass.error as DataError).render()).toContain('every training slide is of class "normal"');
    const evalOnly = run([{ index: 1, train: ['a1', 'a2', 'b', 'd'], val: ['e', 'c1', 'c2'], test: ['c1', 'c2', 'e'] }]);
    expect(evalOnly.error).toBeUndefined();
    expect(evalOnly.warnings).toEqual([
      'fold 1: the validation set holds only class "tumor" (3 slides); AUC and other two-class metrics are reported as undefined for it.',
      'fold 1: the test set holds only class "tumor" (3 slides); AUC and other two-class metrics are reported as undefined for it.',
      'fold 1: the validation set is the test set; model selection then sees the test slides and test metrics are optimistic.',
    ]);
  });
});
