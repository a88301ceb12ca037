// strategy/mhim initialisation from the `from` stage's checkpoint (docs/methods/mhim-mil.md#momentum-teacher): the
// teacher takes every tensor of the checkpoint; the v1 student keeps exactly its projection layer (studentInit
// projection) and restarts every other tensor from the fold's initial weights, the v2 student restarts all of them
// (none), `checkpoint` keeps all; without initial weights (no `from`) nothing is undone.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/logger.js';
import { Rng } from '../../../src/core/runtime/random.js';
import type { MilModel } from '../../../src/core/engine/model.js';
import type { Module, Strategy } from '../../../src/registry/index.js';
import mhimPlugin, { MhimOptions } from '../../../plugins/strategies/mhim.js';
import { buildModel } from '../../helpers/zoo.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const INPUT_DIM = 6;

const STUDENTS = {
  abmil: {
    aggregator: { name: 'abmil', projectDim: 8, attnDim: 4, gated: false, attnActivation: 'relu', attnBias: false, dropout: 0.25 },
    projection: ['aggregator.feature_extractor_part2.0.bias', 'aggregator.feature_extractor_part2.0.weight'],
  },
  transmil: {
    aggregator: { name: 'transmil', embedDim: 8, heads: 2, landmarks: 2, residualKernel: 3, nystromAlignment: 'fixed', ppegPadding: 'inside', projectDropout: 0.25 },
    projection: ['aggregator._fc1.0.bias', 'aggregator._fc1.0.weight'],
  },
  dsmil: {
    aggregator: { name: 'dsmil', projectDim: 8, queryDim: 4, nonlinearQuery: true, passingV: true, projectDropout: 0.25 },
    projection: ['aggregator.patch_to_emb.0.bias', 'aggregator.patch_to_emb.0.weight'],
  },
} as const;

/** Host copies of the model's aggregator and classifier tensors by name. */
function snapshot(model: MilModel): Map<string, number[]> {
  return new Map(model.namedTensors().filter(([name]) => /^(aggregator|classifier)\./.test(name)).map(([name, entry]) => [name, Array.from(entry.variable.dataSync())]));
}

interface Setup {
  readonly model: MilModel;
  readonly initial: Map<string, number[]>;
  readonly checkpoint: Map<string, number[]>;
  readonly strategy: Strategy & { modules: Record<string, Module> };
}

/** A fresh model (its initial weights kept as the engine keeps them), then a "checkpoint" loaded over all of it, then the strategy's init. */
async function setup(student: keyof typeof STUDENTS, options: Record<string, unknown>, withInitial = true): Promise<Setup> {
  const model = await buildModel({ inputDim: INPUT_DIM, numClasses: 2, aggregator: STUDENTS[student].aggregator, classifier: { name: 'linear' }, losses: { ce: { name: 'cross-entropy', weight: 1 } }, seed: 3 });
  const initialTensors = new Map(model.namedTensors().map(([name, entry]) => [name, tf.clone(entry.variable)] as const));
  const initial = snapshot(model);
  const draws = new Rng('checkpoint');
  for (const [, entry] of model.namedTensors()) {
    if (entry.variable.dtype !== 'float32') continue;
    entry.variable.assign(tf.tensor(draws.uniformArray(entry.variable.size, 2, 3), entry.variable.shape)); // far from any initial value
  }
  const checkpoint = snapshot(model);
  const create = mhimPlugin.create as (options: unknown, ctx: unknown) => Strategy & { modules: Record<string, Module> };
  const strategy = create(MhimOptions.parse(options), {
    model, numClasses: 2, rng: new Rng(0), logger: silentLogger, inputDim: INPUT_DIM, ...(withInitial ? { initialTensors } : {}),
  });
  strategy.init?.(model);
  tf.dispose([...initialTensors.values()]);
  return { model, initial, checkpoint, strategy };
}

function release({ model, strategy }: Setup): void {
  strategy.dispose?.();
  for (const module of Object.values(strategy.modules)) module.dispose();
  model.dispose();
}

/** Names whose student tensor now equals the checkpoint's (the others must equal the initial weights). */
function keptFromCheckpoint(s: Setup): string[] {
  const now = snapshot(s.model);
  const kept: string[] = [];
  for (const [name, values] of now) {
    if (values.join() === s.checkpoint.get(name)?.join()) kept.push(name);
    else expect(values, `${name}: initial weights`).toEqual(s.initial.get(name));
  }
  return kept.sort();
}

function expectTeacherIsCheckpoint(s: Setup): void {
  const teacher = s.strategy.modules['teacher'] as Module;
  const names = teacher.namedTensors().map(([name]) => name).sort();
  expect(names).toEqual([...s.checkpoint.keys()].sort());
  for (const [name, entry] of teacher.namedTensors()) expect(Array.from(entry.variable.dataSync()), `teacher ${name}`).toEqual(s.checkpoint.get(name));
}

describe.each(Object.keys(STUDENTS) as Array<keyof typeof STUDENTS>)('strategy/mhim student and teacher initialisation: %s', (student) => {
  it('v1 (default studentInit projection): the teacher is the checkpoint; the student keeps exactly its projection, the rest is the initial weights', async () => {
    const s = await setup(student, { version: 'v1' });
    expectTeacherIsCheckpoint(s);
    expect(keptFromCheckpoint(s)).toEqual([...STUDENTS[student].projection]);
    release(s);
  });

  it('v2 (default studentInit none): the teacher is the checkpoint; the whole student is the initial weights', async () => {
    const s = await setup(student, { version: 'v2' });
    expectTeacherIsCheckpoint(s);
    expect(keptFromCheckpoint(s)).toEqual([]);
    release(s);
  });
});

describe('strategy/mhim studentInit options', () => {
  it('checkpoint keeps the whole checkpoint in the student; projection works for v2 too', async () => {
    const all = await setup('abmil', { version: 'v1', studentInit: 'checkpoint' });
    expect(keptFromCheckpoint(all)).toEqual([...all.checkpoint.keys()].sort());
    release(all);
    const v2 = await setup('abmil', { version: 'v2', studentInit: 'projection' });
    expect(keptFromCheckpoint(v2)).toEqual([...STUDENTS.abmil.projection]);
    release(v2);
  });

  it('without initial weights (the stage has no `from`) the student stays as it is and the teacher copies it', async () => {
    const s = await setup('transmil', { version: 'v1' }, false);
    expectTeacherIsCheckpoint(s);
    expect(keptFromCheckpoint(s)).toEqual([...s.checkpoint.keys()].sort());
    release(s);
  });
});
