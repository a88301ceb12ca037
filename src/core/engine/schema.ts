// train:, split: and eval: sections of an experiment.
import { z } from 'zod';

export const OptimizerSection = z.strictObject({
  name: z.enum(['adam', 'adamw', 'sgd', 'radam']).default('adam').describe('optimizer'),
  lr: z.number().positive().default(2e-4).describe('learning rate'),
  weightDecay: z.number().min(0).default(1e-5).describe('L2 added to the gradient (adam, sgd) or decoupled decay (adamw, radam)'),
  betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]).describe('Adam-family moment decays'),
  eps: z.number().positive().default(1e-8).describe('Adam-family epsilon'),
  momentum: z.number().min(0).lt(1).default(0.9).describe('SGD momentum'),
  lookahead: z.strictObject({
    k: z.int().positive().default(5).describe('fast steps per slow update'),
    alpha: z.number().gt(0).max(1).default(0.5).describe('slow-weight interpolation'),
  }).optional().describe('wrap the optimizer in Lookahead'),
});

export const EarlyStoppingSection = z.strictObject({
  monitor: z.string().default('val/loss').describe('logged metric to watch (val/loss, val/auc, ...)'),
  mode: z.enum(['min', 'max']).default('min').describe('whether smaller or larger is better'),
  patience: z.int().min(1).default(20).describe('epochs without improvement before stopping'),
  minEpochs: z.int().min(0).default(0).describe('epochs before the patience counter starts'),
  strict: z.boolean().default(true).describe('improvement must be strictly better (ties count as no improvement)'),
  enabled: z.boolean().default(true).describe('stop early at all; when false the best epoch is still selected'),
});

export const TrainSection = z.strictObject({
  epochs: z.int().min(1).default(20).describe('maximum training epochs'),
  optimizer: OptimizerSection.prefault({}).describe('optimizer settings'),
  schedule: z.enum(['constant', 'cosine', 'step']).default('constant').describe('learning-rate schedule over epochs'),
  stepSize: z.int().positive().default(10).describe('step schedule: epochs between decays'),
  gamma: z.number().gt(0).max(1).default(0.1).describe('step schedule: decay factor'),
  gradClip: z.number().positive().optional().describe('clip the global gradient norm to this value'),
  accumulate: z.int().min(1).default(1).describe('bags per optimizer step (gradient accumulation)'),
  balancedSampling: z.boolean().default(false).describe('sample bags with replacement, weights N/N_class (CLAM, HDMIL)'),
  earlyStopping: EarlyStoppingSection.prefault({}).describe('model selection and early stopping rule'),
});
export type TrainSection = z.output<typeof TrainSection>;

export const SplitSection = z.strictObject({
  mode: z.enum(['holdout', 'kfold', 'monte-carlo', 'official-test']).default('holdout').describe('how train/val/test partitions are drawn'),
  folds: z.int().min(1).default(1).describe('number of folds (k)'),
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
  bootstrap: z.int().min(0).default(0).describe('bootstrap resamples for 95% CIs (0 = off)'),
});
export type EvalSection = z.output<typeof EvalSection>;
