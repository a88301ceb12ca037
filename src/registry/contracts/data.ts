// Dataset plugins: a slide table plus lazy access to each slide's bag of instance features.
import type { Logger } from '../../core/logger.js';

export interface SlideRecord {
  readonly slideId: string;
  /** Patient/case: splits never put one case in two partitions. */
  readonly caseId: string;
  /** Integer label in [0, C), or UNLABELLED in a cohort opened for prediction without labels. */
  readonly label: number;
  /** The slide table's label string ('' when unlabelled). */
  readonly labelName: string;
  /** Extra slide-table columns kept as metadata (coarse/fine labels of hierarchical tasks live here too). */
  readonly meta: Readonly<Record<string, string>>;
}

/**
 * The label of a slide whose slide table gives none. Only prediction opens such cohorts
 * (`DatasetContext.allowUnlabelled`); training and cross-validation always need labels.
 */
export const UNLABELLED = -1;

/** True when the slide carries a class label (not UNLABELLED). */
export function isLabelled(slide: { readonly label: number }): boolean {
  return slide.label !== UNLABELLED;
}

/** One slide's bag as host arrays (row-major). */
export interface BagData {
  readonly slideId: string;
  /** N instances. */
  readonly n: number;
  /** D feature width. */
  readonly d: number;
  /** [N, D] float32. */
  readonly features: Float32Array;
  /** [N, 2] coordinates, when known. */
  readonly coords?: Float32Array;
  /** [N, 16, 16, 3] uint8 thumbnails, when known. */
  readonly thumbs?: Uint8Array;
  /** [N] 0/1 instance ground truth (synthetic data, annotated slides), for attention evaluation. */
  readonly instanceLabels?: Uint8Array;
  /**
   * Further named per-instance views (row-major, rows in feature order) beyond coords and thumbs, e.g. raw
   * instances or a second label level; the engine turns the ones a run needs into `Bag.views` tensors.
   */
  readonly views?: Readonly<Record<string, HostView>>;
}

/** A host-side per-instance array of shape [N, ...rest]. */
export interface HostView {
  readonly data: Float32Array | Int32Array;
  readonly shape: readonly number[];
}

/** Two-level label hierarchy (HMIL on BRACS): slide labels are fine classes, each inside one coarse class. */
export interface LabelHierarchy {
  readonly coarseNames: readonly string[];
  /** Coarse class index of each fine class (indexed by label). */
  readonly fineToCoarse: readonly number[];
}

export interface BagSource {
  readonly slides: readonly SlideRecord[];
  /** D of every bag (validated). */
  readonly featureDim: number;
  /** Class names indexed by label. */
  readonly classNames: readonly string[];
  /** Coarse classes above the labels, for hierarchical tasks (synthetic-hierarchical, tables with coarse_label). */
  readonly hierarchy?: LabelHierarchy;
  /**
   * True when the cohort has no labels (a slide table without a label column, opened with `allowUnlabelled`):
   * every slide's label is UNLABELLED and `classNames` are the declared ones. Absent means labelled.
   */
  readonly unlabelled?: boolean;
  /** Loads one slide's bag (cached by the source within its byte budget). */
  load(slideId: string): Promise<BagData>;
  /** The file a slide's bag is read from, named in validation messages (file-backed sources). */
  fileOf?(slideId: string): string | undefined;
  /** Frees file handles and caches. */
  close?(): Promise<void>;
}

export interface DatasetContext {
  readonly seed: number;
  readonly logger: Logger;
  /** Directory relative paths in options resolve against (the experiment file's folder or the cwd). */
  readonly baseDir: string;
  /** Byte budget of the source's bag cache (`data.cacheBytes`); sources use their own default when absent. */
  readonly cacheBytes?: number;
  /** Label name → class index declared in the config (`data.labels`); sources infer one (sorted names) when absent. */
  readonly labelMap?: Readonly<Record<string, number>>;
  /**
   * Accept a slide table without labels (prediction and inference only; `labelMap` then gives the classes).
   * Training never sets it, so a missing label column stays an error there.
   */
  readonly allowUnlabelled?: boolean;
}

export interface DatasetCapabilities {
  /** Bags carry instance-level ground truth. */
  readonly instanceLabels: boolean;
  readonly thumbs: boolean;
  readonly coords: boolean;
  /** Names of the bag views it provides; default: `thumbs` and `coords` as their flags say. */
  readonly views?: readonly string[];
}

export const DEFAULT_DATASET_CAPABILITIES: DatasetCapabilities = { instanceLabels: false, thumbs: false, coords: false };

/** The bag views a dataset provides, from its capabilities. */
export function datasetViews(capabilities: DatasetCapabilities): string[] {
  return [...new Set([...(capabilities.thumbs ? ['thumbs'] : []), ...(capabilities.coords ? ['coords'] : []), ...(capabilities.views ?? [])])];
}
