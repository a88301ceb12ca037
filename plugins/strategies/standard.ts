/**
 * Plain training (strategy/standard)
 * Paper: none — the training step every MIL method starts from
 * Implements: the composed model's forward on the bag and the stage's configured losses; no extra terms,
 *   modules or state (docs/stages.md: the default strategy of a stage)
 * Symbols: none
 * Choices: implements no hook, so the engine's defaults run
 * Checked against: every engine test that trains (test/core/engine/trainer.test.ts)
 */
import { z } from 'zod';
import { definePlugin } from 'milkit';

export default definePlugin({
  kind: 'strategy',
  name: 'standard',
  summary: 'plain training: the model forward and the stage\'s losses',
  options: z.strictObject({}),
  capabilities: { needsViews: [], requiresAggregator: [], requiresTrainedPrescreener: false },
  create: () => ({}),
});
