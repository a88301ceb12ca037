// The config-hash policy (docs/config.md, "The config hash"): defaults leave the hash, so a release that adds
// a defaulted option keeps every recorded hash; a real change of value changes it.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { hashConfig, hashInput, MILKIT_HASH_VERSION } from '../../../src/core/config/hash.js';
import { loadExperiment, type LoadOptions, type ResolvedSlots } from '../../../src/core/config/load.js';
import { ExperimentSchema } from '../../../src/core/config/schema.js';
import { TrainSection } from '../../../src/core/engine/schema.js';
import { definePlugin, type AnyPluginDefinition } from '../../../src/registry/index.js';
import { tmpTree } from './tmp-tree.js';
import { testRegistry, toyBags } from './test-registry.js';

const X = [
  'defaults:',
  '  - model/aggregator: mean-pool',
  '  - _self_',
  'name: x',
  'data:',
  '  dataset: { name: toy-bags, slides: 12 }',
  'model:',
  '  aggregator: { projectDim: 4 }',
  '  losses: { ce: { name: cross-entropy } }',
  'train:',
  '  epochs: 3',
  '',
].join('\n');

/**
 * Recorded with MILKIT_HASH_VERSION 2 for X above. If this assertion fails, existing run folders, sweep job ids
 * and `--resume` checkpoints no longer match: either restore the old hashing or bump MILKIT_HASH_VERSION on purpose
 * (and record the new value here, saying so in the change).
 */
const RECORDED_X_HASH = '4bf661fb585dd1a45389a66369b765a906d0394a47d7b49cef184d07a7cd03b1';

async function load(overrides: string[] = [], options: Partial<LoadOptions> = {}) {
  const cwd = await tmpTree({ 'experiments/x.yaml': X });
  return loadExperiment('experiments/x.yaml', overrides, { registry: testRegistry(), cwd, env: {}, project: {}, ...options });
}

/** The test registry with toy-bags as a later release would ship it: one more option, whose default keeps the old behaviour. */
function registryWithNewDatasetOption() {
  const newer = definePlugin({
    ...toyBags,
    options: toyBags.options.extend({ shuffleWithin: z.boolean().default(false).describe('new in a later release') }),
  });
  return testRegistry(newer as unknown as AnyPluginDefinition);
}

/** The options schema of each slot's plugin, as loadExperiment hands them to the hash. */
function pluginOptionsOf(slots: ResolvedSlots): (slotKey: string) => z.ZodType | undefined {
  const bySlot: Record<string, { definition: { options: z.ZodType } }> = {
    'model.aggregator': slots.aggregator,
    'model.classifier': slots.classifier,
    'model.prescreener': slots.prescreener,
    'data.dataset': slots.dataset,
    ...Object.fromEntries(Object.entries(slots.losses).map(([slot, loss]) => [`model.losses.${slot}`, loss])),
  };
  return (slotKey) => bySlot[slotKey]?.definition.options;
}

describe('config hash policy', () => {
  it('keeps a recorded hash (the policy and the schema defaults of today)', async () => {
    const resolved = await load();
    expect(resolved.configHash).toBe(RECORDED_X_HASH);
  });

  it('hashes only the values that differ from their defaults, with the policy version', async () => {
    const resolved = await load();
    const input = hashInput(resolved.config, { pluginOptions: pluginOptionsOf(resolved.slots) });
    expect(input).toEqual({
      name: 'x',
      data: { dataset: { name: 'toy-bags', slides: 12 } },
      model: { aggregator: { name: 'mean-pool', projectDim: 4 } },
      train: { epochs: 3 },
    });
    expect(MILKIT_HASH_VERSION).toBe(2);
  });

  it('does not change when a release adds a plugin option whose default keeps the old behaviour', async () => {
    const before = await load();
    const after = await load([], { registry: registryWithNewDatasetOption() });
    expect(after.config.data.dataset).toEqual({ name: 'toy-bags', slides: 12, featureDim: 8, shuffleWithin: false });
    expect(after.configHash).toBe(before.configHash);
    expect(after.configHash).toBe(RECORDED_X_HASH);
    // Setting the new option to a non-default value is a different experiment.
    const shuffled = await load(['data.dataset.shuffleWithin=true'], { registry: registryWithNewDatasetOption() });
    expect(shuffled.configHash).not.toBe(before.configHash);
  });

  it('does not change when a release adds a defaulted core option (a test-only schema extension)', async () => {
    const resolved = await load();
    const pluginOptions = pluginOptionsOf(resolved.slots);
    const extended = ExperimentSchema.extend({
      train: TrainSection.extend({ gradientAccumulation: z.int().positive().default(1) }).prefault({}),
    });
    const newerConfig = { ...resolved.config, train: { ...resolved.config.train, gradientAccumulation: 1 } };
    const today = hashConfig(resolved.config, { pluginOptions });
    expect(hashConfig(newerConfig, { experiment: extended, pluginOptions })).toBe(today);
    expect(hashConfig({ ...newerConfig, train: { ...newerConfig.train, gradientAccumulation: 4 } }, { experiment: extended, pluginOptions })).not.toBe(today);
  });

  it('changes with every real value change, including of plugin options, plugins and loss slots', async () => {
    const base = (await load()).configHash;
    const variants = [
      ['train.epochs=4'],
      ['seed=1'],
      ['name=y'],
      ['model.aggregator.dropout=0.25'],
      ['model.aggregator.projectDim=5'],
      ['model/aggregator=max-pool'],
      ['data.dataset.featureDim=9'],
      ['model.losses.ce.weight=0.5'],
      ['+model.losses.extra={name: cross-entropy}'],
      ['~model.losses.ce', '+model.losses.main={name: cross-entropy}'],
      ['train.optimizer.lr=0.001'],
      ['stages=[{name: main}, {name: tune, train: {epochs: 2}}]'],
      ['runtime.backend=cpu'],
    ];
    const hashes = await Promise.all(variants.map(async (overrides) => (await load(overrides)).configHash));
    for (const [i, hash] of hashes.entries()) expect(hash, variants[i]?.join(' ')).not.toBe(base);
    expect(new Set(hashes).size).toBe(hashes.length);
  });

  it('does not change when a default is spelled out, or only outputs and tracking move', async () => {
    const base = (await load()).configHash;
    for (const overrides of [['model.aggregator.dropout=0'], ['model.losses.ce.weight=1'], ['data.dataset.featureDim=8'], ['output.dir=/elsewhere', 'tracking.enabled=false'], ['++model.classifier={name: linear}']]) {
      expect((await load(overrides)).configHash, overrides.join(' ')).toBe(base);
    }
  });

  it('tells a loss record with a default entry from one without it', async () => {
    const both = await load(['+model.losses.extra={name: cross-entropy, weight: 0.5}']);
    const onlyExtra = await load(['~model.losses.ce', '+model.losses.extra={name: cross-entropy, weight: 0.5}']);
    expect(both.configHash).not.toBe(onlyExtra.configHash);
  });
});
