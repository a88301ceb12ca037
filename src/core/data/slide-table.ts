// The slide table: a CSV with slide_id, case_id and label columns (names configurable); any other column
// (coarse_label/fine_label of hierarchical tasks, site, official split...) is kept as slide metadata.
// A cohort opened for prediction may have no labels at all (no label column, or every cell empty): its slides
// are UNLABELLED and the declared label map gives the classes; training never allows it.
import { readFile } from 'node:fs/promises';
import { CsvError, parse } from 'csv-parse/sync';
import { UNLABELLED, type SlideRecord } from '../../registry/contracts/data.js';
import { DataError } from '../errors.js';
import type { Logger } from '../logger.js';
import { didYouMean } from '../util/suggest.js';
import { resolveLabelMap, type LabelMap } from './labels.js';

export interface SlideTableColumns {
  readonly slide: string;
  readonly case: string;
  readonly label: string;
}

export const DEFAULT_COLUMNS: SlideTableColumns = { slide: 'slide_id', case: 'case_id', label: 'label' };

export interface SlideTable {
  readonly slides: SlideRecord[];
  readonly classNames: string[];
  readonly labelMap: LabelMap;
  /** False when the table has no labels (only with `allowUnlabelled`): every slide is UNLABELLED. */
  readonly labelled: boolean;
}

export interface SlideTableOptions {
  readonly columns?: SlideTableColumns;
  /** Declared label map (`data.labels`, or the trained run's classes when predicting). */
  readonly labels?: Readonly<Record<string, number>>;
  /** Accept a table without labels (prediction/inference); `labels` must then be given. */
  readonly allowUnlabelled?: boolean;
  readonly logger: Logger;
}

/** Parses slide-table text; `file` is only used in messages. */
export function parseSlideTable(text: string, file: string, opts: SlideTableOptions): SlideTable {
  const columns = opts.columns ?? DEFAULT_COLUMNS;
  let rows: Array<{ record: Record<string, string>; info: { lines: number } }>;
  try {
    rows = parse(text, { columns: true, bom: true, trim: true, skip_empty_lines: true, info: true }) as typeof rows;
  } catch (error) {
    const line = error instanceof CsvError ? (error as CsvError & { lines?: number }).lines : undefined;
    throw new DataError('slide-table-parse', `cannot parse the slide table (${error instanceof Error ? error.message : String(error)}).`, {
      where: line === undefined ? { file } : { file, line },
      hint: 'The slide table is a comma-separated file with a header row.',
      cause: error,
    });
  }
  const header = rows[0] === undefined ? [] : Object.keys(rows[0].record);
  const hasLabelColumn = header.includes(columns.label);
  const labelsOptional = opts.allowUnlabelled === true;
  for (const required of labelsOptional ? [columns.slide] : [columns.slide, columns.label]) {
    if (!header.includes(required)) {
      throw new DataError('slide-table-columns', `the slide table has no "${required}" column (columns: ${header.join(', ') || 'none'}).${didYouMean(required, header)}`, {
        where: { file },
        hint: `Name the columns slide_id, case_id, label, or set data.dataset.${required === columns.slide ? 'slideColumn' : 'labelColumn'}.`,
      });
    }
  }
  const hasCase = header.includes(columns.case);
  if (!hasCase) opts.logger.info(`${file}: no "${columns.case}" column, so every slide is its own case (splits group by case)`);
  // Unlabelled: no label column, or a column left empty in every row (a half-filled column is still an error).
  const labelled = !labelsOptional || (hasLabelColumn && rows.some(({ record }) => (record[columns.label] ?? '') !== ''));
  if (!labelled && opts.labels === undefined) {
    throw new DataError('unlabelled-without-classes', `the slide table has no labels (column "${columns.label}"), and no label map says which classes exist.`, {
      where: { file },
      hint: 'Declare data.labels, or add the label column.',
    });
  }
  const firstLine = new Map<string, number>();
  const parsed: Array<{ slideId: string; caseId: string; labelName: string; meta: Record<string, string>; line: number }> = [];
  for (const { record, info } of rows) {
    const line = info.lines;
    const slideId = record[columns.slide] ?? '';
    if (slideId === '') throw new DataError('missing-slide-id', `row has an empty ${columns.slide}.`, { where: { file, line }, hint: 'Every row needs a slide id.' });
    const previous = firstLine.get(slideId);
    if (previous !== undefined) {
      throw new DataError('duplicate-slide-id', `slide_id "${slideId}" appears twice (lines ${previous} and ${line}).`, { where: { file, line }, hint: 'Slide ids must be unique; remove or rename the duplicate row.' });
    }
    firstLine.set(slideId, line);
    const labelName = labelled ? record[columns.label] ?? '' : '';
    if (labelled && labelName === '') {
      throw new DataError('missing-label', `slide "${slideId}" has an empty ${columns.label}.`, {
        where: { file, line },
        hint: labelsOptional ? 'Fill in every label, or leave the whole column empty to predict without metrics.' : 'Fill in the label or drop the row.',
      });
    }
    if (labelled && opts.labels !== undefined && !(labelName in opts.labels)) {
      const declared = Object.keys(opts.labels);
      throw new DataError('unknown-label', `slide "${slideId}": label "${labelName}" is not in data.labels (declared: ${declared.join(', ')}).${didYouMean(labelName, declared)}`, {
        where: { file, line },
        hint: 'Add it to data.labels or fix the slide table.',
      });
    }
    const meta: Record<string, string> = {};
    for (const [key, value] of Object.entries(record)) if (key !== columns.slide && key !== columns.case && key !== columns.label) meta[key] = value;
    const caseId = hasCase && (record[columns.case] ?? '') !== '' ? (record[columns.case] as string) : slideId;
    parsed.push({ slideId, caseId, labelName, meta, line });
  }
  if (parsed.length === 0) throw new DataError('empty-slide-table', 'the slide table has no rows.', { where: { file }, hint: 'Add one row per slide.' });
  const labelMap = resolveLabelMap(labelled ? parsed.map((p) => p.labelName) : [], opts.labels, opts.logger, { file });
  const slides = parsed.map(({ slideId, caseId, labelName, meta }) => ({ slideId, caseId, label: labelled ? (labelMap.index.get(labelName) as number) : UNLABELLED, labelName, meta }));
  return { slides, classNames: [...labelMap.classNames], labelMap, labelled };
}

/** Reads and parses a slide-table CSV. */
export async function readSlideTable(file: string, opts: SlideTableOptions): Promise<SlideTable> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new DataError('missing-file', 'slide table not found.', { where: { file }, hint: 'Check data.dataset.slideTable (relative paths resolve against the experiment file).', cause: error });
  }
  return parseSlideTable(text, file, opts);
}
