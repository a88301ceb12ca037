// The shape of a plugin slot in an experiment: `{ name, ...options }`. The experiment schema only checks
// the name is there; the plugin's own schema validates the options (registry.resolve).
import { z } from 'zod';

export const PluginRef = z.looseObject({ name: z.string().min(1).describe('registered plugin name') });
export type PluginRef = z.output<typeof PluginRef>;

/** A loss slot: a plugin ref plus the weight the engine multiplies its terms by. */
export const LossRef = z.looseObject({
  name: z.string().min(1).describe('registered loss plugin name'),
  weight: z.number().min(0).default(1).describe('weight of this loss in the total'),
});
export type LossRef = z.output<typeof LossRef>;
