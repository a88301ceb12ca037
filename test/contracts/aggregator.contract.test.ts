// Runs the aggregator contract (src/testing/contracts/aggregator.ts) over every built-in aggregator, golden cases
// required. Small models keep the run short; the golden cases pin each plugin's numerics at its golden options.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll } from 'vitest';
import { silentLogger } from '../../src/core/logger.js';
import { initRuntime, RuntimeSection } from '../../src/core/runtime/index.js';
import { aggregatorContract } from '../../src/testing/contracts/index.js';
import { builtinDefinitions, builtinRegistry, goldenDirOf } from './builtins.js';

const registry = builtinRegistry();
const definitions = await builtinDefinitions('aggregator', registry);

/** Small widths so every generic check runs in well under a second per plugin. */
const SMALL: Readonly<Record<string, Record<string, unknown>>> = {
  abmil: { projectDim: 16, attnDim: 8 },
  'clam-sb': { hiddenDim: 16, attnDim: 8, kSample: 4 },
  'clam-mb': { hiddenDim: 16, attnDim: 8, kSample: 4 },
  dmin: { hiddenDim: 16, attnDim: 8, kSample: 4 },
  dsmil: { queryDim: 8 },
  'dtfd-mil': { embedDim: 16, attnDim: 8 },
  transmil: { embedDim: 16, heads: 2, landmarks: 4 },
  'max-pool': { projectDim: 8 },
  'mean-pool': { projectDim: 8 },
  hmil: { bottleneckDim: 8, featureDim: 16, reducedDim: 8, coarseAttnDim: 8, fineAttnDim: 4 },
};

beforeAll(async () => {
  await initRuntime(RuntimeSection.parse({ backend: 'wasm', blasThreads: 1 }), { logger: silentLogger });
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

aggregatorContract(definitions, { registry, goldenDir: goldenDirOf('aggregator'), requireGolden: true, optionsFor: (name) => SMALL[name] ?? {} });

// mean-pool and max-pool again at the instance level (classify each instance, then pool): the capabilities follow
// the option (they own their classifier there); their golden cases pin the embedding level above.
const instanceLevel = definitions.filter((d) => d.name === 'mean-pool' || d.name === 'max-pool');
aggregatorContract(instanceLevel, { registry, optionsFor: (name) => ({ ...SMALL[name], level: 'instance' }) });
