// Records test/fixtures/trainer/per-bag-run.json: per-bag-run.ts run against the trainer as it was before
// train.bagsPerStep existed (commit 13b86d2), so bags-per-step.test.ts checks `bagsPerStep: 1` against that training.
// The loss is today's: cross-entropy later moved to one host evaluation of the logits (softCrossEntropyWithLogits in
// src/core/nn/bce.ts), which rounds differently in the last float32 bits, and the recording checks the trainer's
// per-bag path, not the loss. To re-record (from this checkout's root):
//   git worktree add --detach /tmp/per-bag-13b86d2 13b86d2 && ln -s "$PWD/node_modules" /tmp/per-bag-13b86d2/
//   cp plugins/losses/cross-entropy.ts /tmp/per-bag-13b86d2/plugins/losses/
//   cp src/core/nn/bce.ts /tmp/per-bag-13b86d2/src/core/nn/
//   cp test/core/engine/per-bag-run.ts test/core/engine/record-per-bag-run.ts /tmp/per-bag-13b86d2/test/core/engine/
//   (cd /tmp/per-bag-13b86d2 && node --conditions=milkit-source --import tsx test/core/engine/record-per-bag-run.ts "$OLDPWD/test/fixtures/trainer/per-bag-run.json")
// The model, data and section must stay those of the first test in bags-per-step.test.ts (without bagsPerStep).
import { writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { MilModel } from '../../../src/core/engine/model.js';
import { trainFold } from '../../../src/core/engine/trainer.js';
import { TrainSection } from '../../../src/core/engine/schema.js';
import { silentLogger } from '../../../src/core/logger.js';
import { Rng } from '../../../src/core/runtime/random.js';
import { builtinRegistry } from '../../helpers/registry.js';
import { toySource } from './toy-data.js';
import { PER_BAG_SECTION, perBagRun } from './per-bag-run.js';

const out = process.argv[2];
if (out === undefined) throw new Error('usage: record-per-bag-run.ts <output json>');
const registry = builtinRegistry();
const source = toySource();
await tf.setBackend('cpu');
const run = await perBagRun(
  async () => new MilModel(registry, {
    aggregator: await registry.resolve('aggregator', { name: 'abmil', projectDim: 8, attnDim: 4, dropout: 0.25 }, { key: 'model.aggregator' }),
    classifier: await registry.resolve('classifier', 'linear', { key: 'model.classifier' }),
    losses: { ce: { ...(await registry.resolve('loss', 'cross-entropy', { key: 'model.losses.ce' })), weight: 1 } },
  }, { inputDim: source.featureDim, numClasses: 2 }, new Rng(0).fork('init'), silentLogger),
  (model, dir) => trainFold({
    model, source, train: source.slides.slice(0, 16), val: source.slides.slice(16), numClasses: 2,
    section: TrainSection.parse({ ...PER_BAG_SECTION }), metrics: [],
    rng: new Rng(3).fork('fold-0'), logger: silentLogger, checkpointDir: dir, configHash: 'h', fold: 0, resume: false,
  }),
);
writeFileSync(out, JSON.stringify(run));
