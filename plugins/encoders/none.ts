/**
 * No instance encoder (encoder/none)
 * Paper: none (the default: bags hold pre-extracted features, as every WSI method in milkit assumes)
 * Implements: the aggregator reads the dataset's features unchanged
 * Symbols: none
 * Choices: create returns null, so the composed model has no encoder part and no `encoder.` weights
 * Checked against: the encoder contract suite (test/contracts/encoder.contract.test.ts) and its golden case
 */
import { z } from 'zod';
import { definePlugin } from 'milkit';

export default definePlugin({
  kind: 'encoder',
  name: 'none',
  summary: 'no instance encoder: the aggregator reads the dataset\'s features',
  options: z.strictObject({}),
  capabilities: { inputView: 'images', trainable: false },
  create: () => null,
});
