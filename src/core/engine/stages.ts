// A run is a sequence of stages (config `stages:`). Per fold, stage 1 … stage n each train through the one
// trainer loop with their own parts, modes, strategy, losses and train settings, are selected by their own
// rule and test-evaluated after training; each keeps its checkpoints under fold-<k>/stage-<name>/ with a done
// marker, so a resumed fold skips finished stages (their selected weights are loaded) and continues the
// interrupted one from its last epoch. This module resolves and checks the stages (checkStages is pure, for
// the preflight) and runs them for one fold. Design: docs/stages.md.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ConfigError, DataError } from '../errors.js';
import { writeFileDurably } from '../io/disk.js';
import type { Logger } from '../logger.js';
import { Rng } from '../runtime/random.js';
import type { ResolvedExperiment, ResolvedLoss } from '../config/load.js';
import type { Registry, ResolvedPlugin } from '../../registry/registry.js';
import { DEFAULT_DATASET_CAPABILITIES, datasetViews, type BagSource, type SlideRecord } from '../../registry/contracts/data.js';
import type { Metric, MetricValue } from '../../registry/contracts/metric.js';
import { DEFAULT_AGGREGATOR_CAPABILITIES, DEFAULT_ENCODER_CAPABILITIES } from '../../registry/contracts/model.js';
import { DEFAULT_STRATEGY_CAPABILITIES, type Strategy, type StrategyCapabilities } from '../../registry/contracts/strategy.js';
import { DEFAULT_PRESCREENER_CAPABILITIES } from '../../registry/kinds.js';
import { parseOrThrow } from '../config/zod-issues.js';
import { TrainSection, type StageSection } from './schema.js';
import { assignVariables, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { evaluate, type EvaluationResult, type SlidePrediction } from './evaluate.js';
import type { MilModel } from './model.js';
import { MemoryBudget, modelStepProbe, type MemoryLimit } from './memory-budget.js';
import { trainFold, type EpochRecord, type TrainEvents, type TrainFoldResult } from './trainer.js';

/** Parts every composed model may have; strategies add their modules by name. */
const MODEL_PARTS = ['encoder', 'aggregator', 'classifier', 'prescreener'] as const;
const DEFAULT_TRAINS = ['aggregator', 'classifier'] as const;
const STRATEGY_PREFIX = 'strategy.';

/** A stage with its plugins resolved and its train: settings merged over the top-level ones. */
export interface ResolvedStage {
  readonly index: number;
  /** Config key of the stage (`stages[1]`), for messages. */
  readonly key: string;
  readonly name: string;
  readonly section: StageSection;
  readonly train: TrainSection;
  readonly strategy: ResolvedPlugin<'strategy'>;
  /** The stage's own loss slots (replace model.losses), when given. */
  readonly losses?: Readonly<Record<string, ResolvedLoss>>;
  /** Parts the optimizer updates. */
  readonly trains: readonly string[];
  /** True when `trains` was written in the config (default parts that do not exist are then an error). */
  readonly explicitTrains: boolean;
  /** Earlier stage the stage starts from, and which parts (undefined = all). */
  readonly from?: { readonly stage: string; readonly parts?: readonly string[] };
  /** Label of the stage's random streams. */
  readonly stream: string;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Deep merge of raw settings over parsed ones (mappings merge, everything else replaces). */
function mergeOver(base: unknown, over: unknown): unknown {
  if (!isMapping(base) || !isMapping(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) out[key] = key in base ? mergeOver(base[key], value) : value;
  return out;
}

/** Resolves every stage's strategy and losses through the registry and merges its train: settings. */
export async function resolveStages(resolved: ResolvedExperiment, registry: Registry): Promise<ResolvedStage[]> {
  const { config } = resolved;
  const stages: ResolvedStage[] = [];
  for (const [index, section] of config.stages.entries()) {
    const key = `stages[${index}]`;
    const where = (sub: string): { file: string; key: string } => ({ file: resolved.file, key: `${key}.${sub}` });
    const strategy = await registry.resolve('strategy', section.strategy, where('strategy'));
    let losses: Record<string, ResolvedLoss> | undefined;
    if (section.losses) {
      losses = {};
      for (const [slot, { weight, ...ref }] of Object.entries(section.losses)) losses[slot] = { ...(await registry.resolve('loss', ref, where(`losses.${slot}`))), weight };
    }
    const train = parseOrThrow(TrainSection, mergeOver(config.train, section.train), where('train'), `${key}.train merged over train`);
    const from = section.from === undefined ? undefined : typeof section.from === 'string' ? { stage: section.from } : { stage: section.from.stage, ...(section.from.parts ? { parts: section.from.parts } : {}) };
    stages.push({
      index, key, name: section.name, section, train, strategy, ...(losses ? { losses } : {}),
      // A configured encoder trains end to end with the aggregator unless the stage says otherwise.
      trains: section.trains ?? [...(hasEncoder(resolved, registry) ? ['encoder'] : []), ...DEFAULT_TRAINS], explicitTrains: section.trains !== undefined,
      ...(from ? { from } : {}), stream: section.stream ?? section.name,
    });
  }
  return stages;
}

/** Whether `model.encoder` builds an encoder with weights (capability trainable; `none` builds nothing). */
function hasEncoder(resolved: ResolvedExperiment, registry: Registry): boolean {
  const encoder = resolved.slots.encoder;
  return encoder !== undefined && registry.capabilities(encoder, DEFAULT_ENCODER_CAPABILITIES).trainable;
}

/** The parts a stage may name: the composed model's plus its strategy's declared modules are not known before creation. */
function modelParts(resolved: ResolvedExperiment, registry: Registry): { exists: Set<string>; why: Record<string, string> } {
  const aggregator = registry.capabilities(resolved.slots.aggregator, DEFAULT_AGGREGATOR_CAPABILITIES);
  const prescreener = registry.capabilities(resolved.slots.prescreener, DEFAULT_PRESCREENER_CAPABILITIES);
  const exists = new Set<string>(['aggregator']);
  const why: Record<string, string> = {};
  if (aggregator.ownsClassifier) why.classifier = `aggregator "${resolved.slots.aggregator.name}" owns its classifier heads (they are part of the aggregator)`;
  else exists.add('classifier');
  if (hasEncoder(resolved, registry)) exists.add('encoder');
  else why.encoder = `encoder "${resolved.slots.encoder?.name ?? 'none'}" has no weights (model.encoder builds none)`;
  if (prescreener.trainable) exists.add('prescreener');
  else why.prescreener = `pre-screener "${resolved.slots.prescreener.name}" has nothing to train (capability trainable)`;
  return { exists, why };
}

/**
 * Everything wrong with the stages before any compute, as ConfigErrors naming the key and the fix: unknown or
 * later `from` stages, duplicate names, parts that do not exist, strategy requirements (capabilities of the
 * aggregator, a trained pre-screener) and views the dataset does not provide. Pure: reads capabilities only.
 */
export function checkStages(resolved: ResolvedExperiment, stages: readonly ResolvedStage[], registry: Registry): ConfigError[] {
  const errors: ConfigError[] = [];
  const file = resolved.file;
  const fail = (code: string, key: string, message: string, hint: string): void => {
    errors.push(new ConfigError(code, `${key}: ${message}`, { where: { file, key }, hint }));
  };
  const { exists, why } = modelParts(resolved, registry);
  const aggregator = registry.capabilities(resolved.slots.aggregator, DEFAULT_AGGREGATOR_CAPABILITIES);
  const prescreener = registry.capabilities(resolved.slots.prescreener, DEFAULT_PRESCREENER_CAPABILITIES);
  const provided = datasetViews(registry.capabilities(resolved.slots.dataset, DEFAULT_DATASET_CAPABILITIES));
  const encoderViews = hasEncoder(resolved, registry) && resolved.slots.encoder ? [registry.capabilities(resolved.slots.encoder, DEFAULT_ENCODER_CAPABILITIES).inputView] : [];
  const seen = new Map<string, number>();
  let prescreenerTrained = false;
  for (const stage of stages) {
    const strategyCaps: StrategyCapabilities = registry.capabilities(stage.strategy, DEFAULT_STRATEGY_CAPABILITIES);
    if (seen.has(stage.name)) fail('duplicate-stage', `${stage.key}.name`, `stage name "${stage.name}" is used by stages[${seen.get(stage.name)}] too.`, 'Give every stage its own name.');
    if (stage.from) {
      const target = seen.get(stage.from.stage);
      if (target === undefined) {
        const later = stages.some((s) => s.name === stage.from?.stage);
        fail('unknown-from-stage', `${stage.key}.from`, later
          ? `stage "${stage.from.stage}" runs after "${stage.name}", so there is no checkpoint to start from.`
          : `no stage named "${stage.from.stage}" (stages: ${stages.map((s) => s.name).join(', ')}).`,
        'Name an earlier stage, or move this stage after it.');
      }
      for (const part of stage.from.parts ?? []) {
        if (!exists.has(part)) fail('unknown-part', `${stage.key}.from.parts`, `no model part "${part}"${why[part] ? `: ${why[part]}` : ''}.`, `Parts: ${[...exists].join(', ')}.`);
      }
    }
    seen.set(stage.name, stage.index);
    const named = (part: string): boolean => exists.has(part) || !(MODEL_PARTS as readonly string[]).includes(part);
    for (const part of stage.explicitTrains ? stage.trains : []) {
      if (!named(part)) fail('unknown-part', `${stage.key}.trains`, `no model part "${part}"${why[part] ? `: ${why[part]}` : ''}.`, `Trainable parts: ${[...exists].join(', ')} (or a module the strategy holds).`);
    }
    for (const part of Object.keys(stage.section.modes)) {
      if (!named(part)) fail('unknown-part', `${stage.key}.modes.${part}`, `no model part "${part}"${why[part] ? `: ${why[part]}` : ''}.`, `Parts: ${[...exists].join(', ')} (or a module the strategy holds).`);
    }
    if (stage.trains.includes('prescreener') && exists.has('prescreener')) prescreenerTrained = true;
    for (const capability of strategyCaps.requiresAggregator) {
      if (!aggregator[capability]) {
        fail('strategy-requirement', `${stage.key}.strategy`, `strategy "${stage.strategy.name}" needs an aggregator with capability ${capability}, but "${resolved.slots.aggregator.name}" has none.`,
          `Use an aggregator with ${capability} (milkit plugins aggregator lists capabilities), or another strategy.`);
      }
    }
    if (strategyCaps.requiresTrainedPrescreener && !(prescreener.trainable && stage.trains.includes('prescreener'))) {
      fail('strategy-requirement', `${stage.key}.strategy`, `strategy "${stage.strategy.name}" trains a pre-screener, but ${prescreener.trainable ? 'the stage does not train it' : `pre-screener "${resolved.slots.prescreener.name}" is not trainable`}.`,
        prescreener.trainable ? `Add prescreener to ${stage.key}.trains.` : 'Set model/prescreener to a trainable pre-screener (lipn), or drop this stage.');
    }
    if (stage.train.bagsPerStep > 1) {
      const refusers = [
        ...(aggregator.batchedSteps ? [] : [`aggregator "${resolved.slots.aggregator.name}" updates once per bag`]),
        ...(strategyCaps.batchedSteps === false ? [`strategy "${stage.strategy.name}" keeps per-step state for one bag`] : []),
      ];
      if (refusers.length > 0) {
        const stageSets = isMapping(stage.section.train) && stage.section.train['bagsPerStep'] !== undefined;
        fail('bags-per-step-unsupported', stageSets ? `${stage.key}.train.bagsPerStep` : 'train.bagsPerStep', `bagsPerStep is ${stage.train.bagsPerStep}, but ${refusers.join(' and ')}, so its bags cannot share an optimizer step.`,
          'Set train.bagsPerStep: 1 (train.accumulate averages gradients over bags without batch-level terms).');
      }
    }
    const needed = new Set([...stage.section.views, ...strategyCaps.needsViews, ...aggregator.needsViews, ...encoderViews, ...(prescreenerTrained ? prescreener.needsViews : [])]);
    const missing = [...needed].filter((view) => !provided.includes(view));
    if (missing.length > 0) {
      fail('view-not-provided', `${stage.key}.views`, `the stage reads bag view(s) ${missing.map((v) => `"${v}"`).join(', ')}, but dataset "${resolved.slots.dataset.name}" provides ${provided.length ? provided.map((v) => `"${v}"`).join(', ') : 'none'}.`,
        'Use a dataset that provides them (capability views / thumbs / coords), or drop the plugin or stage that needs them.');
    }
  }
  if (prescreener.trainable && !stages.some((stage) => stage.trains.includes('prescreener'))) {
    fail('prescreener-untrained', 'model.prescreener', `pre-screener "${resolved.slots.prescreener.name}" is trainable, but no stage trains it, so it would never be used.`,
      'Add a stage that trains it (trains: [prescreener], e.g. with strategy gate-distillation; experiments/hdmil.yaml), or set model/prescreener=none.');
  }
  return errors;
}

/** Throws the first stage problem (with the count of the others). */
export function assertStages(resolved: ResolvedExperiment, stages: readonly ResolvedStage[], registry: Registry): void {
  const [first, ...rest] = checkStages(resolved, stages, registry);
  if (!first) return;
  if (rest.length === 0) throw first;
  throw new ConfigError(first.code, `${first.message}\n(and ${rest.length} more stage problem(s): ${rest.map((e) => e.where?.key ?? e.code).join(', ')})`, {
    ...(first.where ? { where: first.where } : {}), ...(first.hint ? { hint: first.hint } : {}),
  });
}

/** What a finished stage leaves in its done marker (and reports to the fold). */
export interface StageResult {
  readonly name: string;
  readonly history: EpochRecord[];
  readonly bestEpoch: number;
  readonly epochsRun: number;
  readonly stoppedEarly: boolean;
  readonly test: {
    readonly metrics: Record<string, MetricValue>;
    readonly loss: number;
    readonly instanceAuc?: MetricValue;
    readonly msPerSlide: number;
    readonly stageMs: EvaluationResult['stageMs'];
    readonly kept: EvaluationResult['kept'];
    readonly screened: boolean;
    readonly predictions: SlidePrediction[];
  };
  /** Wall-clock milliseconds of the stage's training (0 when loaded from a done marker of an earlier run). */
  readonly trainMs: number;
  /** True when the stage was finished in an earlier run and loaded, not retrained. */
  readonly reused: boolean;
}

export interface StageTracking {
  /** Run id of the stage, created or reused (single-stage runs log on the fold run). */
  startStage(stage: ResolvedStage): Promise<string | undefined>;
  endStage(stage: ResolvedStage, runId: string | undefined, result: StageResult): Promise<void>;
  onEpochEnd(stage: ResolvedStage, runId: string | undefined, record: EpochRecord): Promise<void>;
}

export interface FoldStagesOptions {
  readonly registry: Registry;
  readonly stages: readonly ResolvedStage[];
  readonly model: MilModel;
  readonly modelLosses: Readonly<Record<string, ResolvedLoss>>;
  readonly lossSlots: { readonly aggregator: ResolvedExperiment['slots']['aggregator']; readonly classifier: ResolvedExperiment['slots']['classifier'] };
  readonly source: BagSource;
  readonly train: readonly SlideRecord[];
  readonly val: readonly SlideRecord[];
  readonly test: readonly SlideRecord[];
  readonly numClasses: number;
  readonly metrics: ReadonlyArray<{ readonly name: string; readonly metric: Metric }>;
  readonly instanceMetric?: Metric;
  readonly maxInstances?: number;
  /** The fold's stream (`<seed>/fold-<k>`). */
  readonly foldRng: Rng;
  readonly foldDir: string;
  readonly configHash: string;
  readonly fold: number;
  readonly resume: boolean;
  readonly logger: Logger;
  readonly events?: TrainEvents;
  readonly tracking?: StageTracking;
  /** Memory limit each stage checks its bags against before compute (docs/runtime.md#memory-budget). */
  readonly memory?: { readonly limit: MemoryLimit; readonly checkFrom?: number };
}

/**
 * The random streams of a stage (documented in docs/stages.md): stage 1 uses the fold stream itself (epochs
 * `epoch-<e>`, test `test`), so one-stage configs keep the numbers they had before stages; stage k > 1 uses
 * `fold/stage-<k>/<stream>-stage` with epochs `<stream>-epoch-<e>`, where `<stream>` is the stage's `stream:`
 * (default its name). HDMIL's LIPN stage sets `stream: prescreener`, the label its stage had before.
 */
export function stageStreams(foldRng: Rng, stage: ResolvedStage): { stage: Rng; epoch: (epoch: number) => Rng; test: Rng; strategy: Rng } {
  if (stage.index === 0) return { stage: foldRng, epoch: (e) => foldRng.fork(`epoch-${e}`), test: foldRng.fork('test'), strategy: foldRng.fork('strategy') };
  const stream = foldRng.fork(`stage-${stage.index + 1}`).fork(`${stage.stream}-stage`);
  return { stage: stream, epoch: (e) => stream.fork(`${stage.stream}-epoch-${e}`), test: stream.fork('test'), strategy: stream.fork('strategy') };
}

const DONE_FILE = 'done.json';
const SELECTED_FILE = 'selected.ckpt';

/** Folder of a stage's checkpoints in a fold. */
export function stageDir(foldDir: string, stageName: string): string {
  return path.join(foldDir, `stage-${stageName}`);
}

interface DoneMarker {
  readonly configHash: string;
  readonly result: StageResult;
}

async function readDone(dir: string, configHash: string): Promise<StageResult | undefined> {
  const file = path.join(dir, DONE_FILE);
  if (!existsSync(file) || !existsSync(path.join(dir, SELECTED_FILE))) return undefined;
  const marker = JSON.parse(await readFile(file, 'utf8')) as DoneMarker;
  return marker.configHash === configHash ? marker.result : undefined;
}

/** Views the model's parts read in a stage (and its strategy). */
function neededViews(model: MilModel, stage: ResolvedStage, strategyCaps: StrategyCapabilities): string[] {
  return [...new Set([
    ...model.capabilities.needsViews,
    ...(model.screening || stage.trains.includes('prescreener') ? model.prescreenerCapabilities.needsViews : []),
    ...strategyCaps.needsViews,
    ...stage.section.views,
  ])];
}

/** Every tensor of the model and the strategy's modules, by checkpoint name. */
function stageTensors(model: MilModel, strategy: Strategy): Array<readonly [string, tf.Variable]> {
  const own = model.namedTensors().map(([name, entry]) => [name, entry.variable] as const);
  const held = Object.entries(strategy.modules ?? {}).flatMap(([key, module]) =>
    module.namedTensors().map(([name, entry]) => [`${STRATEGY_PREFIX}${key}.${name}`, entry.variable] as const));
  return [...own, ...held];
}

function trainableOf(model: MilModel, strategy: Strategy, parts: readonly string[]): Array<readonly [string, tf.Variable]> {
  const prefixes = parts.map((part) => ((MODEL_PARTS as readonly string[]).includes(part) ? `${part}.` : `${STRATEGY_PREFIX}${part}.`));
  const own = model.namedTensors().filter(([name, entry]) => entry.trainable && prefixes.some((p) => name.startsWith(p)));
  const held = Object.entries(strategy.modules ?? {}).flatMap(([key, module]) =>
    module.namedTensors().filter(([, entry]) => entry.trainable).map(([name, entry]) => [`${STRATEGY_PREFIX}${key}.${name}`, entry] as const))
    .filter(([name]) => prefixes.some((p) => name.startsWith(p)));
  return [...own, ...held].map(([name, entry]) => [name, entry.variable] as const);
}

/** Which stage loads which stage's selected checkpoint (`from` = `stage`: a finished stage reloaded on --resume). */
export interface FromStage {
  readonly stage: string;
  readonly from: string;
  readonly parts?: readonly string[];
  readonly fold: number;
}

/**
 * Loads the `from` stage's selected checkpoint into the model (all parts or the listed ones). Every tensor is
 * checked before any is assigned, so a missing file (ConfigError, exit 2) or a checkpoint of another model
 * (DataError, exit 4) stops the stage before it computes anything, with the stage, the fold, the path and the fix.
 */
export async function loadFromStage(model: MilModel, foldDir: string, target: FromStage): Promise<void> {
  const file = path.join(stageDir(foldDir, target.from), SELECTED_FILE);
  const what = target.from === target.stage
    ? `stage "${target.stage}" of fold ${target.fold} finished in an earlier run and --resume reloads its selected checkpoint`
    : `stage "${target.stage}" of fold ${target.fold} starts from stage "${target.from}"'s selected checkpoint (for a momentum teacher, its teacher checkpoint)`;
  const checkpoint = await loadCheckpoint(file);
  if (!checkpoint) {
    throw new ConfigError('missing-stage-checkpoint', `${what}, but ${file} does not exist.`, {
      where: { file },
      hint: `Run fold ${target.fold} again without --resume so stage "${target.from}" trains and writes it, or restore the file.`,
    });
  }
  const tensors = model.namedTensors()
    .filter(([name]) => target.parts === undefined || target.parts.some((part) => name.startsWith(`${part}.`)))
    .map(([name, entry]) => [name, entry.variable] as const);
  const problems: string[] = [];
  for (const [name, variable] of tensors) {
    const record = checkpoint.tensors[`model/${name}`];
    if (!record) problems.push(`tensor "${name}" is missing`);
    else if (record.shape.join(',') !== variable.shape.join(',')) problems.push(`tensor "${name}" has shape [${record.shape.join(', ')}], the model expects [${variable.shape.join(', ')}]`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 3).join('; ') + (problems.length > 3 ? `; and ${problems.length - 3} more` : '');
    throw new DataError('mismatched-stage-checkpoint', `${what}, but ${file} was written by another model: ${shown}.`, {
      where: { file },
      hint: `The stages share one model, so stage "${target.from}" must have been trained with this config's model: delete ${stageDir(foldDir, target.from)} and run fold ${target.fold} again without --resume, or use the config that wrote it.`,
    });
  }
  assignVariables(tensors, checkpoint.tensors, 'model/', file);
}

/** Trains (or reloads) every stage of one fold in order; returns one result per stage. */
export async function runFoldStages(options: FoldStagesOptions): Promise<StageResult[]> {
  const { model, stages } = options;
  // The fold's starting weights, kept only when a stage starts `from` another (strategies may restart parts from them).
  const initialTensors = stages.some((stage) => stage.from)
    ? new Map(model.namedTensors().map(([name, entry]) => [name, tf.clone(entry.variable)] as const))
    : undefined;
  try {
    return await runStages(options, initialTensors);
  } finally {
    if (initialTensors) tf.dispose([...initialTensors.values()]);
  }
}

async function runStages(options: FoldStagesOptions, initialTensors: ReadonlyMap<string, tf.Tensor> | undefined): Promise<StageResult[]> {
  const { registry, model, stages, logger } = options;
  const results: StageResult[] = [];
  for (const stage of stages) {
    const dir = stageDir(options.foldDir, stage.name);
    await mkdir(dir, { recursive: true });
    const streams = stageStreams(options.foldRng, stage);
    const strategyCaps = registry.capabilities(stage.strategy, DEFAULT_STRATEGY_CAPABILITIES);
    const losses = stage.losses ?? options.modelLosses;
    model.useLosses(registry, { ...options.lossSlots, losses });
    if (stage.trains.includes('prescreener') && model.prescreener) model.screening = true;
    if (stage.from) await loadFromStage(model, options.foldDir, { stage: stage.name, from: stage.from.stage, fold: options.fold, ...(stage.from.parts ? { parts: stage.from.parts } : {}) });

    const done = options.resume ? await readDone(dir, options.configHash) : undefined;
    if (done) {
      await loadFromStage(model, options.foldDir, { stage: stage.name, from: stage.name, fold: options.fold });
      logger.info(`fold ${options.fold}: stage ${stage.name} finished in an earlier run; loaded its selected checkpoint`);
      results.push({ ...done, reused: true });
      continue;
    }
    if (!options.resume) {
      await rm(path.join(dir, DONE_FILE), { force: true });
      await rm(path.join(dir, SELECTED_FILE), { force: true });
    }
    options.events?.onStageStart?.(stage.name, stage.index, stages.length);
    const runId = await options.tracking?.startStage(stage);
    const strategy: Strategy = registry.create(stage.strategy, {
      model, numClasses: options.numClasses, rng: streams.strategy, logger, inputDim: model.encoder ? model.encoder.outputDim : options.source.featureDim,
      ...(stage.from && initialTensors ? { initialTensors } : {}),
    });
    try {
      // Modes while training: trained parts train unless the stage says eval; frozen parts eval unless it says train.
      const heldModules = Object.keys(strategy.modules ?? {});
      const parts = [...model.partNames(), ...heldModules];
      const evalParts = parts.filter((part) => (stage.section.modes[part] ?? (stage.trains.includes(part) ? 'train' : 'eval')) === 'eval');
      model.setEvalParts(evalParts);
      for (const key of heldModules) strategy.modules?.[key]?.setTraining(!evalParts.includes(key));
      strategy.init?.(model);
      const views = neededViews(model, stage, strategyCaps);
      // One budget per stage: its trained variables and views shape the step whose peak is probed.
      const memoryBudget = options.memory
        ? new MemoryBudget({
          limit: options.memory.limit,
          ...(options.memory.checkFrom !== undefined ? { checkFrom: options.memory.checkFrom } : {}),
          model: options.lossSlots.aggregator.name,
          floor: (n, mode) => model.aggregator.minimumPeakBytes?.(n, mode),
          probe: modelStepProbe({
            model, label: 0, numClasses: options.numClasses, views,
            variables: trainableOf(model, strategy, stage.trains).map(([, variable]) => variable),
            rng: new Rng(`memory-probe/${stage.name}`),
          }),
        })
        : undefined;
      const started = performance.now();
      const trained: TrainFoldResult = await trainFold({
        model, source: options.source, train: options.train, val: options.val, numClasses: options.numClasses, section: stage.train,
        ...(options.maxInstances !== undefined ? { maxInstances: options.maxInstances } : {}),
        metrics: options.metrics, rng: streams.stage, epochStream: streams.epoch, logger, checkpointDir: dir,
        configHash: options.configHash, fold: options.fold, resume: options.resume, strategy,
        tensors: stageTensors(model, strategy), trainable: trainableOf(model, strategy, stage.trains), views,
        label: stages.length > 1 ? `fold ${options.fold} stage ${stage.name}` : `fold ${options.fold}`,
        ...(memoryBudget ? { memoryBudget } : {}),
        events: {
          ...options.events,
          onEpochEnd: async (record) => {
            await options.events?.onEpochEnd?.(record);
            await options.tracking?.onEpochEnd(stage, runId, record);
          },
        },
      });
      const trainMs = performance.now() - started;
      model.setEvalParts([]);
      const selected: Record<string, tf.Tensor> = {};
      for (const [name, variable] of stageTensors(model, strategy)) selected[`model/${name}`] = variable;
      await saveCheckpoint(path.join(dir, SELECTED_FILE), selected, { epoch: trained.bestEpoch, configHash: options.configHash, fold: options.fold, stage: stage.name });
      const test = await evaluate({
        model, source: options.source, slides: options.test, numClasses: options.numClasses, metrics: options.metrics, rng: streams.test,
        views: model.capabilities.needsViews, warmup: true, ...(options.instanceMetric ? { instanceMetric: options.instanceMetric } : {}),
        ...(memoryBudget ? { memoryBudget } : {}),
      });
      const result: StageResult = {
        name: stage.name, history: trained.history, bestEpoch: trained.bestEpoch, epochsRun: trained.epochsRun, stoppedEarly: trained.stoppedEarly,
        test: {
          metrics: test.metrics, loss: test.loss, msPerSlide: test.msPerSlide, stageMs: test.stageMs, kept: test.kept, screened: test.screened, predictions: test.predictions,
          ...(test.instanceAuc ? { instanceAuc: test.instanceAuc } : {}),
        },
        trainMs, reused: false,
      };
      await writeFileDurably(path.join(dir, DONE_FILE), JSON.stringify({ configHash: options.configHash, result } satisfies DoneMarker, null, 2), { action: `mark stage ${stage.name} done` });
      await options.tracking?.endStage(stage, runId, result);
      results.push(result);
    } finally {
      model.setEvalParts([]);
      strategy.dispose?.();
      for (const module of Object.values(strategy.modules ?? {})) module.dispose();
    }
  }
  return results;
}

/**
 * Fold metrics from the stage results: the last stage's test metrics as they are, its kept rates and pipeline
 * times (`kept_prescreener`, `time_<prescreen|read|aggregate|total>_ms`); earlier stages' under `<stage>_<name>`
 * (HDMIL: `auc` = screened pipeline, `dmin_auc` = DMIN on all instances); each stage's training time
 * `time_<stage>_ms` when there is more than one stage.
 */
export function foldMetrics(results: readonly StageResult[]): Record<string, MetricValue> {
  const out: Record<string, MetricValue> = {};
  const many = results.length > 1;
  results.forEach((result, i) => {
    const last = i === results.length - 1;
    const prefix = last ? '' : `${result.name}_`;
    const { test } = result;
    for (const [name, value] of Object.entries(test.metrics)) out[`${prefix}${name}`] = value;
    if (!many) return;
    if (!last) out[`${prefix}loss`] = Number.isFinite(test.loss) ? { value: test.loss } : { value: null, reason: 'not computed' };
    if (test.kept.prescreener !== undefined) out[`${prefix}kept_prescreener`] = { value: test.kept.prescreener };
    if (test.kept.aggregator !== undefined) out[`${prefix}kept_aggregator`] = { value: test.kept.aggregator };
    for (const [key, ms] of Object.entries(test.stageMs)) out[`${prefix}time_${key}_ms`] = { value: ms };
    out[`time_${result.name}_ms`] = { value: result.trainMs };
  });
  return out;
}
