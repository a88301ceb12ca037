/**
 * No pre-screening (prescreener/none)
 * Paper: the HDMIL† setting of Dong et al., "Fast and Accurate Gigapixel Pathological Image Classification
 *   with Hierarchical Distillation Multi-Instance Learning", CVPR 2025 (DMIN on all instances)
 * Implements: keep every instance (docs/methods/hdmil.md#inference-modes without LIPN)
 * Symbols: none
 * Choices: create returns null, so the composed model has no pre-screener part and never screens
 * Checked against: engine tests (all instances reach the aggregator)
 */
import { z } from 'zod';
import { definePlugin } from 'milkit';

export default definePlugin({
  kind: 'prescreener',
  name: 'none',
  summary: 'keep every instance (no pre-screening stage)',
  options: z.strictObject({}),
  capabilities: { trainable: false, needsViews: [] },
  create: () => null,
});
