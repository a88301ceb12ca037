// The experiment's shape: sections owned by their modules, plugin slots checked by name here and by
// the plugin's own schema in registry.resolve.
import { z } from 'zod';
import { DataSection } from '../data/schema.js';
import { DEFAULT_STAGES, EvalSection, SplitSection, StageSection, TrainSection } from '../engine/schema.js';
import { RuntimeSection } from '../runtime/schema.js';
import { TrackingSection } from '../tracking/schema.js';
import { LossRef, PluginRef } from './plugin-ref.js';

/** The message of an old config's `prescreenerTrain:` key, showing the stages form that replaced it. */
const PRESCREENER_TRAIN_MOVED = [
  'prescreenerTrain was replaced by stages: (docs/stages.md). Train the pre-screener as a second stage, e.g.',
  'stages:',
  '  - { name: dmin }',
  '  - name: lipn',
  '    from: dmin',
  '    trains: [prescreener]',
  '    modes: { aggregator: train }',
  '    strategy: { name: gate-distillation }',
  '    losses: { ce: { name: cross-entropy } }',
  '    train: { epochs: 200, optimizer: { name: adam, lr: 0.0001, weightDecay: 0.00001 }, earlyStopping: { patience: 5, minEpochs: 0 } }',
  '(experiments/hdmil.yaml has the full form).',
].join('\n');

export const ModelSection = z.strictObject({
  aggregator: PluginRef.describe('aggregator plugin: mean-pool, abmil, clam-sb, dmin, ...'),
  classifier: PluginRef.prefault({ name: 'linear' }).describe('classifier plugin: linear, mlp, cka'),
  prescreener: PluginRef.prefault({ name: 'none' }).describe('pre-screener plugin: none, lipn'),
  encoder: PluginRef.prefault({ name: 'none' }).describe('trainable instance encoder run before the aggregator on raw instances: none, lenet-mnist'),
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
  stages: z.array(StageSection).min(1).default(() => DEFAULT_STAGES.map((stage) => StageSection.parse(stage))).describe('the stages every fold trains in order (default: one stage "main" = train: with model.losses); see docs/stages.md'),
  prescreenerTrain: z.never({ error: PRESCREENER_TRAIN_MOVED }).optional().describe('removed: a trainable pre-screener is a stage now (see stages:)'),
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
