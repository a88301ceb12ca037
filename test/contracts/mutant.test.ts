// The reason the golden cases exist: a max-pool whose forward silently became log-sum-exp pooling passes every
// generic aggregator check (shapes, invariance, gradients, determinism, memory) but must fail its golden case.
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import maxPool from '../../plugins/aggregators/max-pool.js';
import { ProjectedPool } from '../../src/core/nn/pooling.js';
import { definePlugin } from '../../src/registry/index.js';
import { aggregatorContract, checkAggregatorGolden, readGolden, type AggregatorGoldenCase, type AggregatorGoldenExpected } from '../../src/testing/contracts/index.js';
import { builtinRegistry, goldenDirOf } from './builtins.js';

const registry = builtinRegistry();
const golden = readGolden<AggregatorGoldenCase, AggregatorGoldenExpected>(join(goldenDirOf('aggregator'), 'max-pool.golden.json'), 'aggregator');

/** max-pool with its reduction swapped for log-sum-exp (a smooth max): same options, capabilities and keys. */
const logSumExpMutant = definePlugin({
  ...maxPool,
  create: (options, ctx) => new ProjectedPool(options, ctx, (h) => tf.logSumExp(h, 0, true) as tf.Tensor2D),
});

// Without its golden case the mutant passes the whole generic aggregator contract: that is why goldens exist.
aggregatorContract([logSumExpMutant], { registry, optionsFor: () => ({ projectDim: 8 }) });

describe('golden cases catch a mutated aggregator', () => {
  it('passes for the real max-pool', async () => {
    expect((await checkAggregatorGolden(maxPool, golden, registry)).mismatches).toEqual([]);
  });

  it('reports the embedding and logits of the log-sum-exp mutant as mismatches', async () => {
    const report = await checkAggregatorGolden(logSumExpMutant, golden, registry);
    expect(report.mismatches.length).toBeGreaterThan(0);
    expect(report.mismatches.join('\n')).toMatch(/^logits: element \d+ is/m);
    expect(report.mismatches.join('\n')).toMatch(/^embedding: element \d+ is/m);
  });

  it('reports a shape mismatch instead of comparing misaligned numbers', async () => {
    const truncated = { ...golden, expected: { ...golden.expected, embedding: golden.expected.embedding?.map((row) => row.slice(1)) as number[][] } };
    const report = await checkAggregatorGolden(maxPool, truncated, registry);
    expect(report.mismatches).toEqual([expect.stringMatching(/^embedding: shape \[1, 6\], expected \[1, 5\]/)]);
  });
});
