// The experiment's shape: sections owned by their modules, plugin slots checked by name here and by
// the plugin's own schema in registry.resolve.
import { z } from 'zod';
import { DataSection } from '../data/schema.js';
import { EvalSection, SplitSection, TrainSection } from '../engine/schema.js';
import { RuntimeSection } from '../runtime/schema.js';
import { TrackingSection } from '../tracking/schema.js';
import { LossRef, PluginRef } from './plugin-ref.js';

export const ModelSection = z.strictObject({
  aggregator: PluginRef.describe('aggregator plugin: mean-pool, abmil, clam-sb, dmin, ...'),
  classifier: PluginRef.prefault({ name: 'linear' }).describe('classifier plugin: linear, mlp, cka'),
  prescreener: PluginRef.prefault({ name: 'none' }).describe('pre-screener plugin: none, lipn'),
  losses: z.record(z.string(), LossRef).prefault({ ce: { name: 'cross-entropy' } }).describe('named loss slots, each {name, weight, ...options}'),
});
export type ModelSection = z.output<typeof ModelSection>;

export const ExperimentSchema = z.strictObject({
  // The name becomes a folder under outputs/: a path in it (`../../x`) would write outside, so it must be a plain name.
  name: z.string().min(1).max(200)
    .refine((name) => !/[/\\\0]/.test(name) && name !== '.' && name !== '..', { message: 'must be a plain name (no "/", "\\" or "..": it names a folder under outputs/); to write elsewhere set output.dir' })
    .default('experiment').describe('experiment name (MLflow experiment, output folder)'),
  seed: z.int().min(0).default(0).describe('root seed of every random draw'),
  plugins: z.array(z.string()).default([]).describe('user plugin files or packages to load'),
  data: DataSection,
  model: ModelSection,
  train: TrainSection.prefault({}),
  prescreenerTrain: TrainSection.prefault({
    epochs: 200,
    optimizer: { name: 'adam', lr: 1e-4, weightDecay: 1e-5 },
    balancedSampling: true,
    earlyStopping: { monitor: 'val/loss', mode: 'min', patience: 5, minEpochs: 0, strict: true },
  }).describe('training of a trainable pre-screener (stage 2, e.g. LIPN), run per fold after the model; HDMIL defaults'),
  split: SplitSection.prefault({}),
  eval: EvalSection.prefault({}),
  tracking: TrackingSection.prefault({}),
  runtime: RuntimeSection.prefault({}),
  output: z.strictObject({
    dir: z.string().optional().describe('where run outputs go (resolved config, splits, predictions, checkpoints); default outputs/<name>'),
  }).prefault({}),
});
export type Experiment = z.output<typeof ExperimentSchema>;
export type ExperimentInput = z.input<typeof ExperimentSchema>;
