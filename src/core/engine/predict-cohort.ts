// The cohort `milkit predict` scores: the run's own dataset (no --data), a dataset config file (YAML/JSON: a
// `data:` section, a `dataset:` entry, or a bare plugin reference) or a folder of feature files with a slide table.
// Checked against the trained run before any model compute: feature width, class set, feature extractor
// (docs/predict.md#checks-before-any-compute).
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { ConfigError, DataError, MilkitError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Registry, ResolvedPlugin } from '../../registry/registry.js';
import type { BagSource } from '../../registry/contracts/data.js';
import { extractorDifferences, readFeatureFileIdentity, type FeatureFileIdentity } from '../data/feature-identity.js';
import type { TrainedRun } from './predict.js';

/** Slide tables a feature folder may hold, in the order they are looked for. */
export const FOLDER_SLIDE_TABLES = ['slides.csv', 'slide_table.csv', 'labels.csv'] as const;

export interface Cohort {
  readonly source: BagSource;
  /** How the cohort was given, for messages (`the run's dataset`, a file, a folder). */
  readonly label: string;
  readonly dataset: ResolvedPlugin<'dataset'>;
  /** True when this is the run's own dataset (its splits apply). */
  readonly own: boolean;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The dataset reference of a dataset config file: `data.dataset`, `dataset`, or the file itself. */
function datasetRefOf(parsed: unknown, file: string): { ref: unknown; key: string } {
  if (isMapping(parsed) && isMapping(parsed.data) && parsed.data.dataset !== undefined) return { ref: parsed.data.dataset, key: 'data.dataset' };
  if (isMapping(parsed) && parsed.dataset !== undefined) return { ref: parsed.dataset, key: 'dataset' };
  if (isMapping(parsed) && typeof parsed.name === 'string') return { ref: parsed, key: '(root)' };
  throw new ConfigError('bad-data-config', `${file}: no dataset in it (expected data.dataset, dataset, or a plugin reference with name:).`, {
    where: { file }, hint: 'Write e.g. `dataset: { name: features-h5, slideTable: slides.csv, featuresDir: h5_files }`, or pass a folder of feature files with slides.csv.',
  });
}

async function datasetOf(spec: string | undefined, run: TrainedRun, registry: Registry, cwd: string): Promise<{ dataset: ResolvedPlugin<'dataset'>; baseDir: string; label: string; own: boolean }> {
  if (spec === undefined) return { dataset: run.resolved.slots.dataset, baseDir: run.dataBaseDir, label: `the run's dataset (${run.resolved.slots.dataset.name})`, own: true };
  const full = path.resolve(cwd, spec);
  if (!existsSync(full)) throw new ConfigError('data-not-found', `--data ${spec}: no such file or folder.`, { hint: 'Pass a dataset config (YAML/JSON) or a folder of feature files with slides.csv.' });
  if (statSync(full).isDirectory()) {
    const table = FOLDER_SLIDE_TABLES.find((name) => existsSync(path.join(full, name)));
    if (!table) {
      throw new DataError('no-slide-table', `${spec}: a feature folder needs a slide table (${FOLDER_SLIDE_TABLES.join(', ')}) with a slide_id column (case_id and label optional).`, {
        where: { file: full }, hint: 'Add slides.csv, or pass a dataset config naming the slide table (dataset: { name: features-dir, slideTable: ..., featuresDir: ... }).',
      });
    }
    const dataset = await registry.resolve('dataset', { name: 'features-dir', slideTable: table, featuresDir: '.' }, { file: full, key: '--data' });
    return { dataset, baseDir: full, label: spec, own: false };
  }
  let parsed: unknown;
  try {
    parsed = YAML.parse(await readFile(full, 'utf8')) as unknown;
  } catch (cause) {
    throw new ConfigError('bad-data-config', `${spec}: cannot parse it as YAML/JSON.`, { where: { file: full }, hint: 'Fix the syntax (the cause below names the line).', cause });
  }
  const { ref, key } = datasetRefOf(parsed, full);
  const dataset = await registry.resolve('dataset', ref, { file: full, key });
  return { dataset, baseDir: path.dirname(full), label: spec, own: false };
}

/**
 * Opens the cohort with the run's label map (so class indices mean what they meant in training); a label the
 * run never saw is a class-set mismatch.
 */
export async function openCohort(spec: string | undefined, run: TrainedRun, options: { readonly registry: Registry; readonly cwd: string; readonly logger: Logger }): Promise<Cohort> {
  const { dataset, baseDir, label, own } = await datasetOf(spec, run, options.registry, options.cwd);
  const { config } = run.resolved;
  const labelMap = config.data.labels ?? Object.fromEntries(run.classNames.map((name, index) => [name, index]));
  let source: BagSource;
  try {
    // A cohort may come without labels (predictions only); the run's label map then names its classes.
    source = await options.registry.create(dataset, { seed: config.seed, baseDir, cacheBytes: config.data.cacheBytes, labelMap, allowUnlabelled: true, logger: options.logger });
  } catch (error) {
    if (error instanceof MilkitError && error.code === 'unknown-label') {
      throw new DataError('class-set-mismatch', `${label}: ${error.message} The model was trained on classes ${run.classNames.join(', ')}.`, {
        ...(error.where ? { where: error.where } : {}), hint: 'Predict only cohorts labelled with the training classes (or relabel the slide table to them).', cause: error,
      });
    }
    throw error;
  }
  return { source, label, dataset, own };
}

/** The feature file of a slide, for sources that read files (feature folders). */
function fileOf(source: BagSource, slideId: string): string | undefined {
  const candidate = (source as Partial<{ fileOf(id: string): string }>).fileOf;
  return typeof candidate === 'function' ? candidate.call(source, slideId) : undefined;
}

/** Identity of the first feature file of a source that has one. */
export async function firstFileIdentity(source: BagSource): Promise<FeatureFileIdentity | undefined> {
  const first = source.slides[0];
  const file = first ? fileOf(source, first.slideId) : undefined;
  return file ? readFeatureFileIdentity(file) : undefined;
}

/**
 * Width, class set and extractor of the cohort against the run, before any model compute; each mismatch is a
 * DataError naming both sides. `trainingIdentity` opens the run's own data only when the cohort has attributes.
 */
export async function checkCohort(cohort: Cohort, run: TrainedRun, trainingIdentity: () => Promise<FeatureFileIdentity | undefined>): Promise<void> {
  const { source, label } = cohort;
  const trained = run.dims.inputDim;
  if (source.featureDim !== trained) {
    throw new DataError('feature-dim-mismatch', `${label}: the features are ${source.featureDim}-d, but the model in ${run.runDir} was trained on ${trained}-d features.`, {
      hint: `Extract the cohort's features with the encoder the model was trained on (${trained}-d), or predict with a run trained on ${source.featureDim}-d features.`,
    });
  }
  const same = source.classNames.length === run.classNames.length && source.classNames.every((name, i) => name === run.classNames[i]);
  if (!same) {
    throw new DataError('class-set-mismatch', `${label}: the cohort's classes are ${source.classNames.join(', ')}, the model was trained on ${run.classNames.join(', ')}.`, {
      hint: 'Predict only cohorts labelled with the training classes, in the same class order (data.labels fixes it).',
    });
  }
  if (cohort.own) return;
  const mine = await firstFileIdentity(source);
  if (!mine || Object.keys(mine.root).length === 0) return;
  const theirs = await trainingIdentity();
  if (!theirs) return;
  const differences = extractorDifferences(theirs, mine);
  if (differences.length > 0) {
    throw new DataError('extractor-mismatch', `${label}: the features were made by another extractor than the training cohort's (${differences.map(([name, a, b]) => `${name}: ${b} here, ${a} in training`).join('; ')}).`, {
      where: { file: mine.file }, hint: `Extract the cohort with the training cohort's extractor (see ${theirs.file}'s attributes), or predict with a model trained on these features.`,
    });
  }
}

