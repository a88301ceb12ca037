// Stage outputs on disk: a module's weights under its original PyTorch keys (so a trained LIPN/DMIN file is also
// a checkpoint the authors' code loads), with string metadata, written atomically and never deleted: a file
// that belongs to another configuration is moved aside, not overwritten.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DataError } from '../../errors.js';
import type { Module } from '../../nn/module.js';
import { readSafetensors, writeSafetensors, type TensorRecord } from '../../nn/safetensors.js';
import { exportTorchState, importTorchState, type ModelParts } from '../../nn/state-dict.js';
import type { Aggregator } from '../../../registry/contracts/model.js';
import { assignVariables, loadCheckpoint } from '../checkpoint.js';

/**
 * The state-dict mapper works on model parts; it reads only `namedTensors()` and `torchNaming` of the
 * aggregator slot, so any module (a pre-screener) can stand in that slot with no classifier.
 */
function asParts(module: Module): ModelParts {
  return { aggregator: module as unknown as Aggregator };
}

/** The module's tensors (parameters and buffers) under torch keys, in torch layout. */
export function moduleTorchState(module: Module): Promise<Record<string, TensorRecord>> {
  return exportTorchState(asParts(module));
}

/** Loads torch-keyed tensors into the module; every missing, unexpected or mis-shaped key is reported at once. */
export function loadModuleTorchState(module: Module, tensors: Readonly<Record<string, TensorRecord>>, source: string): void {
  importTorchState(asParts(module), tensors, source);
}

/** Writes the module's torch-keyed weights and `metadata` to `file` (temp file + rename). */
export async function saveStageWeights(file: string, module: Module, metadata: Readonly<Record<string, string>>): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, writeSafetensors(await moduleTorchState(module), metadata));
  await rename(tmp, file);
}

export interface StoredStage {
  readonly tensors: Readonly<Record<string, TensorRecord>>;
  readonly metadata: Readonly<Record<string, string>>;
}

/** Reads a stage file, or undefined when it does not exist. */
export async function readStageWeights(file: string): Promise<StoredStage | undefined> {
  if (!existsSync(file)) return undefined;
  try {
    return readSafetensors(new Uint8Array(await readFile(file)));
  } catch (cause) {
    throw new DataError('corrupt-stage-output', `${file}: cannot read the stage output.`, { hint: 'Move the file away to retrain the stage.', cause });
  }
}

/** Moves `file` to the first free `<file>.superseded-<i>` and returns that path. */
export async function moveAside(file: string): Promise<string> {
  let i = 1;
  while (existsSync(`${file}.superseded-${i}`)) i += 1;
  const target = `${file}.superseded-${i}`;
  await rename(file, target);
  return target;
}

/**
 * Loads the stage-1 model of a fold from the engine's checkpoint (`<fold>/best.ckpt`, milkit keys under
 * `model/`), e.g. when stage 1 finished in an earlier run and only the pre-screener stage remains.
 */
export async function loadStageOneCheckpoint(model: Module, file: string): Promise<void> {
  const checkpoint = await loadCheckpoint(file);
  if (!checkpoint) {
    throw new DataError('missing-stage-checkpoint', `${file}: no stage-1 checkpoint of this fold.`, { hint: 'Train stage 1 of the fold first (the pre-screener stage learns from its gates).' });
  }
  assignVariables(model.namedTensors().map(([name, entry]) => [name, entry.variable] as const), checkpoint.tensors, 'model/', file);
}
