// A registry with a fixed set of plugins, so pinned messages ("Registered: ...") do not change as plugins
// are added: the seed built-ins plus a toy dataset and two toy metrics defined here.
import { z } from 'zod';
import { builtinManifest } from '../../../plugins/index.js';
import { definePlugin, Registry, type AnyPluginDefinition, type PluginManifest } from '../../../src/registry/index.js';

const FIXED_IDS = ['aggregator/max-pool', 'aggregator/mean-pool', 'classifier/linear', 'loss/cross-entropy', 'prescreener/none', 'encoder/none'];

export const toyBags = definePlugin({
  kind: 'dataset',
  name: 'toy-bags',
  summary: 'a toy dataset for config tests',
  options: z.strictObject({
    slides: z.int().min(2).default(40).describe('number of slides'),
    featureDim: z.int().min(1).default(8).describe('feature width'),
  }),
  capabilities: {},
  create: () => Promise.reject(new Error('not used in config tests')),
});

const toyMetric = (name: string): AnyPluginDefinition => definePlugin({
  kind: 'metric',
  name,
  summary: `toy ${name}`,
  options: z.strictObject({}),
  capabilities: { higherIsBetter: true },
  create: () => ({ compute: () => ({ value: 0 }) }),
}) as unknown as AnyPluginDefinition;

/** `dataset` replaces toy-bags (a later release of it, in the config-hash tests). */
export function testRegistry(dataset: AnyPluginDefinition = toyBags as unknown as AnyPluginDefinition): Registry {
  const all = builtinManifest();
  const manifest: PluginManifest = Object.fromEntries(FIXED_IDS.map((id) => {
    const loader = all[id];
    if (!loader) throw new Error(`built-in plugin ${id} is missing`);
    return [id, loader];
  }));
  const registry = new Registry(manifest);
  registry.register(dataset, 'test');
  registry.register(toyMetric('auc'), 'test');
  registry.register(toyMetric('accuracy'), 'test');
  return registry;
}
