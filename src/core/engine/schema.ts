// train:, split: and eval: sections of an experiment.
import { z } from 'zod';
import { LossRef, PluginRef } from '../config/plugin-ref.js';

export const OptimizerSection = z.strictObject({
  name: z.enum(['adam', 'adamw', 'sgd', 'radam']).default('adam').describe('optimizer'),
  lr: z.number().positive().default(2e-4).describe('learning rate'),
  weightDecay: z.number().min(0).default(1e-5).describe('weight-decay coefficient wd: added to the gradient as wd*p (torch Adam, SGD, RAdam) unless decoupledWeightDecay'),
  decoupledWeightDecay: z.boolean().optional().describe('decay the weights directly, p <- p*(1 - lr*wd), instead of adding wd*p to the gradient; default true for adamw, false otherwise (torch 1.13); TransMIL\'s RAdam: true'),
  excludeFromDecay: z.array(z.string().min(1)).default([]).describe('parameter names that get no weight decay, as globs over dotted names (* = any characters), e.g. ["*.bias"] (TransMIL)'),
  decayVectors: z.boolean().default(true).describe('apply weight decay to 1-D parameters (norm gains and biases); false excludes every 1-D tensor, as timm/TransMIL do'),
  betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]).describe('Adam-family moment decays'),
  eps: z.number().positive().default(1e-8).describe('Adam-family epsilon'),
  momentum: z.number().min(0).lt(1).default(0.9).describe('SGD momentum'),
  fused: z.boolean().optional().describe('adam/adamw only (default true there): update each parameter tensor in one pass instead of ~13 kernels (wasm: one SIMD pass in place on the heap; elsewhere small tensors in one host loop); bit-identical to the unfused update, which false selects'),
  lookahead: z.strictObject({
    k: z.int().positive().default(5).describe('fast steps per slow update'),
    alpha: z.number().gt(0).max(1).default(0.5).describe('slow-weight interpolation'),
    slowStart: z.enum(['initial', 'first-sync']).default('initial').describe('where the slow weights start: the weights at optimizer creation (Zhang et al. 2019), or a copy of the fast weights at the first sync, which makes that sync a no-op (timm\'s Lookahead, used by TransMIL)'),
  }).optional().describe('wrap the optimizer in Lookahead'),
});
export type OptimizerSection = z.output<typeof OptimizerSection>;

export const EarlyStoppingSection = z.strictObject({
  monitor: z.string().default('val/loss').describe('logged metric to watch (val/loss, val/auc, ...)'),
  mode: z.enum(['min', 'max']).default('min').describe('whether smaller or larger is better'),
  patience: z.int().min(1).default(20).describe('stop once this many counted epochs in a row brought no improvement'),
  minEpochs: z.int().min(0).default(0).describe('epochs ignored at the start (0-indexed 0..minEpochs-1): neither selected nor counted (HDMIL: 49, i.e. from 1-indexed epoch 50)'),
  minEpochsFraction: z.number().gt(0).lt(1).optional().describe('minEpochs relative to train.epochs: epochs with index <= floor(fraction*epochs) are ignored (DTFD-MIL: 0.8); use instead of minEpochs'),
  strict: z.boolean().default(true).describe('a new best must be strictly better; when false a tie also becomes the new best and resets the counter (CLAM)'),
  tiesReset: z.boolean().default(false).describe('a tie with the best resets the patience counter even when strict keeps the earlier best epoch (MHIM-MIL)'),
  stopAfterEpoch: z.int().min(0).optional().describe('earliest stop: a stop can only happen at a 0-indexed epoch greater than this, the counter keeps running before it (CLAM: 50, MHIM-MIL: 130/70/100)'),
  enabled: z.boolean().default(true).describe('stop early at all; when false the best epoch is still selected (unless select: last)'),
  select: z.enum(['best', 'last']).default('best').describe('weights tested at the end: the best epoch under this rule, or the last epoch trained (CLAM without --early_stopping, fixed-schedule papers); validation is still logged'),
}).refine((s) => s.minEpochsFraction === undefined || s.minEpochs === 0, {
  message: 'set either minEpochs or minEpochsFraction, not both',
  path: ['minEpochsFraction'],
});
export type EarlyStoppingSection = z.output<typeof EarlyStoppingSection>;

export const TrainSection = z.strictObject({
  epochs: z.int().min(1).default(20).describe('maximum training epochs'),
  optimizer: OptimizerSection.prefault({}).describe('optimizer settings'),
  schedule: z.enum(['constant', 'cosine', 'step']).default('constant').describe('learning-rate schedule over epochs'),
  stepSize: z.int().positive().default(10).describe('step schedule: epochs between decays'),
  gamma: z.number().gt(0).max(1).default(0.1).describe('step schedule: decay factor'),
  milestones: z.array(z.int().positive()).optional().describe('step schedule: multiply by gamma at each of these epochs instead of every stepSize epochs (torch MultiStepLR; DTFD-MIL: [100])'),
  minLr: z.number().min(0).default(0).describe('cosine schedule: learning rate reached at the last epoch (eta_min; MHIM-MIL v2: 1e-7)'),
  gradClip: z.number().positive().optional().describe('clip the global gradient norm to this value'),
  accumulate: z.int().min(1).default(1).describe('optimizer steps whose gradients are averaged before one update (gradient accumulation)'),
  bagsPerStep: z.int().min(1).default(1).describe('bags forwarded in one step: the step loss is the mean of their per-bag losses plus batch-level terms spanning them (SupCon; HMIL: 64)'),
  balancedSampling: z.boolean().default(false).describe('sample bags with replacement, weights N/N_class (CLAM, HDMIL)'),
  earlyStopping: EarlyStoppingSection.prefault({}).describe('model selection and early stopping rule'),
});
export type TrainSection = z.output<typeof TrainSection>;

export const SplitSection = z.strictObject({
  mode: z.enum(['holdout', 'kfold', 'monte-carlo', 'official-test']).default('holdout').describe('how train/val/test partitions are drawn'),
  folds: z.int().min(1).default(1).describe('number of folds (k)'),
  repeats: z.int().min(1).default(1).describe('repeats of the whole split with seeds derived from split.seed (repeat 0 is the unrepeated split); runs repeats × folds folds, indexed repeat · folds + fold'),
  valFraction: z.number().min(0).lt(1).default(0.15).describe('validation fraction: of each non-test part (kfold, official-test) or of all cases (holdout, monte-carlo, as CLAM)'),
  testFraction: z.number().min(0).lt(1).default(0.2).describe('test fraction of all cases (holdout, monte-carlo)'),
  file: z.string().optional().describe('read splits from CLAM-style splits_{k}.csv files in this folder instead of drawing them'),
  testColumn: z.string().min(1).default('split').describe('official-test: slide-table column that marks the fixed test set'),
  testValue: z.string().default('test').describe('official-test: value of testColumn that puts a slide in the test set'),
  seed: z.int().min(0).optional().describe('seed of the split draw; defaults to the experiment seed (fix it to keep splits while varying model seeds)'),
});
export type SplitSection = z.output<typeof SplitSection>;

export const EvalSection = z.strictObject({
  metrics: z.array(z.string()).default(['auc', 'accuracy']).describe('metric plugins reported per fold'),
  bootstrap: z.int().min(0).default(1000).describe('bootstrap resamples of the test slides for per-fold 95% CIs (seeded; 0 = off)'),
  instanceMetric: z.string().min(1).nullable().default('auc').describe('binary metric plugin scoring the attention against instance ground truth (when the data has it); null = off'),
});
export type EvalSection = z.output<typeof EvalSection>;

/** A stage name: used in folder names, metric prefixes and MLflow run names. */
const StageName = z.string().regex(/^[a-z][a-z0-9_-]*$/, 'a stage name is lowercase letters, digits, "-" and "_", starting with a letter');

export const StageSection = z.strictObject({
  name: StageName.describe('stage name (fold-<k>/stage-<name>/, metrics <name>_<metric> of earlier stages)'),
  trains: z.array(z.string().min(1)).optional().describe('model parts the optimizer updates: aggregator, classifier, prescreener or a strategy module; default aggregator + classifier; everything else is frozen'),
  modes: z.record(z.string(), z.enum(['train', 'eval'])).default({}).describe('per part train|eval while training (dropout, BatchNorm); default: trained parts train, frozen parts eval'),
  strategy: PluginRef.prefault({ name: 'standard' }).describe('training strategy plugin: standard, gate-distillation, ...'),
  losses: z.record(z.string(), LossRef).optional().describe('loss slots of this stage (replace model.losses); they also score validation and test'),
  train: z.record(z.string(), z.unknown()).default({}).describe('train: settings of this stage, merged over the top-level train: (optimizer, epochs, earlyStopping ...)'),
  from: z.union([
    StageName,
    z.strictObject({ stage: StageName, parts: z.array(z.string().min(1)).optional().describe('parts to load (default: all)') }),
  ]).optional().describe('earlier stage whose selected checkpoint (same fold) this stage starts from; default: the model as the previous stage left it'),
  views: z.array(z.string().min(1)).default([]).describe('extra bag views the stage reads, beyond what its plugins declare'),
  stream: z.string().min(1).optional().describe('label of the stage\'s random streams (default: its name); lets a renamed stage keep its draws'),
});
export type StageSection = z.output<typeof StageSection>;

/** One stage named `main` with the top-level train: and model.losses: a run as milkit ran before stages. */
export const DEFAULT_STAGES: ReadonlyArray<z.input<typeof StageSection>> = [{ name: 'main' }];
