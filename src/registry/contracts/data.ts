// Dataset plugins: a slide table plus lazy access to each slide's bag of instance features.
import type { Logger } from '../../core/logger.js';

export interface SlideRecord {
  readonly slideId: string;
  /** Patient/case: splits never put one case in two partitions. */
  readonly caseId: string;
  /** Integer label in [0, C). */
  readonly label: number;
  readonly labelName: string;
  /** Extra slide-table columns kept as metadata (coarse/fine labels of hierarchical tasks live here too). */
  readonly meta: Readonly<Record<string, string>>;
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
}

export interface DatasetCapabilities {
  /** Bags carry instance-level ground truth. */
  readonly instanceLabels: boolean;
  readonly thumbs: boolean;
  readonly coords: boolean;
}

export const DEFAULT_DATASET_CAPABILITIES: DatasetCapabilities = { instanceLabels: false, thumbs: false, coords: false };
