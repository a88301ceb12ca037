// Label maps: slide-table label strings → class indices, declared in the config (`data.labels`) or inferred
// from the table (sorted, integers numerically) and then printed so the mapping is never a surprise.
import { ConfigError, DataError, type ErrorLocation } from '../errors.js';
import type { Logger } from '../logger.js';
import { didYouMean } from '../util/suggest.js';

export interface LabelMap {
  /** Label string → class index. */
  readonly index: ReadonlyMap<string, number>;
  /** Class names by index (several strings mapped to one class are joined with "|"). */
  readonly classNames: readonly string[];
  readonly inferred: boolean;
}

/** Integers sort numerically, everything else by code point; mixed tables sort as strings. */
function sortLabels(names: readonly string[]): string[] {
  const allIntegers = names.every((n) => /^-?\d+$/.test(n));
  return [...names].sort(allIntegers ? (a, b) => Number(a) - Number(b) : (a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Builds the map from the declared one (checked: indices 0..C-1, no gaps) or infers it from `observed`. */
export function resolveLabelMap(
  observed: readonly string[],
  declared: Readonly<Record<string, number>> | undefined,
  logger: Logger,
  where: ErrorLocation = {},
): LabelMap {
  const distinct = sortLabels([...new Set(observed)]);
  if (declared === undefined) {
    if (distinct.length === 0) throw new DataError('no-labels', 'the slide table has no labelled slides.', { where, hint: 'Add rows with a label column.' });
    const index = new Map(distinct.map((name, i) => [name, i] as const));
    logger.info(`labels inferred (declare data.labels to fix the order): ${distinct.map((n, i) => `${n}=${i}`).join(', ')}`);
    return { index, classNames: distinct, inferred: true };
  }
  const entries = Object.entries(declared);
  if (entries.length === 0) throw new ConfigError('empty-label-map', 'data.labels is empty.', { where: { key: 'data.labels' }, hint: 'Map each label name to a class index, e.g. {normal: 0, tumor: 1}.' });
  const numClasses = Math.max(...entries.map(([, v]) => v)) + 1;
  const byClass: string[][] = Array.from({ length: numClasses }, () => []);
  for (const [name, classIndex] of entries) byClass[classIndex]?.push(name);
  const missing = byClass.map((names, i) => (names.length === 0 ? i : -1)).filter((i) => i >= 0);
  if (missing.length > 0) {
    throw new ConfigError('label-map-gap', `data.labels maps no name to class ${missing.join(', ')} (classes must be 0..${numClasses - 1} without gaps).`, {
      where: { key: 'data.labels' },
      hint: 'Renumber the classes so every index from 0 to C-1 is used.',
    });
  }
  const unknown = distinct.filter((name) => !(name in declared));
  if (unknown.length > 0) {
    const first = unknown[0] as string;
    throw new DataError('unknown-label', `label "${first}" is not in data.labels (declared: ${Object.keys(declared).join(', ')}).${didYouMean(first, Object.keys(declared))}`, {
      where,
      hint: 'Add it to data.labels or fix the slide table.',
    });
  }
  return { index: new Map(entries), classNames: byClass.map((names) => names.join('|')), inferred: false };
}

/**
 * Re-indexes slides whose labels a dataset already numbered (synthetic sets) through a declared map; without
 * one the dataset's own order stands. The declared map must name every class the dataset uses.
 */
export function applyDeclaredLabels<S extends { readonly label: number; readonly labelName: string }>(
  slides: readonly S[],
  classNames: readonly string[],
  declared: Readonly<Record<string, number>> | undefined,
  logger: Logger,
): { slides: S[]; classNames: string[] } {
  if (declared === undefined) return { slides: [...slides], classNames: [...classNames] };
  const map = resolveLabelMap(classNames, declared, logger);
  return {
    slides: slides.map((s) => ({ ...s, label: map.index.get(s.labelName) as number })),
    classNames: [...map.classNames],
  };
}

/**
 * The coarse classes above the labels, read from a slide-table column (`coarse_label`): coarse names sorted,
 * and every fine class must sit in exactly one coarse class. Undefined when no slide has the column.
 */
export function deriveHierarchy(
  slides: ReadonlyArray<{ readonly slideId: string; readonly label: number; readonly meta: Readonly<Record<string, string>> }>,
  classNames: readonly string[],
  column = 'coarse_label',
): { coarseNames: string[]; fineToCoarse: number[] } | undefined {
  if (!slides.some((s) => (s.meta[column] ?? '') !== '')) return undefined;
  const coarseOf = new Map<number, { name: string; slideId: string }>();
  for (const s of slides) {
    const name = s.meta[column] ?? '';
    if (name === '') throw new DataError('missing-coarse-label', `slide "${s.slideId}" has an empty ${column} while other slides have one.`, { hint: `Fill in ${column} for every slide or drop the column.` });
    const seen = coarseOf.get(s.label);
    if (seen !== undefined && seen.name !== name) {
      throw new DataError('inconsistent-hierarchy', `class "${classNames[s.label]}" sits under two ${column} values: "${seen.name}" (slide "${seen.slideId}") and "${name}" (slide "${s.slideId}").`, {
        hint: 'Each fine label must belong to exactly one coarse label.',
      });
    }
    coarseOf.set(s.label, { name, slideId: s.slideId });
  }
  const coarseNames = [...new Set([...coarseOf.values()].map((v) => v.name))].sort();
  return { coarseNames, fineToCoarse: classNames.map((_, c) => (coarseOf.has(c) ? coarseNames.indexOf((coarseOf.get(c) as { name: string }).name) : -1)) };
}

/**
 * The hierarchy declared in the config (`data.hierarchy`: fine label name → coarse label name). Coarse classes
 * are numbered in the order they first appear in the mapping, so the config fixes their order (benign before
 * malignant). Every class must be mapped; names that are not classes are refused with the known ones.
 */
export function hierarchyFromConfig(classNames: readonly string[], declared: Readonly<Record<string, string>>): { coarseNames: string[]; fineToCoarse: number[] } {
  const unknown = Object.keys(declared).filter((name) => !classNames.includes(name));
  if (unknown.length > 0) {
    const first = unknown[0] as string;
    throw new ConfigError('unknown-hierarchy-class', `data.hierarchy maps "${first}", which is not a class of the dataset (classes: ${classNames.join(', ')}).${didYouMean(first, [...classNames])}`, {
      where: { key: `data.hierarchy.${first}` },
      hint: 'Key data.hierarchy by the fine class names the dataset uses.',
    });
  }
  const unmapped = classNames.filter((name) => declared[name] === undefined || declared[name] === '');
  if (unmapped.length > 0) {
    throw new ConfigError('incomplete-hierarchy', `data.hierarchy gives no coarse class for ${unmapped.map((n) => `"${n}"`).join(', ')}.`, {
      where: { key: 'data.hierarchy' },
      hint: 'Map every fine class to its coarse class, e.g. {N: benign, PB: benign, DCIS: malignant, ...}.',
    });
  }
  const coarseNames = [...new Set(Object.values(declared))];
  return { coarseNames, fineToCoarse: classNames.map((name) => coarseNames.indexOf(declared[name] as string)) };
}

/** Coarse class probabilities from fine ones: each coarse class gets the sum of its children's. */
export function coarseProbabilities(fineProbs: readonly number[], fineToCoarse: readonly number[], numCoarse: number): number[] {
  const out = new Array<number>(numCoarse).fill(0);
  fineProbs.forEach((p, f) => {
    const c = fineToCoarse[f];
    if (c !== undefined && c >= 0) out[c] = (out[c] as number) + p;
  });
  return out;
}
