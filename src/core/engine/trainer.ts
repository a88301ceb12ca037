// The one training loop every stage runs through: one bag per step, or `bagsPerStep` bags whose mean loss plus
// batch-level terms make one step (optional gradient accumulation over steps), the
// stage's losses and strategy hooks, optimizer and schedule over the stage's trained parts only, validation
// every epoch with the early-stopping rule, a resumable checkpoint each epoch (model, strategy modules and
// state, optimizer), and the selected epoch's weights restored at the end.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { NumericsError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Rng } from '../runtime/random.js';
import type { BagSource, SlideRecord } from '../../registry/contracts/data.js';
import type { Metric, MetricValue } from '../../registry/contracts/metric.js';
import { bagToTensors } from '../data/bags.js';
import type { Strategy, StrategyStep } from '../../registry/contracts/strategy.js';
import type { ModelOutput } from '../../registry/contracts/loss.js';
import type { Bag } from '../../registry/contracts/model.js';
import { disposeBag } from './bag-tensors.js';
import type { TrainSection } from './schema.js';
import { clipGradientsByGlobalNorm, createOptimizer, learningRateAt, type Optimizer } from './optim/index.js';
import { EarlyStopping, type EarlyStoppingState } from './early-stopping.js';
import { epochOrder } from './sampling.js';
import { assignVariables, loadCheckpoint, recordToTensor, saveCheckpoint } from './checkpoint.js';
import { evaluate, type EvaluationResult } from './evaluate.js';
import type { MilModel } from './model.js';
import type { MemoryBudget } from './memory-budget.js';
import { stopRequested, throwIfStopped } from './lifecycle.js';

export interface EpochRecord {
  readonly epoch: number;
  readonly lr: number;
  /** `train/loss`, `train/loss_<slot>`, `val/loss`, `val/<metric>` ... */
  readonly metrics: Readonly<Record<string, number | null>>;
  readonly improved: boolean;
}

/** What the trainer tells the outside world (progress bars, trackers). */
export interface TrainEvents {
  /** A stage of the fold starts training (not called for stages loaded from an earlier run). */
  onStageStart?(stage: string, index: number, count: number): void;
  onEpochStart?(epoch: number, totalEpochs: number): void;
  onStep?(step: number, stepsPerEpoch: number): void;
  onEpochEnd?(record: EpochRecord): void | Promise<void>;
}

export interface TrainFoldOptions {
  readonly model: MilModel;
  readonly source: BagSource;
  readonly train: readonly SlideRecord[];
  readonly val: readonly SlideRecord[];
  readonly numClasses: number;
  readonly section: TrainSection;
  readonly maxInstances?: number;
  readonly metrics: ReadonlyArray<{ readonly name: string; readonly metric: Metric }>;
  /** The fold's stream; epochs derive their own from it by label, so resume needs no generator state. */
  readonly rng: Rng;
  readonly logger: Logger;
  /** Folder for `last.ckpt` and `best.ckpt`. */
  readonly checkpointDir: string;
  readonly configHash: string;
  readonly fold: number;
  readonly resume: boolean;
  readonly events?: TrainEvents;
  /** The stage's strategy (default: plain training). */
  readonly strategy?: Strategy;
  /**
   * Tensors saved in checkpoints, by state-dict name (default: the model's); a stage adds its strategy's
   * modules as `strategy.<key>.…`.
   */
  readonly tensors?: ReadonlyArray<readonly [string, tf.Variable]>;
  /** Variables the optimizer updates (default: every trainable tensor of the model). */
  readonly trainable?: ReadonlyArray<readonly [string, tf.Variable]>;
  /** The epoch's random stream (default `rng.fork('epoch-<e>')`). */
  readonly epochStream?: (epoch: number) => Rng;
  /** Bag views the training step reads (validation builds only what the model's forward needs). */
  readonly views?: readonly string[];
  /** How logs name what is trained (`fold 0`, `fold 0 stage lipn`). */
  readonly label?: string;
  /** Checks each step's bags against the memory limit before compute (docs/runtime.md#memory-budget). */
  readonly memoryBudget?: MemoryBudget;
}

export interface TrainFoldResult {
  readonly history: EpochRecord[];
  readonly bestEpoch: number;
  readonly epochsRun: number;
  readonly stoppedEarly: boolean;
  /** True when training continued from a checkpoint. */
  readonly resumedFromEpoch?: number;
}

const MODEL_PREFIX = 'model/';
const OPTIM_PREFIX = 'optim/';

/** Runs the training loop of one fold and leaves the best epoch's weights in `model`. */
export async function trainFold(options: TrainFoldOptions): Promise<TrainFoldResult> {
  const { model, source, section, numClasses, logger } = options;
  const label = options.label ?? `fold ${options.fold}`;
  const params = options.trainable ?? model.namedTrainable();
  const allTensors = options.tensors ?? model.namedTensors().map(([name, entry]) => [name, entry.variable] as const);
  const epochStream = options.epochStream ?? ((epoch: number): Rng => options.rng.fork(`epoch-${epoch}`));
  const optimizer: Optimizer = createOptimizer(section.optimizer, params);
  let stopper = EarlyStopping.fromTrain(section);
  const lastFile = path.join(options.checkpointDir, 'last.ckpt');
  const bestFile = path.join(options.checkpointDir, 'best.ckpt');
  const history: EpochRecord[] = [];
  let startEpoch = 0;
  let resumedFromEpoch: number | undefined;

  if (!options.resume) {
    // A fresh start must never select a stale best.ckpt of an earlier run in the same folder.
    await rm(lastFile, { force: true });
    await rm(bestFile, { force: true });
  } else {
    const checkpoint = await loadCheckpoint(lastFile);
    if (checkpoint && checkpoint.meta.configHash === options.configHash) {
      assignVariables(allTensors, checkpoint.tensors, MODEL_PREFIX, lastFile);
      const optimState: Record<string, tf.Tensor> = {};
      for (const [name, record] of Object.entries(checkpoint.tensors)) {
        if (name.startsWith(OPTIM_PREFIX)) optimState[name.slice(OPTIM_PREFIX.length)] = recordToTensor(record);
      }
      optimizer.loadState(optimState);
      tf.dispose(Object.values(optimState));
      stopper = EarlyStopping.fromState(section.earlyStopping, checkpoint.meta.earlyStopping as EarlyStoppingState, { epochs: section.epochs });
      history.push(...(checkpoint.meta.history as EpochRecord[]));
      if (checkpoint.meta.strategyState !== undefined) options.strategy?.loadState?.(checkpoint.meta.strategyState as Record<string, unknown>);
      startEpoch = checkpoint.meta.epoch + 1;
      resumedFromEpoch = checkpoint.meta.epoch;
      logger.info(`${label}: resuming after epoch ${checkpoint.meta.epoch + 1} from ${lastFile}`);
    } else if (checkpoint) {
      logger.warn(`${label}: ${lastFile} belongs to another config (hash differs); starting afresh.`);
    }
  }

  let stoppedEarly = stopper.stopped;
  try {
    return await trainEpochs();
  } finally {
    optimizer.dispose();
  }

  // Its own function so that the optimizer is disposed however training ends (a stop request throws).
  async function trainEpochs(): Promise<TrainFoldResult> {
    for (let epoch = startEpoch; epoch < section.epochs && !stoppedEarly; epoch += 1) {
      // A stop request (SIGINT/SIGTERM) ends training here or between steps; last.ckpt holds the last whole epoch.
      throwIfStopped(`before ${label} epoch ${epoch + 1}`);
      options.events?.onEpochStart?.(epoch, section.epochs);
      const lr = learningRateAt(section, epoch);
      const epochRng = epochStream(epoch);
      const trainMetrics = await trainEpoch(options, params, optimizer, epoch, lr, epochRng);
      const val = options.val.length > 0
        ? await evaluate({
          model, source, slides: options.val, numClasses, metrics: options.metrics, rng: epochRng.fork('val'), views: model.capabilities.needsViews, schedule: { epoch, totalEpochs: section.epochs },
          // Batch-level terms (SupCon) enter val/loss over validation groups the size of a training step; a fresh
          // fork of one stream each epoch (forks do not advance their parent), so every epoch scores the same groups.
          batchTerms: { bagsPerGroup: section.bagsPerStep, rng: options.rng.fork('val-batch-groups') },
          ...(options.memoryBudget ? { memoryBudget: options.memoryBudget } : {}),
        })
        : undefined;
      const metrics: Record<string, number | null> = { ...trainMetrics, ...(val ? validationMetrics(val) : {}) };
      const monitored = metrics[section.earlyStopping.monitor];
      const decision = stopper.update(epoch, monitored ?? Number.NaN);
      stoppedEarly = decision.stop;
      const record: EpochRecord = { epoch, lr, metrics, improved: decision.improved };
      history.push(record);
      if (decision.improved) await saveModel(bestFile, allTensors, undefined, { epoch, configHash: options.configHash, fold: options.fold });
      const strategyState = options.strategy?.state?.();
      await saveModel(lastFile, allTensors, optimizer, {
        epoch, configHash: options.configHash, fold: options.fold, earlyStopping: stopper.state(), history, ...(strategyState !== undefined ? { strategyState } : {}),
      });
      await options.events?.onEpochEnd?.(record);
    }

    // Restore the selected epoch's weights for testing. With `select: last`, without a validation set, or when
    // no epoch was eligible/finite under the rule, the last epoch's weights are kept (the latter is said).
    const selectLast = section.earlyStopping.select === 'last';
    const selected = options.val.length > 0 && !selectLast ? stopper.bestEpoch : null;
    if (selected !== null) {
      const best = await loadCheckpoint(bestFile);
      if (best) assignVariables(allTensors, best.tensors, MODEL_PREFIX, bestFile);
    } else if (options.val.length > 0 && !selectLast) {
      logger.warn(`${label}: no epoch qualified under train.earlyStopping (${section.earlyStopping.monitor}); testing the last epoch's weights.`);
    }
    const bestEpoch = selected ?? history.length - 1;
    return { history, bestEpoch, epochsRun: history.length, stoppedEarly, ...(resumedFromEpoch !== undefined ? { resumedFromEpoch } : {}) };
  }
}

function validationMetrics(val: EvaluationResult): Record<string, number | null> {
  const out: Record<string, number | null> = { 'val/loss': val.loss };
  for (const [name, value] of Object.entries(val.metrics)) out[`val/${name}`] = value.value;
  return out;
}

async function trainEpoch(
  options: TrainFoldOptions, params: ReadonlyArray<readonly [string, tf.Variable]>, optimizer: Optimizer, epoch: number, lr: number, epochRng: Rng,
): Promise<Record<string, number>> {
  const { model, source, section, numClasses } = options;
  const strategy = options.strategy ?? {};
  const variables = params.map(([, v]) => v);
  // Method-declared clipping groups (DTFD-MIL clips each part to its own norm), as indices into `variables`.
  const clipGroups = (model.aggregator.gradientClipGroups ?? []).map((group) => ({
    maxNorm: group.maxNorm,
    indices: params.flatMap(([name], i) => (group.prefixes.some((prefix) => name.startsWith(`aggregator.${prefix}`)) ? [i] : [])),
  })).filter((group) => group.indices.length > 0);
  model.setTraining(true);
  const order = epochOrder(options.train.map((s) => s.label), { balanced: section.balancedSampling, rng: epochRng.fork('order') });
  // A step forwards `bagsPerStep` consecutive bags of the epoch order. Streams, strategy steps and global steps stay
  // numbered by the bag's position in the order, so bagsPerStep 1 is exactly the one-bag-per-step loop.
  const bagsPerStep = section.bagsPerStep;
  const numSteps = Math.ceil(order.length / bagsPerStep);
  const schedule = { epoch, totalEpochs: section.epochs };
  const withBatchTerms = !strategy.replacesModelLosses && model.hasBatchLosses();
  const termSums = new Map<string, tf.Scalar>();
  let lossSum = 0;
  let pending: tf.Tensor[] | undefined;
  let pendingCount = 0;
  const stepMetricSums = new Map<string, number>();
  for (let step = 0; step < numSteps; step += 1) {
    // Between steps nothing is pending but this epoch's partial sums, which a resume recomputes from last.ckpt.
    if (step > 0 && stopRequested()) {
      tf.dispose([...termSums.values(), ...(pending ?? [])]);
      throwIfStopped(`during ${options.label ?? `fold ${options.fold}`} epoch ${epoch + 1} (step ${step} of ${numSteps})`);
    }
    const members: Array<{ readonly slide: SlideRecord; readonly loaded: Bag; readonly bag: Bag; readonly info: StrategyStep }> = [];
    // Every bag of a step keeps its activations until the backward pass: the budget covers their sum.
    let instancesInStep = 0;
    for (let position = step * bagsPerStep; position < Math.min((step + 1) * bagsPerStep, order.length); position += 1) {
      const slide = options.train[order[position] as number] as SlideRecord;
      const stepRng = epochRng.fork(`step-${position}`);
      const data = await source.load(slide.slideId);
      instancesInStep += Math.min(data.n, options.maxInstances ?? data.n);
      if (options.memoryBudget) {
        try {
          await options.memoryBudget.check(data, 'train', `${options.label ?? `fold ${options.fold}`} epoch ${epoch + 1}, slide ${slide.slideId}`, instancesInStep);
        } catch (error) {
          for (const member of members) {
            if (member.bag !== member.loaded) disposeBag(member.bag);
            disposeBag(member.loaded);
          }
          tf.dispose([...termSums.values(), ...(pending ?? [])]);
          throw error;
        }
      }
      const loaded = {
        ...bagToTensors(data, {
          ...(options.maxInstances !== undefined ? { maxInstances: options.maxInstances } : {}),
          rng: stepRng.fork('subset'),
          views: options.views ?? [],
        }),
        label: slide.label,
      };
      const stepInfo = (bag: Bag): StrategyStep => ({
        model, bag, label: slide.label, numClasses, io: { training: true, rng: stepRng },
        isTraining: (part: string) => model.partTraining(part, true),
        epoch, stepInEpoch: position, globalStep: epoch * order.length + position, stepsPerEpoch: order.length, totalEpochs: section.epochs,
      });
      const bag = strategy.transformBag ? strategy.transformBag(stepInfo(loaded)) : loaded;
      members.push({ slide, loaded, bag, info: stepInfo(bag) });
    }
    const keptTerms: Record<string, tf.Scalar> = {};
    const stepNumbers: Array<Readonly<Record<string, number>>> = [];
    const { value, grads } = tf.variableGrads(() => {
      const perBag: tf.Scalar[] = [];
      const perBagTerms: Array<Record<string, tf.Scalar>> = [];
      const outputs: ModelOutput[] = [];
      for (const { slide, bag, info } of members) {
        const out: ModelOutput | undefined = strategy.replacesModelLosses ? undefined : strategy.forward ? strategy.forward(info) : model.forward(bag, info.io);
        const { total, terms } = out ? model.losses(out, slide.label, numClasses, schedule) : { total: tf.scalar(0), terms: {} as Record<string, tf.Scalar> };
        let objective: tf.Scalar = total;
        for (const [k, t] of Object.entries(strategy.lossTerms?.(info, out) ?? {})) {
          terms[k] = t;
          objective = tf.add(objective, t) as tf.Scalar;
        }
        if (strategy.stepMetrics) stepNumbers.push(strategy.stepMetrics(info, out));
        perBag.push(objective);
        perBagTerms.push(terms);
        if (out) outputs.push(out);
      }
      // The step's loss is the mean of the per-bag losses (a single bag's is used as is, bit for bit) ...
      let objective: tf.Scalar = perBag.length === 1 ? (perBag[0] as tf.Scalar) : (tf.div(tf.addN(perBag), perBag.length) as tf.Scalar);
      for (const k of new Set(perBagTerms.flatMap((terms) => Object.keys(terms)))) {
        const values = perBagTerms.flatMap((terms) => (terms[k] ? [terms[k]] : []));
        keptTerms[k] = tf.keep(values.length === 1 ? (values[0] as tf.Scalar) : (tf.div(tf.addN(values), values.length) as tf.Scalar));
      }
      // ... plus the terms that span the step's bags (SupCon), added once.
      if (withBatchTerms && outputs.length === members.length) {
        const batch = model.batchLosses(outputs, members.map((m) => m.slide.label), numClasses, schedule);
        for (const [k, t] of Object.entries(batch.terms)) keptTerms[k] = tf.keep(t);
        objective = tf.add(objective, batch.total) as tf.Scalar;
      }
      return objective;
    }, variables);
    for (const { loaded, bag } of members) {
      if (bag !== loaded) disposeBag(bag);
      disposeBag(loaded);
    }
    for (const numbers of stepNumbers) for (const [k, v] of Object.entries(numbers)) stepMetricSums.set(k, (stepMetricSums.get(k) ?? 0) + v);
    const loss = value.dataSync()[0] as number; // the one host sync per step
    value.dispose();
    if (!Number.isFinite(loss)) {
      tf.dispose(Object.values(grads));
      tf.dispose(Object.values(keptTerms));
      const where = members.length === 1 ? `slide ${members[0]?.slide.slideId}` : `slides ${members.map((m) => m.slide.slideId).join(', ')}`;
      throw new NumericsError('non-finite-loss', `epoch ${epoch + 1}, step ${step + 1}, ${where}: loss is ${loss}.`, {
        hint: 'Lower train.optimizer.lr, enable train.gradClip, or check the slide\'s features for extreme values.',
      });
    }
    lossSum += loss;
    for (const [k, t] of Object.entries(keptTerms)) {
      const prev = termSums.get(k);
      termSums.set(k, prev ? (tf.tidy(() => tf.add(prev, t)) as tf.Scalar) : (tf.clone(t) as tf.Scalar));
      prev?.dispose();
    }
    tf.dispose(Object.values(keptTerms));
    // Variables without a gradient path this step (an unused branch) get zeros, as torch leaves them untouched by grads.
    const ordered = variables.map((v) => grads[v.name] ?? tf.zerosLike(v));
    if (pending) {
      const summed = pending.map((g, i) => tf.add(g, ordered[i] as tf.Tensor));
      tf.dispose(pending);
      tf.dispose(ordered);
      pending = summed;
    } else pending = ordered;
    pendingCount += 1;
    if (pendingCount === section.accumulate || step === numSteps - 1) {
      applyUpdate(optimizer, pending, pendingCount, lr, section.gradClip, clipGroups);
      pending = undefined;
      pendingCount = 0;
      strategy.afterUpdate?.({ globalStep: epoch * order.length + Math.min((step + 1) * bagsPerStep, order.length) - 1, epoch });
    }
    options.events?.onStep?.(step + 1, numSteps);
  }
  const metrics: Record<string, number> = { 'train/loss': numSteps ? lossSum / numSteps : Number.NaN };
  for (const [k, t] of termSums) {
    metrics[`train/loss_${k}`] = (t.dataSync()[0] as number) / numSteps;
    t.dispose();
  }
  for (const [k, sum] of stepMetricSums) metrics[`train/${k}`] = sum / Math.max(order.length, 1);
  return metrics;
}

function applyUpdate(
  optimizer: Optimizer, summed: tf.Tensor[], count: number, lr: number, gradClip: number | undefined,
  clipGroups: ReadonlyArray<{ readonly maxNorm: number; readonly indices: readonly number[] }>,
): void {
  let grads = count > 1 ? summed.map((g) => tf.div(g, count)) : summed;
  if (count > 1) tf.dispose(summed);
  for (const group of clipGroups) {
    // Each group to its own global norm (torch clip_grad_norm_ per parameter group), on device.
    const clipped = clipGradientsByGlobalNorm(group.indices.map((i) => grads[i] as tf.Tensor), group.maxNorm);
    group.indices.forEach((i, k) => {
      (grads[i] as tf.Tensor).dispose();
      grads[i] = clipped.grads[k] as tf.Tensor;
    });
    clipped.norm.dispose();
  }
  if (gradClip !== undefined) {
    const clipped = clipGradientsByGlobalNorm(grads, gradClip);
    tf.dispose(grads);
    clipped.norm.dispose();
    grads = clipped.grads;
  }
  optimizer.step(grads, lr);
  tf.dispose(grads);
}

async function saveModel(
  file: string,
  tensors: ReadonlyArray<readonly [string, tf.Variable]>,
  optimizer: Optimizer | undefined,
  meta: { epoch: number; configHash: string; fold: number; [k: string]: unknown },
): Promise<void> {
  const all: Record<string, tf.Tensor> = {};
  for (const [name, variable] of tensors) all[MODEL_PREFIX + name] = variable;
  // optimizer.state() hands out copies: they are ours to free once written.
  const optimState = optimizer ? optimizer.state() : {};
  for (const [name, t] of Object.entries(optimState)) all[OPTIM_PREFIX + name] = t;
  try {
    await saveCheckpoint(file, all, meta);
  } finally {
    tf.dispose(Object.values(optimState));
  }
}

export type { MetricValue };
