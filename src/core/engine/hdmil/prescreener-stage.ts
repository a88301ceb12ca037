// Stage 2 of a two-stage model (docs/methods/hdmil.md#lipn-training): train a pre-screener to reproduce the frozen stage-1 model's
// per-branch instance gates. Targets come from the stage-1 aggregator in TRAINING mode (dropout on, no noise),
// the loss is the pre-screener's own imitation loss, selection is by the cross-entropy of the full screened
// pipeline on the validation slides. A finished stage's output file is reused on re-run, never deleted.
import * as tf from '@tensorflow/tfjs';
import { DataError, NumericsError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { Rng } from '../../runtime/random.js';
import type { BagSource, SlideRecord } from '../../../registry/contracts/data.js';
import { stepGate } from '../../nn/gradients.js';
import { EarlyStopping } from '../early-stopping.js';
import { createOptimizer, learningRateAt } from '../optim/index.js';
import { epochOrder } from '../sampling.js';
import type { TrainSection } from '../schema.js';
import { checkScreeningStage, crossEntropyHost, screenedPass, thumbsTensor, unionFraction, type ScreeningStage, type StageOneModel } from './screening.js';
import { loadModuleTorchState, moveAside, readStageWeights, saveStageWeights } from './weights.js';

export interface PrescreenerEpochRecord {
  readonly epoch: number;
  readonly lr: number;
  /**
   * `stage2/train_loss`, `stage2/train_target_kept` (stage-1 gate keep fraction), `stage2/train_kept` (the
   * pre-screener's), `stage2/val_loss` (screened-pipeline CE), `stage2/val_kept`.
   */
  readonly metrics: Readonly<Record<string, number | null>>;
  readonly improved: boolean;
}

export interface PrescreenerStageOptions {
  /** The trained stage-1 model of this fold (weights already restored); frozen here. */
  readonly model: StageOneModel;
  readonly stage: ScreeningStage;
  readonly source: BagSource;
  readonly train: readonly SlideRecord[];
  readonly val: readonly SlideRecord[];
  readonly numClasses: number;
  /** Stage-2 settings: optimizer, epochs, balanced sampling, early stopping on `val/loss` (HDMIL: patience 5, no warm-up). */
  readonly section: TrainSection;
  readonly rng: Rng;
  readonly logger: Logger;
  /** Where the selected pre-screener is written (original torch keys + metadata); reused when complete. */
  readonly outputFile?: string;
  /** Identifies what produced the output (config hash, fold): a file with another key is moved aside and retrained. */
  readonly reuseKey?: string;
  readonly events?: { onEpochEnd?(record: PrescreenerEpochRecord): void | Promise<void> };
}

export interface PrescreenerStageResult {
  readonly history: PrescreenerEpochRecord[];
  /** 0-indexed selected epoch (null when no validation epoch was finite). */
  readonly bestEpoch: number | null;
  readonly epochsRun: number;
  readonly stoppedEarly: boolean;
  /** True when a finished output was loaded instead of training. */
  readonly reused: boolean;
}

const STAGE_NAME = 'prescreener';

/** Trains (or reloads) the pre-screener of one fold and leaves the selected weights in `stage.prescreener`. */
export async function trainPrescreenerStage(options: PrescreenerStageOptions): Promise<PrescreenerStageResult> {
  const { model, stage, section, logger } = options;
  checkScreeningStage(stage, model, true);
  const reused = await reuseFinishedStage(options);
  if (reused) return reused;

  const prescreener = stage.prescreener;
  const named = prescreener.namedTensors();
  const params = named.filter(([, e]) => e.trainable).map(([key, e]) => [key, e.variable] as const);
  const variables = params.map(([, v]) => v);
  const optimizer = createOptimizer(section.optimizer, params);
  const stopper = EarlyStopping.fromTrain(section);
  if (stopper.monitor !== 'val/loss') logger.warn(`${STAGE_NAME} stage: selection uses the screened pipeline's val/loss; train.earlyStopping.monitor (${stopper.monitor}) is ignored here.`);
  const history: PrescreenerEpochRecord[] = [];
  let best: Map<string, tf.Tensor> | undefined;
  let stoppedEarly = false;

  try {
    for (let epoch = 0; epoch < section.epochs && !stoppedEarly; epoch += 1) {
      const lr = learningRateAt(section, epoch);
      const epochRng = options.rng.fork(`${STAGE_NAME}-epoch-${epoch}`);
      const train = await trainEpoch(options, optimizer, variables, epoch, lr, epochRng);
      const val = options.val.length > 0 ? await validate(options, epochRng.fork('val')) : undefined;
      const metrics = { ...train, ...(val ? { 'stage2/val_loss': val.loss, 'stage2/val_kept': val.kept } : {}) };
      const decision = stopper.update(epoch, val?.loss ?? Number.NaN);
      stoppedEarly = decision.stop;
      if (decision.improved) {
        tf.dispose([...(best?.values() ?? [])]);
        best = new Map(named.map(([key, e]) => [key, tf.clone(e.variable)]));
      }
      const record: PrescreenerEpochRecord = { epoch, lr, metrics, improved: decision.improved };
      history.push(record);
      logger.debug(`${STAGE_NAME} stage epoch ${epoch + 1}: ${Object.entries(metrics).map(([k, v]) => `${k}=${v === null ? 'n/a' : v.toFixed(4)}`).join(' ')}`);
      await options.events?.onEpochEnd?.(record);
    }
  } finally {
    optimizer.dispose();
  }
  // The selected epoch's weights (BatchNorm running statistics included); without validation or with
  // `select: last`, the last epoch.
  const selectBest = options.val.length > 0 && section.earlyStopping.select === 'best';
  if (best && selectBest) {
    for (const [key, entry] of named) entry.variable.assign(best.get(key) as tf.Tensor);
  }
  tf.dispose([...(best?.values() ?? [])]);
  const bestEpoch = selectBest ? stopper.bestEpoch : history.length - 1;
  if (options.outputFile) {
    await saveStageWeights(options.outputFile, prescreener, {
      'milkit.stage': STAGE_NAME,
      'milkit.complete': 'true',
      'milkit.reuseKey': options.reuseKey ?? '',
      'milkit.bestEpoch': String(bestEpoch),
      'milkit.stoppedEarly': String(stoppedEarly),
      'milkit.history': JSON.stringify(history),
    });
  }
  return { history, bestEpoch, epochsRun: history.length, stoppedEarly, reused: false };
}

async function reuseFinishedStage(options: PrescreenerStageOptions): Promise<PrescreenerStageResult | undefined> {
  if (!options.outputFile) return undefined;
  const stored = await readStageWeights(options.outputFile);
  if (!stored) return undefined;
  const meta = stored.metadata;
  const sameRun = meta['milkit.stage'] === STAGE_NAME && meta['milkit.complete'] === 'true' && (meta['milkit.reuseKey'] ?? '') === (options.reuseKey ?? '');
  if (!sameRun) {
    const aside = await moveAside(options.outputFile);
    options.logger.warn(`${options.outputFile} belongs to another run or is incomplete; moved to ${aside} and retraining the ${STAGE_NAME} stage.`);
    return undefined;
  }
  loadModuleTorchState(options.stage.prescreener, stored.tensors, options.outputFile);
  options.logger.info(`${STAGE_NAME} stage: reusing the finished output ${options.outputFile}`);
  const history = JSON.parse(meta['milkit.history'] ?? '[]') as PrescreenerEpochRecord[];
  const bestEpoch = meta['milkit.bestEpoch'] === 'null' || meta['milkit.bestEpoch'] === undefined ? null : Number(meta['milkit.bestEpoch']);
  return { history, bestEpoch, epochsRun: history.length, stoppedEarly: meta['milkit.stoppedEarly'] === 'true', reused: true };
}

async function trainEpoch(
  options: PrescreenerStageOptions,
  optimizer: ReturnType<typeof createOptimizer>,
  variables: tf.Variable[],
  epoch: number,
  lr: number,
  epochRng: Rng,
): Promise<Record<string, number>> {
  const { model, stage, section } = options;
  const aggregator = model.aggregator;
  const gateLogits = aggregator.gateLogits;
  const branchScores = stage.prescreener.branchScores;
  const imitationLoss = stage.prescreener.imitationLoss;
  if (!gateLogits || !branchScores || !imitationLoss) throw new RangeError('trainEpoch: stage checked without gates/scores/loss');
  // docs/methods/hdmil.md#lipn-training: the frozen stage-1 model produces targets in training mode (its dropout active), without noise.
  model.setTraining(true);
  stage.prescreener.setTraining(true);
  const order = epochOrder(options.train.map((s) => s.label), { balanced: section.balancedSampling, rng: epochRng.fork('order') });
  let lossSum = 0;
  let targetKept = 0;
  let predictedKept = 0;
  for (let step = 0; step < order.length; step += 1) {
    const slide = options.train[order[step] as number] as SlideRecord;
    const stepRng = epochRng.fork(`step-${step}`);
    const data = await options.source.load(slide.slideId);
    const thumbs = thumbsTensor(data, 'the pre-screener stage');
    const features = tf.tensor2d(data.features, [data.n, data.d]);
    const targets = tf.tidy(() => stepGate(gateLogits.call(aggregator, { slideId: data.slideId, features }, { training: true, rng: stepRng.fork('targets') }), 0)); // [N, K]  M_HR
    features.dispose();
    let scores: tf.Tensor2D | undefined;
    const io = { training: true, rng: stepRng.fork('prescreener') };
    const { value, grads } = tf.variableGrads(() => {
      const o = branchScores.call(stage.prescreener, thumbs, io); // [N, K]
      scores = tf.keep(o);
      return imitationLoss.call(stage.prescreener, o, targets);
    }, variables);
    const loss = value.dataSync()[0] as number;
    const [, branches = 1] = targets.shape;
    targetKept += unionFraction(targets.dataSync(), data.n, branches);
    predictedKept += unionFraction(tf.tidy(() => stepGate(scores as tf.Tensor2D, 0).dataSync()), data.n, branches);
    tf.dispose([value, thumbs, targets, scores as tf.Tensor2D]);
    if (!Number.isFinite(loss)) {
      tf.dispose(Object.values(grads));
      throw new NumericsError('non-finite-loss', `pre-screener stage, epoch ${epoch + 1}, step ${step + 1}, slide ${slide.slideId}: loss is ${loss}.`, {
        hint: 'Lower the stage-2 learning rate or check the slide\'s thumbnails.',
      });
    }
    lossSum += loss;
    const ordered = variables.map((v) => grads[v.name] ?? tf.zerosLike(v));
    optimizer.step(ordered, lr);
    tf.dispose([...ordered, ...Object.values(grads)]);
  }
  const steps = Math.max(order.length, 1);
  return { 'stage2/train_loss': lossSum / steps, 'stage2/train_target_kept': targetKept / steps, 'stage2/train_kept': predictedKept / steps };
}

async function validate(options: PrescreenerStageOptions, rng: Rng): Promise<{ loss: number; kept: number }> {
  const { model, stage } = options;
  model.setTraining(false);
  stage.prescreener.setTraining(false);
  const io = { training: false, rng };
  let lossSum = 0;
  let keptSum = 0;
  for (const slide of options.val) {
    const data = await options.source.load(slide.slideId);
    if (data.n === 0) throw new DataError('empty-bag', `slide ${slide.slideId} has no instances.`, { hint: 'Remove it from the slide table.' });
    const pass = screenedPass(model, stage, data, io);
    lossSum += crossEntropyHost(pass.logits, slide.label);
    keptSum += pass.prescreenerKept ?? 1;
  }
  return { loss: lossSum / options.val.length, kept: keptSum / options.val.length };
}
