// data: section of an experiment.
import { z } from 'zod';
import { PluginRef } from '../config/plugin-ref.js';

export const DataSection = z.strictObject({
  dataset: PluginRef.describe('dataset plugin: synthetic-camelyon, features-h5, ...'),
  labels: z.record(z.string(), z.int().min(0)).optional().describe('label name → class index; inferred (sorted) when absent'),
  hierarchy: z.record(z.string(), z.string().min(1)).optional().describe('fine label name → coarse label name (two-level labels, HMIL); overrides a coarse_label column; coarse classes numbered in order of first appearance'),
  cacheBytes: z.int().positive().default(2 * 1024 ** 3).describe('byte budget of the in-memory bag cache (LRU)'),
  maxInstances: z.int().positive().optional().describe('train-time cap: a random subset of this many instances per bag per epoch'),
  onBadSlide: z.enum(['error', 'skip']).default('error').describe('what validation does with a bad slide: stop, or skip it and log why'),
});
export type DataSection = z.output<typeof DataSection>;
