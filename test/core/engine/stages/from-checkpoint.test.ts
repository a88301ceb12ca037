// A stage that starts `from` an earlier stage (MHIM's teacher checkpoint) stops with one clear error, before any
// tensor is assigned, when that stage's selected checkpoint is missing (ConfigError, exit 2) or was written by
// another model: another width, or another architecture (DataError, exit 4). Each names the stage, the fold, the
// expected path and what to do.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveCheckpoint } from '../../../../src/core/engine/checkpoint.js';
import type { MilModel } from '../../../../src/core/engine/model.js';
import { loadFromStage, stageDir } from '../../../../src/core/engine/stages.js';
import { ConfigError, DataError, type MilkitError } from '../../../../src/core/errors.js';
import { buildModel } from '../../../helpers/zoo.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const ABMIL = { name: 'abmil', projectDim: 8, attnDim: 4, gated: false, attnActivation: 'relu', attnBias: false };
const model = (aggregator: { readonly name: string } & Record<string, unknown>, seed = 0): Promise<MilModel> =>
  buildModel({ inputDim: 6, numClasses: 2, aggregator, classifier: { name: 'linear' }, losses: { ce: { name: 'cross-entropy', weight: 1 } }, seed });

/** Writes `source`'s weights as stage `baseline`'s selected checkpoint of a fresh fold folder; returns the fold folder. */
async function foldWithBaseline(source: MilModel | undefined): Promise<string> {
  const foldDir = path.join(await mkdtemp(path.join(tmpdir(), 'milkit-from-')), 'fold-1');
  dirs.push(path.dirname(foldDir));
  await mkdir(stageDir(foldDir, 'baseline'), { recursive: true });
  if (source) {
    const tensors = Object.fromEntries(source.namedTensors().map(([name, entry]) => [`model/${name}`, entry.variable as tf.Tensor]));
    await saveCheckpoint(path.join(stageDir(foldDir, 'baseline'), 'selected.ckpt'), tensors, { epoch: 3, configHash: 'h', fold: 1, stage: 'baseline' });
  }
  return foldDir;
}

const values = (m: MilModel): string => m.namedTensors().map(([, entry]) => Array.from(entry.variable.dataSync()).join()).join('|');

async function failure(target: MilModel, foldDir: string): Promise<MilkitError> {
  const before = values(target);
  const error = await loadFromStage(target, foldDir, { stage: 'mhim', from: 'baseline', fold: 1 }).then(() => undefined, (e: unknown) => e as MilkitError);
  expect(error, 'an error').toBeDefined();
  expect(values(target), 'no tensor assigned before the error').toBe(before);
  const text = `${error?.message} ${error?.hint}`;
  expect(text).toContain('stage "mhim" of fold 1');
  expect(text).toContain('stage "baseline"');
  expect(text).toContain(path.join(foldDir, 'stage-baseline', 'selected.ckpt'));
  expect(error?.hint).toMatch(/run fold 1 again without --resume/i);
  return error as MilkitError;
}

describe('loading the `from` stage\'s checkpoint (the MHIM teacher checkpoint)', () => {
  it('loads a matching checkpoint', async () => {
    const baseline = await model(ABMIL, 1);
    const target = await model(ABMIL, 2);
    await loadFromStage(target, await foldWithBaseline(baseline), { stage: 'mhim', from: 'baseline', fold: 1 });
    expect(values(target)).toBe(values(baseline));
    baseline.dispose();
    target.dispose();
  });

  it('a missing checkpoint is a ConfigError (exit 2) naming the stage, fold, path and fix', async () => {
    const target = await model(ABMIL);
    const error = await failure(target, await foldWithBaseline(undefined));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.code).toBe('missing-stage-checkpoint');
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain('does not exist');
    target.dispose();
  });

  it('a checkpoint of another width is a DataError (exit 4) naming the tensor and both shapes', async () => {
    const wide = await model({ ...ABMIL, projectDim: 16 });
    const target = await model(ABMIL);
    const error = await failure(target, await foldWithBaseline(wide));
    expect(error).toBeInstanceOf(DataError);
    expect(error.code).toBe('mismatched-stage-checkpoint');
    expect(error.exitCode).toBe(4);
    expect(error.message).toContain('tensor "aggregator.feature_extractor_part2.0.weight" has shape [6, 16], the model expects [6, 8]');
    wide.dispose();
    target.dispose();
  });

  it('a checkpoint of another architecture is a DataError (exit 4) naming the missing tensors', async () => {
    const other = await model({ name: 'dsmil', projectDim: 8, queryDim: 4 });
    const target = await model(ABMIL);
    const error = await failure(target, await foldWithBaseline(other));
    expect(error).toBeInstanceOf(DataError);
    expect(error.code).toBe('mismatched-stage-checkpoint');
    expect(error.message).toMatch(/written by another model: tensor "aggregator\.[^"]+" is missing/);
    other.dispose();
    target.dispose();
  });
});
