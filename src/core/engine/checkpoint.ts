// Fold checkpoints: model weights + optimizer state + epoch + early-stopping state + history, written
// atomically so a killed run resumes from its last complete epoch. Per-epoch random streams are derived
// from (seed, fold, epoch), so no generator state needs saving for an exact resume.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DataError } from '../errors.js';
import { writeFileDurably } from '../io/disk.js';
import { readSafetensors, toFloat32, toInt32, writeSafetensors, type TensorRecord } from '../nn/safetensors.js';

export interface CheckpointMeta {
  /** Last completed epoch (0-indexed). */
  readonly epoch: number;
  readonly configHash: string;
  readonly fold: number;
  readonly [extra: string]: unknown;
}

/** Writes `tensors` (weights under `model/`, optimizer under `optim/`) and `meta` as one safetensors file. */
export async function saveCheckpoint(file: string, tensors: Readonly<Record<string, tf.Tensor>>, meta: CheckpointMeta): Promise<void> {
  const records: Record<string, TensorRecord> = {};
  for (const [name, tensor] of Object.entries(tensors)) {
    records[name] = { dtype: tensor.dtype === 'int32' ? 'I32' : 'F32', shape: tensor.shape, data: await tensor.data() as Float32Array | Int32Array };
  }
  await writeFileDurably(file, writeSafetensors(records, { milkit: JSON.stringify(meta) }), { action: `write the checkpoint ${path.basename(file)}` });
}

export interface LoadedCheckpoint {
  readonly meta: CheckpointMeta;
  /** Host arrays by name; the caller turns them into tensors where needed. */
  readonly tensors: Readonly<Record<string, TensorRecord>>;
}

export async function loadCheckpoint(file: string): Promise<LoadedCheckpoint | undefined> {
  if (!existsSync(file)) return undefined;
  let parsed: ReturnType<typeof readSafetensors>;
  try {
    parsed = readSafetensors(new Uint8Array(await readFile(file)));
  } catch (cause) {
    throw new DataError('corrupt-checkpoint', `${file}: cannot read checkpoint.`, { hint: 'Delete it to start the fold afresh.', cause });
  }
  const metaText = parsed.metadata.milkit;
  if (metaText === undefined) throw new DataError('corrupt-checkpoint', `${file}: not a milkit checkpoint (no milkit metadata).`, { hint: 'Delete it to start the fold afresh.' });
  return { meta: JSON.parse(metaText) as CheckpointMeta, tensors: parsed.tensors };
}

/** Copies host arrays into existing variables by name (shapes must match). */
export function assignVariables(variables: ReadonlyArray<readonly [string, tf.Variable]>, tensors: Readonly<Record<string, TensorRecord>>, prefix: string, file: string): void {
  for (const [name, variable] of variables) {
    const record = tensors[prefix + name];
    if (!record) throw new DataError('corrupt-checkpoint', `${file}: tensor "${prefix + name}" missing.`, { hint: 'The checkpoint belongs to another model; delete it or use the matching config.' });
    if (record.shape.join(',') !== variable.shape.join(',')) {
      throw new DataError('corrupt-checkpoint', `${file}: tensor "${prefix + name}" has shape [${record.shape.join(', ')}], the model expects [${variable.shape.join(', ')}].`, {
        hint: 'The checkpoint belongs to another model; delete it or use the matching config.',
      });
    }
    tf.tidy(() => variable.assign(recordToTensor(record)));
  }
}

/** A host record as a tensor (float32, or int32 for integer records). */
export function recordToTensor(record: TensorRecord): tf.Tensor {
  return record.dtype.startsWith('I') || record.dtype === 'U8' || record.dtype === 'BOOL'
    ? tf.tensor(toInt32(record), [...record.shape], 'int32')
    : tf.tensor(toFloat32(record), [...record.shape], 'float32');
}
