// One fold of a two-stage model after its stage-1 training (docs/methods/hdmil.md#evaluation): evaluate the stage-1 model on all
// instances of the test slides (HDMIL†), train (or reuse) the pre-screener stage on the fold's train/val
// slides, then evaluate the screened pipeline (HDMIL) on the same test slides.
import path from 'node:path';
import type { Logger } from '../../logger.js';
import type { Rng } from '../../runtime/random.js';
import type { BagSource, SlideRecord } from '../../../registry/contracts/data.js';
import type { Metric } from '../../../registry/contracts/metric.js';
import type { TrainSection } from '../schema.js';
import { inferenceMetrics, runInference, type InferenceResult } from './inference.js';
import { trainPrescreenerStage, type PrescreenerEpochRecord, type PrescreenerStageResult } from './prescreener-stage.js';
import type { InstanceReader, ScreeningStage, StageOneModel } from './screening.js';

export interface PrescreenedFoldOptions {
  /** The fold's trained stage-1 model (best epoch restored). */
  readonly model: StageOneModel;
  /** A fresh pre-screener of this fold. */
  readonly stage: ScreeningStage;
  readonly source: BagSource;
  readonly train: readonly SlideRecord[];
  readonly val: readonly SlideRecord[];
  readonly test: readonly SlideRecord[];
  readonly numClasses: number;
  /** Stage-2 training settings (HDMIL: Adam 1e-4, L2 1e-5, 200 epochs, balanced sampling, patience 5 from epoch 0). */
  readonly section: TrainSection;
  readonly metrics: ReadonlyArray<{ readonly name: string; readonly metric: Metric }>;
  readonly rng: Rng;
  readonly logger: Logger;
  /** The fold's output folder: the stage writes `prescreener.safetensors` there (original torch keys). */
  readonly foldDir?: string;
  /** What the output belongs to (config hash + fold), for reuse on re-run. */
  readonly reuseKey?: string;
  readonly events?: { onEpochEnd?(record: PrescreenerEpochRecord): void | Promise<void> };
  /** How test instances are read in both modes (default: precomputed features). */
  readonly read?: InstanceReader;
}

export interface PrescreenedFoldResult {
  readonly stage: PrescreenerStageResult;
  /** HDMIL†: the stage-1 model on every instance. */
  readonly allInstances: InferenceResult;
  /** HDMIL: pre-screener mask, then the stage-1 model on the kept instances. */
  readonly screened: InferenceResult;
  /**
   * Flat record for the fold run: `test/<metric>`, `test/loss`, `test/kept_prescreener`, `time/<stage>_ms` (screened),
   * the same with `test_all/…` and `time/<stage>_ms_all` for all instances (incl. `test_all/kept_aggregator`).
   */
  readonly metrics: Record<string, number | null>;
}

export async function runPrescreenedFold(options: PrescreenedFoldOptions): Promise<PrescreenedFoldResult> {
  const { model, stage, source, numClasses, metrics, logger } = options;
  const evaluate = (mode: 'all-instances' | 'screened', rng: Rng): Promise<InferenceResult> =>
    runInference({ mode, model, ...(mode === 'screened' ? { stage } : {}), source, slides: options.test, numClasses, metrics, rng, ...(options.read ? { read: options.read } : {}) });
  const allInstances = await evaluate('all-instances', options.rng.fork('test-all'));
  const stageResult = await trainPrescreenerStage({
    model,
    stage,
    source,
    train: options.train,
    val: options.val,
    numClasses,
    section: options.section,
    rng: options.rng.fork('prescreener-stage'),
    logger,
    ...(options.foldDir ? { outputFile: path.join(options.foldDir, 'prescreener.safetensors') } : {}),
    ...(options.reuseKey !== undefined ? { reuseKey: options.reuseKey } : {}),
    ...(options.events ? { events: options.events } : {}),
  });
  const screened = await evaluate('screened', options.rng.fork('test-screened'));
  const record = { ...inferenceMetrics(screened, 'test'), ...inferenceMetrics(allInstances, 'test_all', '_all') };
  logger.info(
    `screened: kept ${(100 * (screened.kept.prescreener ?? 1)).toFixed(1)}% of instances, ${screened.msPerSlide.total.toFixed(1)} ms/slide` +
    ` · all instances: ${allInstances.msPerSlide.total.toFixed(1)} ms/slide (stage-1 gates keep ${(100 * (allInstances.kept.aggregator ?? 1)).toFixed(1)}%)`,
  );
  return { stage: stageResult, allInstances, screened, metrics: record };
}
