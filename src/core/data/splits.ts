// Train/val/test splits as a first-class artifact: grouped by case (no patient in two partitions of a fold),
// stratified by label, seeded. Modes: k-fold (disjoint, covering test folds), Monte-Carlo and holdout (CLAM's
// independent per-fold draws), official-test (fixed test set, k train/val resplits, as HDMIL on Camelyon16).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { writeFileDurably } from '../io/disk.js';
import type { FileSystem } from '../io/file-system.js';
import type { SlideRecord } from '../../registry/contracts/data.js';
import type { SplitSection } from '../engine/schema.js';
import { ConfigError, DataError } from '../errors.js';
import type { Logger } from '../logger.js';
import { Rng } from '../runtime/random.js';

/** One fold: slide ids of each partition, each list sorted. */
export interface Fold {
  /** Position in the run: repeat · split.folds + fold within the repeat. */
  index: number;
  /** Repeat of the cross-validation this fold belongs to; absent when split.repeats is 1 (the same as 0). */
  repeat?: number;
  train: string[];
  val: string[];
  test: string[];
}

export type Partition = 'train' | 'val' | 'test';
export const PARTITIONS: readonly Partition[] = ['train', 'val', 'test'];

/** A patient: the unit every split moves as a whole. */
export interface CaseUnit {
  readonly caseId: string;
  /** Sorted slide ids. */
  readonly slideIds: readonly string[];
  /** Majority slide label (ties → the larger label, CLAM's max rule for binary tasks). */
  readonly label: number;
}

export interface MakeSplitsOptions {
  /** Folder `section.file` resolves against. */
  readonly baseDir?: string;
  /** Receives warnings about ids in split files that are not in the table. */
  readonly logger?: Logger;
}

/** Groups slides by case, sorted by case id (so splits do not depend on the table's row order). */
export function groupByCase(slides: readonly SlideRecord[]): CaseUnit[] {
  const byCase = new Map<string, SlideRecord[]>();
  for (const slide of slides) {
    const list = byCase.get(slide.caseId);
    if (list === undefined) byCase.set(slide.caseId, [slide]);
    else list.push(slide);
  }
  return [...byCase.entries()]
    .sort(([a], [b]) => compareIds(a, b))
    .map(([caseId, members]) => {
      const counts = new Map<number, number>();
      for (const s of members) counts.set(s.label, (counts.get(s.label) ?? 0) + 1);
      let label = -1;
      let best = -1;
      for (const [l, c] of counts) if (c > best || (c === best && l > label)) [label, best] = [l, c];
      return { caseId, slideIds: members.map((s) => s.slideId).sort(compareIds), label };
    });
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** numpy's round (half to even), so fraction → count matches CLAM's generator. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (Math.abs(diff - 0.5) > 1e-9) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}

function byLabel(units: readonly CaseUnit[]): Map<number, CaseUnit[]> {
  const groups = new Map<number, CaseUnit[]>();
  for (const u of units) {
    const g = groups.get(u.label);
    if (g === undefined) groups.set(u.label, [u]);
    else g.push(u);
  }
  return new Map([...groups.entries()].sort(([a], [b]) => a - b));
}

/**
 * Draws `fraction` of the units of every class (round half to even per class, at least one unit overall
 * when fraction > 0 and more than one unit is available); returns [drawn, rest].
 */
function stratifiedDraw(units: readonly CaseUnit[], fraction: number, rng: Rng): [CaseUnit[], CaseUnit[]] {
  const drawn: CaseUnit[] = [];
  const rest: CaseUnit[] = [];
  const groups = [...byLabel(units).entries()];
  const shuffled = groups.map(([label, members]) => [label, rng.fork(`class-${label}`).shuffle([...members])] as const);
  let quota = shuffled.map(([, members]) => roundHalfEven(members.length * fraction));
  if (fraction > 0 && units.length > 1 && quota.every((q) => q === 0)) {
    // Tiny tables: rounding gave nothing, but a fraction > 0 promises a non-empty part; take from the largest class.
    const largest = shuffled.reduce((best, [, m], i) => (m.length > (shuffled[best]?.[1].length ?? 0) ? i : best), 0);
    quota = quota.map((q, i) => (i === largest ? 1 : q));
  }
  shuffled.forEach(([, members], i) => {
    const q = quota[i] as number;
    drawn.push(...members.slice(0, q));
    rest.push(...members.slice(q));
  });
  return [drawn, rest];
}

function slidesOf(units: readonly CaseUnit[]): string[] {
  return units.flatMap((u) => u.slideIds).sort(compareIds);
}

function checkFold(fold: Fold, mode: string): Fold {
  if (fold.train.length === 0) {
    throw new DataError('empty-train', `split fold ${fold.index} (${mode}) has no training slides.`, {
      where: { key: 'split' },
      hint: 'Lower split.valFraction / split.testFraction or split.folds, or add slides.',
    });
  }
  return fold;
}

/** k disjoint test folds covering all cases, stratified: per class, each unit goes to the fold with fewest slides of its class. */
function kfoldTestFolds(units: readonly CaseUnit[], k: number, rng: Rng): CaseUnit[][] {
  const folds: CaseUnit[][] = Array.from({ length: k }, () => []);
  const totalSlides = new Array<number>(k).fill(0);
  for (const [label, members] of byLabel(units)) {
    const classSlides = new Array<number>(k).fill(0);
    // Shuffle, then place big cases first (stable sort keeps the shuffled order among equals): greedy balance.
    const order = rng.fork(`class-${label}`).shuffle([...members]).sort((a, b) => b.slideIds.length - a.slideIds.length);
    for (const unit of order) {
      let target = 0;
      for (let f = 1; f < k; f += 1) {
        const better = (classSlides[f] as number) < (classSlides[target] as number) || ((classSlides[f] as number) === (classSlides[target] as number) && (totalSlides[f] as number) < (totalSlides[target] as number));
        if (better) target = f;
      }
      folds[target]?.push(unit);
      classSlides[target] = (classSlides[target] as number) + unit.slideIds.length;
      totalSlides[target] = (totalSlides[target] as number) + unit.slideIds.length;
    }
  }
  return folds;
}

/**
 * The folds of `section` for `slides`, deterministic in (slides, mode, folds, fractions, seed, repeats): repeat r
 * of `split.repeats` draws its folds from `repeatSplitLabel(mode, seed, r)`, so repeat 0 is the split milkit draws
 * without repeats, and fold indices run repeat by repeat (index = r · folds + k). With `section.file` the folds
 * are read from CLAM `splits_{k}.csv` files instead (see readClamSplits), which fixes them: no repeats.
 */
export function makeSplits(slides: readonly SlideRecord[], section: SplitSection, seed: number, opts: MakeSplitsOptions = {}): Fold[] {
  const repeats = section.repeats ?? 1;
  if (section.file !== undefined) {
    if (repeats > 1) {
      throw new ConfigError('split-file-repeats', `split.repeats ${repeats} needs drawn splits, but split.file fixes them (${section.file}).`, {
        where: { key: 'split.repeats' }, hint: 'Remove split.file to draw repeated splits, or set split.repeats: 1.',
      });
    }
    const dir = path.resolve(opts.baseDir ?? process.cwd(), section.file);
    return readClamSplits(dir, slides, opts.logger).slice(0, section.folds > 1 ? section.folds : undefined);
  }
  const units = groupByCase(slides);
  if (units.length < 2) throw new DataError('too-few-cases', `splitting needs at least 2 cases (got ${units.length}).`, { where: { key: 'split' }, hint: 'Check the case_id column.' });
  if (repeats === 1) return drawFolds(units, slides, section, new Rng(repeatSplitLabel(section.mode, seed, 0)));
  return Array.from({ length: repeats }, (_, r) => drawFolds(units, slides, section, new Rng(repeatSplitLabel(section.mode, seed, r))).map((fold) => ({
    index: r * section.folds + fold.index, repeat: r, train: fold.train, val: fold.val, test: fold.test,
  }))).flat();
}

/** Seed label of repeat r: repeat 0 is the label of an unrepeated split, so adding repeats keeps its folds. */
export function repeatSplitLabel(mode: SplitSection['mode'], seed: number, repeat: number): string {
  return repeat === 0 ? `splits/${mode}/${seed}` : `splits/${mode}/${seed}/repeat-${repeat}`;
}

/** The repeat of a fold (0 for splits without repeats). */
export function foldRepeat(fold: Pick<Fold, 'repeat'>): number {
  return fold.repeat ?? 0;
}

/** One draw of `section.folds` folds from `root`. */
function drawFolds(units: readonly CaseUnit[], slides: readonly SlideRecord[], section: SplitSection, root: Rng): Fold[] {
  const k = section.folds;
  switch (section.mode) {
    case 'holdout': {
      if (k !== 1) {
        throw new ConfigError('holdout-folds', `split.mode holdout draws one partition (got split.folds ${k}).`, {
          where: { key: 'split.folds' },
          hint: 'Use mode: kfold for disjoint test folds or mode: monte-carlo for k independent draws.',
        });
      }
      return [monteCarloFold(units, section, 0, root)];
    }
    case 'monte-carlo':
      return Array.from({ length: k }, (_, f) => monteCarloFold(units, section, f, root));
    case 'kfold': {
      if (k < 2 || k > units.length) {
        throw new ConfigError('kfold-folds', `split.mode kfold needs 2 ≤ folds ≤ number of cases (${units.length}); got ${k}.`, { where: { key: 'split.folds' }, hint: 'Choose a fold count in that range.' });
      }
      const testFolds = kfoldTestFolds(units, k, root.fork('test-folds'));
      return testFolds.map((test, f) => {
        const testIds = new Set(test.map((u) => u.caseId));
        const rest = units.filter((u) => !testIds.has(u.caseId));
        const [val, train] = stratifiedDraw(rest, section.valFraction, root.fork(`fold-${f}/val`));
        return checkFold({ index: f, train: slidesOf(train), val: slidesOf(val), test: slidesOf(test) }, 'kfold');
      });
    }
    case 'official-test': {
      const test = officialTestUnits(units, slides, section);
      const testIds = new Set(test.map((u) => u.caseId));
      const rest = units.filter((u) => !testIds.has(u.caseId));
      return Array.from({ length: k }, (_, f) => {
        const [val, train] = stratifiedDraw(rest, section.valFraction, root.fork(`fold-${f}/val`));
        return checkFold({ index: f, train: slidesOf(train), val: slidesOf(val), test: slidesOf(test) }, 'official-test');
      });
    }
  }
}

/**
 * CLAM's generator: per class c, val_c = round(n_c · valFraction) and test_c = round(n_c · testFraction)
 * cases drawn without replacement (val first, test from the remainder), the rest is train. Folds are
 * independent draws, so test sets of different folds overlap.
 */
function monteCarloFold(units: readonly CaseUnit[], section: SplitSection, f: number, root: Rng): Fold {
  const rng = root.fork(`fold-${f}`);
  const val: CaseUnit[] = [];
  const test: CaseUnit[] = [];
  const train: CaseUnit[] = [];
  for (const [label, members] of byLabel(units)) {
    const shuffled = rng.fork(`class-${label}`).shuffle([...members]);
    const nVal = Math.min(shuffled.length, roundHalfEven(members.length * section.valFraction));
    const nTest = Math.min(shuffled.length - nVal, roundHalfEven(members.length * section.testFraction));
    val.push(...shuffled.slice(0, nVal));
    test.push(...shuffled.slice(nVal, nVal + nTest));
    train.push(...shuffled.slice(nVal + nTest));
  }
  // Tiny tables: rounding can leave a requested part empty; move one random training case into it.
  const fallback = rng.fork('fallback');
  for (const [part, fraction] of [[test, section.testFraction], [val, section.valFraction]] as const) {
    if (fraction > 0 && part.length === 0 && train.length > 1) part.push(...train.splice(fallback.int(train.length), 1));
  }
  return checkFold({ index: f, train: slidesOf(train), val: slidesOf(val), test: slidesOf(test) }, section.mode);
}

function officialTestUnits(units: readonly CaseUnit[], slides: readonly SlideRecord[], section: SplitSection): CaseUnit[] {
  const inTest = new Map(slides.map((s) => [s.slideId, s.meta[section.testColumn] === section.testValue] as const));
  const test: CaseUnit[] = [];
  for (const unit of units) {
    const flags = unit.slideIds.map((id) => inTest.get(id) === true);
    if (flags.every(Boolean)) test.push(unit);
    else if (flags.some(Boolean)) {
      throw new DataError('official-test-leak', `case "${unit.caseId}" has slides both in and out of the official test set (${section.testColumn} = "${section.testValue}").`, {
        where: { key: 'split.testColumn' },
        hint: 'Put all slides of a patient on the same side of the official split.',
      });
    }
  }
  if (test.length === 0) {
    const seen = [...new Set(slides.map((s) => s.meta[section.testColumn]).filter((v): v is string => v !== undefined))].slice(0, 8);
    throw new DataError('no-official-test', `no slide has ${section.testColumn} = "${section.testValue}" (values seen: ${seen.length > 0 ? seen.map((v) => `"${v}"`).join(', ') : `column "${section.testColumn}" absent`}).`, {
      where: { key: 'split.testColumn' },
      hint: 'Set split.testColumn / split.testValue to the slide-table column that marks the official test set.',
    });
  }
  if (test.length === units.length) throw new DataError('official-test-everything', `every slide is in the official test set (${section.testColumn} = "${section.testValue}").`, { where: { key: 'split.testValue' }, hint: 'Check split.testValue.' });
  return test;
}

/** Reads CLAM's `splits_{k}.csv` files (columns train, val, test; ids are slide or case ids) from `dir`, k = 0, 1, ... */
export function readClamSplits(dir: string, slides: readonly SlideRecord[], logger?: Logger): Fold[] {
  const bySlide = new Set(slides.map((s) => s.slideId));
  const byCase = new Map<string, string[]>();
  for (const s of slides) byCase.set(s.caseId, [...(byCase.get(s.caseId) ?? []), s.slideId]);
  const folds: Fold[] = [];
  for (let k = 0; ; k += 1) {
    const file = path.join(dir, `splits_${k}.csv`);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if (k > 0 && (error as NodeJS.ErrnoException).code === 'ENOENT') break;
      throw new DataError('missing-file', `split file not found: splits_${k}.csv.`, { where: { file }, hint: 'split.file must name a folder holding splits_0.csv, splits_1.csv, ...', cause: error });
    }
    let rows: Array<Record<string, string>>;
    try {
      rows = parse(text, { columns: true, skip_empty_lines: true, bom: true }) as Array<Record<string, string>>;
    } catch (cause) {
      throw new DataError('split-file-invalid', `split file is not valid CSV: ${(cause as Error).message}.`, {
        where: { file },
        hint: 'CLAM split files have a header ",train,val,test" and one row per index, every row with the same number of fields.',
        cause,
      });
    }
    const header = rows[0] === undefined ? [] : Object.keys(rows[0]);
    const missingColumns = PARTITIONS.filter((p) => !header.includes(p));
    if (rows.length > 0 && missingColumns.length > 0) {
      throw new DataError('split-file-columns', `split file lacks column(s) ${missingColumns.join(', ')} (has: ${header.join(', ')}).`, { where: { file }, hint: 'CLAM split files have columns train, val, test.' });
    }
    const fold: Fold = { index: k, train: [], val: [], test: [] };
    const unknown: string[] = [];
    for (const partition of PARTITIONS) {
      const ids = new Set<string>();
      for (const row of rows) {
        const id = (row[partition] ?? '').trim();
        if (id === '') continue;
        if (bySlide.has(id)) ids.add(id);
        else if (byCase.has(id)) for (const s of byCase.get(id) ?? []) ids.add(s);
        else unknown.push(id);
      }
      fold[partition] = [...ids].sort(compareIds);
    }
    if (unknown.length > 0) {
      const text = `${unknown.length} id(s) in ${file} match no slide_id or case_id of the table (e.g. ${unknown.slice(0, 3).map((u) => `"${u}"`).join(', ')}); they are left out`;
      if (logger === undefined) throw new DataError('unknown-split-ids', `${text}.`, { where: { file }, hint: 'Use the same slide table the splits were made for.' });
      logger.warn(text);
    }
    checkDisjoint(fold, file);
    folds.push(checkFold(fold, 'file'));
  }
  return folds;
}

function checkDisjoint(fold: Fold, file: string): void {
  const owner = new Map<string, Partition>();
  for (const partition of PARTITIONS) {
    for (const id of fold[partition]) {
      const previous = owner.get(id);
      if (previous !== undefined) {
        throw new DataError('split-overlap', `slide "${id}" is in both ${previous} and ${partition} of fold ${fold.index}.`, { where: { file }, hint: 'Partitions of a fold must be disjoint (check case ids listed in two columns).' });
      }
      owner.set(id, partition);
    }
  }
}

/**
 * CLAM's `splits_{k}.csv` text: an unnamed index column, then train, val, test columns of slide ids,
 * shorter columns padded with empty cells (as pandas writes it, so CLAM and HDMIL read it back).
 */
export function clamSplitsCsv(fold: Fold): string {
  const rows = Math.max(fold.train.length, fold.val.length, fold.test.length);
  const records: string[][] = [['', ...PARTITIONS]];
  for (let i = 0; i < rows; i += 1) records.push([String(i), fold.train[i] ?? '', fold.val[i] ?? '', fold.test[i] ?? '']);
  return stringify(records);
}

/** Writes one fold as CLAM's `splits_{k}.csv` (atomically: a crash never leaves half a split file). */
export async function writeSplitsCsv(file: string, fold: Fold, fs?: FileSystem): Promise<void> {
  await writeFileDurably(file, clamSplitsCsv(fold), fs ? { fs } : {});
}

/** CLAM's `splits_{k}_bool.csv`: one row per slide with True/False in train, val, test. */
export function clamSplitsBoolCsv(fold: Fold, slides: readonly SlideRecord[]): string {
  const sets = PARTITIONS.map((p) => new Set(fold[p]));
  const records: string[][] = [['', ...PARTITIONS]];
  for (const s of slides) records.push([s.slideId, ...sets.map((set) => (set.has(s.slideId) ? 'True' : 'False'))]);
  return stringify(records);
}

/** CLAM's `splits_{k}_descriptor.csv`: slides per class (rows) in train, val, test (columns). */
export function clamSplitsDescriptorCsv(fold: Fold, slides: readonly SlideRecord[], classNames: readonly string[]): string {
  const labelOf = new Map(slides.map((s) => [s.slideId, s.label]));
  const records: string[][] = [['', ...PARTITIONS]];
  classNames.forEach((name, c) => records.push([name, ...PARTITIONS.map((p) => String(fold[p].filter((id) => labelOf.get(id) === c).length))]));
  return stringify(records);
}

/** The splits artifact saved with every run: splits.json (all folds) + CLAM's three CSVs per fold. */
export async function writeSplits(dir: string, folds: readonly Fold[], slides: readonly SlideRecord[], classNames: readonly string[], provenance: Readonly<Record<string, unknown>> = {}, fs?: FileSystem): Promise<void> {
  const write = (file: string, text: string): Promise<void> => writeFileDurably(file, text, { ...(fs ? { fs } : {}), action: `write the split file ${path.basename(file)}` });
  await write(path.join(dir, 'splits.json'), `${JSON.stringify({ ...provenance, folds }, null, 2)}\n`);
  for (const fold of folds) {
    await writeSplitsCsv(path.join(dir, `splits_${fold.index}.csv`), fold, fs);
    await write(path.join(dir, `splits_${fold.index}_bool.csv`), clamSplitsBoolCsv(fold, slides));
    await write(path.join(dir, `splits_${fold.index}_descriptor.csv`), clamSplitsDescriptorCsv(fold, slides, classNames));
  }
}

/** Per-fold, per-partition slide counts by class, as aligned text (what `milkit splits` prints). */
export function describeSplits(folds: readonly Fold[], slides: readonly SlideRecord[], classNames: readonly string[]): string {
  const labelOf = new Map(slides.map((s) => [s.slideId, s.label]));
  const caseOf = new Map(slides.map((s) => [s.slideId, s.caseId]));
  const header = ['fold', 'part', 'slides', 'cases', ...classNames];
  const rows = folds.flatMap((fold) =>
    PARTITIONS.map((p) => [
      String(fold.index),
      p,
      String(fold[p].length),
      String(new Set(fold[p].map((id) => caseOf.get(id))).size),
      ...classNames.map((_, c) => String(fold[p].filter((id) => labelOf.get(id) === c).length)),
    ]),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows].map((r) => r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join('  ')).join('\n');
}
