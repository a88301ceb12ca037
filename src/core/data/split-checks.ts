// Whether a set of folds makes sense for training and evaluation, whatever made them (drawn here or imported from
// CLAM split files): a patient in two partitions of one fold leaks; a training set with one class cannot learn a
// decision; a one-class evaluation set leaves AUC undefined; validation equal to test selects on the test set.
import type { SlideRecord } from '../../registry/contracts/data.js';
import { DataError } from '../errors.js';
import type { Logger } from '../logger.js';
import { PARTITIONS, type Fold, type Partition } from './splits.js';

export interface SplitSenseOptions {
  readonly classNames: readonly string[];
  readonly logger: Logger;
  /** The split files the folds came from (named in messages), when imported. */
  readonly file?: string;
}

const sortedIds = (ids: readonly string[]): string => [...ids].sort().join('\n');

/**
 * Patients of one fold found in more than one partition, with their partitions. A validation set that IS the test
 * set (some published protocols select on the test set) is not leakage here; checkSplitSense warns about it.
 */
export function leakedPatients(fold: Fold, slides: readonly SlideRecord[]): Array<{ caseId: string; partitions: Partition[] }> {
  const caseOf = new Map(slides.map((s) => [s.slideId, s.caseId]));
  const seen = new Map<string, Set<Partition>>();
  const valIsTest = fold.val.length > 0 && sortedIds(fold.val) === sortedIds(fold.test);
  for (const partition of PARTITIONS.filter((p) => !(valIsTest && p === 'val'))) {
    for (const slideId of fold[partition]) {
      const caseId = caseOf.get(slideId) ?? slideId;
      const partitions = seen.get(caseId) ?? new Set<Partition>();
      partitions.add(partition);
      seen.set(caseId, partitions);
    }
  }
  return [...seen.entries()]
    .filter(([, partitions]) => partitions.size > 1)
    .map(([caseId, partitions]) => ({ caseId, partitions: PARTITIONS.filter((p) => partitions.has(p)) }))
    .sort((a, b) => a.caseId.localeCompare(b.caseId));
}

/**
 * Throws for patient leakage and one-class training sets; warns (once per fold and partition) for one-class
 * validation/test sets, whose AUC is then reported as undefined, and for a validation set equal to the test set.
 */
export function checkSplitSense(folds: readonly Fold[], slides: readonly SlideRecord[], options: SplitSenseOptions): void {
  const labelOf = new Map(slides.map((s) => [s.slideId, s.label]));
  const where = options.file === undefined ? { key: 'split' } : { file: options.file };
  const className = (label: number): string => options.classNames[label] ?? String(label);
  for (const fold of folds) {
    const leaked = leakedPatients(fold, slides);
    if (leaked.length > 0) {
      const shown = leaked.slice(0, 10).map((l) => `${l.caseId} (${l.partitions.join(' + ')})`).join(', ');
      throw new DataError('patient-leakage', `fold ${fold.index}: ${leaked.length} patient(s) have slides in more than one partition: ${shown}${leaked.length > 10 ? ', …' : ''}.`, {
        where,
        hint: 'Every slide of a patient (case_id) must sit in one partition of a fold; fix the split files, or let milkit draw the splits (remove split.file).',
      });
    }
    const classesIn = (partition: Partition): Set<number> => new Set(fold[partition].map((id) => labelOf.get(id)).filter((l): l is number => l !== undefined));
    const train = classesIn('train');
    if (train.size === 1 && options.classNames.length > 1) {
      const only = [...train][0] as number;
      throw new DataError('one-class-train', `fold ${fold.index}: every training slide is of class "${className(only)}", so nothing can be learnt about the others.`, {
        where,
        hint: 'Check the labels (data.labels) and the slide table; with few slides of a class use fewer folds so each training set holds every class.',
      });
    }
    for (const partition of ['val', 'test'] as const) {
      const present = classesIn(partition);
      if (fold[partition].length > 0 && present.size === 1 && options.classNames.length > 1) {
        options.logger.warn(
          `fold ${fold.index}: the ${partition === 'val' ? 'validation' : 'test'} set holds only class "${className([...present][0] as number)}" ` +
          `(${fold[partition].length} slides); AUC and other two-class metrics are reported as undefined for it.`,
        );
      }
    }
    if (fold.val.length > 0 && sortedIds(fold.val) === sortedIds(fold.test)) {
      options.logger.warn(`fold ${fold.index}: the validation set is the test set; model selection then sees the test slides and test metrics are optimistic.`);
    }
  }
}
