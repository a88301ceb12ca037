// The plugin kinds and, for each, what its factory receives and returns. Later issues add kinds by
// augmenting PluginKindMap (strategy, slide-reader, feature-extractor...) without touching core.
import type { AggregatorCapabilities, Aggregator, Classifier, ModelContext, Prescreener } from './contracts/model.js';
import type { Loss, LossCapabilities, LossContext } from './contracts/loss.js';
import type { BagSource, DatasetCapabilities, DatasetContext } from './contracts/data.js';
import type { Metric, MetricCapabilities } from './contracts/metric.js';
import type { Tracker, TrackerCapabilities, TrackerContext } from './contracts/tracker.js';
import type { Executor, ExecutorCapabilities, ExecutorContext } from './contracts/executor.js';
import type { Strategy, StrategyCapabilities, StrategyContext } from './contracts/strategy.js';
import type { SlideOpener, SlideReaderCapabilities, SlideReaderContext } from '../core/slides/reader.js';
import type { TissueDetector, TissueDetectorCapabilities } from '../core/slides/tissue.js';
import type { FeatureExtractor, FeatureExtractorCapabilities, FeatureExtractorContext } from '../core/extract/extractor.js';

export interface MetricContext {
  readonly numClasses: number;
}

export interface PrescreenerCapabilities {
  /** Needs training of its own (a stage after the aggregator's), e.g. LIPN; `none` does not. */
  readonly trainable: boolean;
  /** Bag views it reads (LIPN: `thumbs`). */
  readonly needsViews: readonly string[];
}

export const DEFAULT_PRESCREENER_CAPABILITIES: PrescreenerCapabilities = { trainable: false, needsViews: [] };

/** kind → { context given to create(), instance returned, capability flags }. */
export interface PluginKindMap {
  aggregator: { context: ModelContext; instance: Aggregator; capabilities: AggregatorCapabilities };
  classifier: { context: ModelContext; instance: Classifier; capabilities: Readonly<Record<string, never>> };
  loss: { context: LossContext; instance: Loss; capabilities: LossCapabilities };
  prescreener: { context: ModelContext; instance: Prescreener | null; capabilities: PrescreenerCapabilities };
  dataset: { context: DatasetContext; instance: Promise<BagSource>; capabilities: DatasetCapabilities };
  metric: { context: MetricContext; instance: Metric; capabilities: MetricCapabilities };
  tracker: { context: TrackerContext; instance: Tracker; capabilities: TrackerCapabilities };
  executor: { context: ExecutorContext; instance: Executor; capabilities: ExecutorCapabilities };
  strategy: { context: StrategyContext; instance: Strategy; capabilities: StrategyCapabilities };
  'slide-reader': { context: SlideReaderContext; instance: SlideOpener; capabilities: SlideReaderCapabilities };
  'tissue-detector': { context: SlideReaderContext; instance: TissueDetector; capabilities: TissueDetectorCapabilities };
  'feature-extractor': { context: FeatureExtractorContext; instance: Promise<FeatureExtractor>; capabilities: FeatureExtractorCapabilities };
}

export type PluginKind = keyof PluginKindMap;

/** Runtime list of the built-in kinds, in the order `milkit plugins` prints them. */
export const PLUGIN_KINDS: readonly PluginKind[] = ['aggregator', 'classifier', 'loss', 'prescreener', 'strategy', 'dataset', 'metric', 'tracker', 'executor', 'slide-reader', 'tissue-detector', 'feature-extractor'];

export function isPluginKind(value: string): value is PluginKind {
  return (PLUGIN_KINDS as readonly string[]).includes(value);
}
