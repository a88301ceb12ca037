import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { groupByCase, makeSplits, readClamSplits, roundHalfEven, type Fold } from '../../../src/core/data/splits.js';
import { SplitSection } from '../../../src/core/engine/schema.js';
import { MemoryLogger } from '../../../src/core/logger.js';
import type { SlideRecord } from '../../../src/registry/index.js';
import { errorText } from './error-text.js';

function slide(slideId: string, caseId: string, label: number, meta: Record<string, string> = {}): SlideRecord {
  return { slideId, caseId, label, labelName: String(label), meta };
}

/** Random slide tables: 2..60 cases with 1..3 slides each, 2..4 classes (every class present). */
const slideTables = fc
  .record({
    numClasses: fc.integer({ min: 2, max: 4 }),
    cases: fc.array(fc.record({ slides: fc.integer({ min: 1, max: 3 }), label: fc.nat() }), { minLength: 8, maxLength: 60 }),
  })
  .map(({ numClasses, cases }) =>
    cases.flatMap((c, i) => {
      const label = i < numClasses ? i : c.label % numClasses;
      return Array.from({ length: c.slides }, (_, s) => slide(`s${i}-${s}`, `case-${i}`, label));
    }),
  );

const singleSlideTables = fc
  .record({ numClasses: fc.integer({ min: 2, max: 3 }), labels: fc.array(fc.nat(), { minLength: 10, maxLength: 80 }) })
  .map(({ numClasses, labels }) => labels.map((l, i) => slide(`s${i}`, `c${i}`, i < numClasses ? i : l % numClasses)));

function partitionOf(fold: Fold): Map<string, string> {
  const owner = new Map<string, string>();
  for (const p of ['train', 'val', 'test'] as const) for (const id of fold[p]) owner.set(id, p);
  return owner;
}

describe('core/data/splits', () => {
  describe('properties over random slide tables', () => {
    it('never puts one case in two partitions of a fold (kfold, monte-carlo)', () => {
      fc.assert(
        fc.property(slideTables, fc.integer({ min: 2, max: 5 }), fc.constantFrom('kfold', 'monte-carlo'), fc.nat(), (slides, k, mode, seed) => {
          fc.pre(new Set(slides.map((s) => s.caseId)).size >= k);
          const folds = makeSplits(slides, SplitSection.parse({ mode, folds: k, valFraction: 0.2, testFraction: 0.2 }), seed);
          const caseOf = new Map(slides.map((s) => [s.slideId, s.caseId]));
          for (const fold of folds) {
            const partitionsOfCase = new Map<string, Set<string>>();
            for (const [id, p] of partitionOf(fold)) {
              const c = caseOf.get(id) as string;
              partitionsOfCase.set(c, (partitionsOfCase.get(c) ?? new Set()).add(p));
            }
            for (const parts of partitionsOfCase.values()) expect(parts.size).toBe(1);
            // Every slide is in exactly one partition.
            expect(fold.train.length + fold.val.length + fold.test.length).toBe(slides.length);
          }
        }),
        { numRuns: 150 },
      );
    });

    it('makes k-fold test folds disjoint and covering', () => {
      fc.assert(
        fc.property(slideTables, fc.integer({ min: 2, max: 6 }), fc.nat(), (slides, k, seed) => {
          fc.pre(new Set(slides.map((s) => s.caseId)).size >= k);
          const folds = makeSplits(slides, SplitSection.parse({ mode: 'kfold', folds: k }), seed);
          const tested = folds.flatMap((f) => f.test);
          expect(new Set(tested).size).toBe(tested.length);
          expect([...tested].sort()).toEqual(slides.map((s) => s.slideId).sort());
        }),
        { numRuns: 150 },
      );
    });

    it('keeps per-fold label counts within ±1 slide of the ideal (one slide per case)', () => {
      fc.assert(
        fc.property(singleSlideTables, fc.integer({ min: 2, max: 6 }), fc.nat(), (slides, k, seed) => {
          const folds = makeSplits(slides, SplitSection.parse({ mode: 'kfold', folds: k }), seed);
          const labelOf = new Map(slides.map((s) => [s.slideId, s.label]));
          const classes = [...new Set(slides.map((s) => s.label))];
          for (const c of classes) {
            const ideal = slides.filter((s) => s.label === c).length / k;
            for (const fold of folds) {
              const count = fold.test.filter((id) => labelOf.get(id) === c).length;
              expect(Math.abs(count - ideal)).toBeLessThan(1);
            }
          }
        }),
        { numRuns: 150 },
      );
    });

    it('keeps per-fold label counts within the largest case size of the ideal (multi-slide cases)', () => {
      fc.assert(
        fc.property(slideTables, fc.integer({ min: 2, max: 4 }), fc.nat(), (slides, k, seed) => {
          fc.pre(new Set(slides.map((s) => s.caseId)).size >= k);
          const folds = makeSplits(slides, SplitSection.parse({ mode: 'kfold', folds: k }), seed);
          const maxCase = Math.max(...groupByCase(slides).map((u) => u.slideIds.length));
          const labelOf = new Map(slides.map((s) => [s.slideId, s.label]));
          for (const c of new Set(slides.map((s) => s.label))) {
            const ideal = slides.filter((s) => s.label === c).length / k;
            for (const fold of folds) expect(Math.abs(fold.test.filter((id) => labelOf.get(id) === c).length - ideal)).toBeLessThanOrEqual(maxCase);
          }
        }),
        { numRuns: 100 },
      );
    });

    it('gives byte-identical splits for the same seed, whatever the table row order', () => {
      fc.assert(
        fc.property(slideTables, fc.nat(), fc.constantFrom('kfold', 'monte-carlo'), (slides, seed, mode) => {
          fc.pre(new Set(slides.map((s) => s.caseId)).size >= 3);
          const section = SplitSection.parse({ mode, folds: 3 });
          const a = JSON.stringify(makeSplits(slides, section, seed));
          const b = JSON.stringify(makeSplits([...slides].reverse(), section, seed));
          expect(b).toBe(a);
        }),
        { numRuns: 100 },
      );
    });
  });

  const table = Array.from({ length: 40 }, (_, i) => slide(`s${i}`, `c${Math.floor(i / 2)}`, Math.floor(i / 2) % 4 === 0 ? 1 : 0, { split: i >= 28 ? 'test' : 'train' }));

  it('changes the splits when the seed changes', () => {
    const section = SplitSection.parse({ mode: 'kfold', folds: 5 });
    expect(JSON.stringify(makeSplits(table, section, 1))).not.toBe(JSON.stringify(makeSplits(table, section, 2)));
  });

  it('carves a stratified validation part from each training part (kfold)', () => {
    const folds = makeSplits(table, SplitSection.parse({ mode: 'kfold', folds: 5, valFraction: 0.25 }), 0);
    for (const fold of folds) {
      // 20 cases, 4 test cases per fold, 16 left: 12 negative → 3 val, 4 positive → 1 val: 4 cases = 8 slides.
      expect(fold.test).toHaveLength(8);
      expect(fold.val).toHaveLength(8);
      expect(fold.train).toHaveLength(24);
    }
  });

  it('draws Monte-Carlo folds independently, as CLAM does (test sets may overlap)', () => {
    const folds = makeSplits(table, SplitSection.parse({ mode: 'monte-carlo', folds: 10, valFraction: 0.1, testFraction: 0.1 }), 1);
    // CLAM counts: 15 negative cases → round(1.5) = 2 (half to even), 5 positive → round(0.5) = 0.
    for (const fold of folds) {
      expect(fold.val).toHaveLength(4);
      expect(fold.test).toHaveLength(4);
    }
    const distinctTests = new Set(folds.map((f) => f.test.join(',')));
    expect(distinctTests.size).toBeGreaterThan(1);
    const tested = folds.flatMap((f) => f.test);
    expect(new Set(tested).size).toBeLessThan(tested.length);
  });

  it('keeps the official test set fixed and resplits train/val per fold', () => {
    const folds = makeSplits(table, SplitSection.parse({ mode: 'official-test', folds: 3, valFraction: 0.1 }), 0);
    const official = table.filter((s) => s.meta['split'] === 'test').map((s) => s.slideId).sort();
    for (const fold of folds) {
      expect(fold.test).toEqual(official);
      expect(fold.train.length + fold.val.length).toBe(28);
      expect(fold.val.length).toBeGreaterThan(0);
    }
    expect(new Set(folds.map((f) => f.val.join(','))).size).toBeGreaterThan(1);
  });

  it('rounds half to even like numpy', () => {
    expect([0.5, 1.5, 2.5, 2.4, 2.6, 3].map(roundHalfEven)).toEqual([0, 2, 2, 2, 3, 3]);
  });

  it.each([
    [{ mode: 'holdout', folds: 5 }, 'ConfigError[holdout-folds] split.folds: split.mode holdout draws one partition (got split.folds 5). Use mode: kfold for disjoint test folds or mode: monte-carlo for k independent draws.'],
    [{ mode: 'kfold', folds: 1 }, 'ConfigError[kfold-folds] split.folds: split.mode kfold needs 2 ≤ folds ≤ number of cases (20); got 1. Choose a fold count in that range.'],
    [{ mode: 'kfold', folds: 21 }, 'ConfigError[kfold-folds] split.folds: split.mode kfold needs 2 ≤ folds ≤ number of cases (20); got 21. Choose a fold count in that range.'],
    [{ mode: 'official-test', testColumn: 'cohort' }, 'DataError[no-official-test] split.testColumn: no slide has cohort = "test" (values seen: column "cohort" absent). Set split.testColumn / split.testValue to the slide-table column that marks the official test set.'],
    [{ mode: 'official-test', testValue: 'TEST' }, 'DataError[no-official-test] split.testColumn: no slide has split = "TEST" (values seen: "train", "test"). Set split.testColumn / split.testValue to the slide-table column that marks the official test set.'],
  ])('rejects %j', (section, message) => {
    expect(errorText(() => makeSplits(table, SplitSection.parse(section), 0))).toBe(message);
  });

  it('refuses an official test set that splits a case', () => {
    const leaky = [slide('a1', 'A', 0, { split: 'test' }), slide('a2', 'A', 0, { split: 'train' }), slide('b', 'B', 1, { split: 'train' }), slide('c', 'C', 0, { split: 'train' })];
    expect(errorText(() => makeSplits(leaky, SplitSection.parse({ mode: 'official-test' }), 0))).toBe(
      'DataError[official-test-leak] split.testColumn: case "A" has slides both in and out of the official test set (split = "test"). Put all slides of a patient on the same side of the official split.',
    );
  });

  describe('CLAM split files', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'milkit-splits-'));
    const slides = [slide('s1', 'P1', 0), slide('s2', 'P1', 0), slide('s3', 'P2', 1), slide('s4', 'P3', 0), slide('s5', 'P4', 1)];

    it('reads splits_{k}.csv with an index column and padded cells, by slide or case id', () => {
      const clam = path.join(dir, 'clam');
      mkdirSync(clam);
      writeFileSync(path.join(clam, 'splits_0.csv'), ',train,val,test\n0,s1,s3,s5\n1,s2,,\n2,s4,,\n');
      writeFileSync(path.join(clam, 'splits_1.csv'), ',train,val,test\n0,P1,P4,P2\n1,P3,,\n');
      const folds = readClamSplits(clam, slides);
      expect(folds).toEqual([
        { index: 0, train: ['s1', 's2', 's4'], val: ['s3'], test: ['s5'] },
        { index: 1, train: ['s1', 's2', 's4'], val: ['s5'], test: ['s3'] },
      ]);
      expect(makeSplits(slides, SplitSection.parse({ file: 'clam' }), 0, { baseDir: dir })).toEqual(folds);
    });

    it('warns about ids that are not in the table and rejects overlapping partitions', () => {
      const odd = path.join(dir, 'odd');
      mkdirSync(odd);
      writeFileSync(path.join(odd, 'splits_0.csv'), 'train,val,test\ns1,s3,ghost\ns2,,\n');
      const logger = new MemoryLogger();
      expect(readClamSplits(odd, slides, logger)[0]?.test).toEqual([]);
      expect(logger.text()).toContain('1 id(s) in');
      expect(logger.text()).toContain('match no slide_id or case_id of the table (e.g. "ghost"); they are left out');
      writeFileSync(path.join(odd, 'splits_0.csv'), 'train,val,test\nP1,s2,s3\n');
      expect(errorText(() => readClamSplits(odd, slides, logger))).toBe(
        `DataError[split-overlap] ${path.join(odd, 'splits_0.csv')}: slide "s2" is in both train and val of fold 0. Partitions of a fold must be disjoint (check case ids listed in two columns).`,
      );
    });

    it('names the missing file', () => {
      const where = path.join(dir, 'nowhere', 'splits_0.csv');
      expect(errorText(() => readClamSplits(path.join(dir, 'nowhere'), slides))).toBe(
        `DataError[missing-file] ${where}: split file not found: splits_0.csv. split.file must name a folder holding splits_0.csv, splits_1.csv, ...`,
      );
    });
  });
});

describe('core/data/splits repeats', () => {
  const table = Array.from({ length: 30 }, (_, i) => slide(`s${i}`, `c${Math.floor(i / 2)}`, Math.floor(i / 2) % 2));
  const section = (extra: Record<string, unknown>) => SplitSection.parse({ mode: 'kfold', folds: 3, ...extra });

  it('repeat 0 is exactly the split without repeats, and repeats: 1 adds no repeat field', () => {
    const plain = makeSplits(table, section({}), 7);
    expect(JSON.stringify(makeSplits(table, section({ repeats: 1 }), 7))).toBe(JSON.stringify(plain));
    const repeated = makeSplits(table, section({ repeats: 3 }), 7);
    expect(repeated.slice(0, 3).map(({ train, val, test }) => ({ train, val, test }))).toEqual(plain.map(({ train, val, test }) => ({ train, val, test })));
  });

  it('indexes folds repeat by repeat, each repeat a complete k-fold partition with its own draw', () => {
    const repeated = makeSplits(table, section({ repeats: 3 }), 7);
    expect(repeated.map((f) => [f.index, f.repeat])).toEqual([[0, 0], [1, 0], [2, 0], [3, 1], [4, 1], [5, 1], [6, 2], [7, 2], [8, 2]]);
    for (const r of [0, 1, 2]) {
      const tests = repeated.filter((f) => f.repeat === r).flatMap((f) => f.test).sort();
      expect(tests).toEqual(table.map((s) => s.slideId).sort());
    }
    expect(repeated[3]?.test).not.toEqual(repeated[0]?.test);
    expect(makeSplits(table, section({ repeats: 3 }), 7)).toEqual(repeated);
  });

  it('refuses repeats of fixed split files', () => {
    expect(() => makeSplits(table, section({ repeats: 2, file: 'splits/' }), 7)).toThrowErrorMatchingInlineSnapshot(`[ConfigError: split.repeats 2 needs drawn splits, but split.file fixes them (splits/).]`);
  });
});
