// State-dict exchange between a milkit model (aggregator + classifier slot) and the original PyTorch
// implementations: torch key names (the aggregator's TorchNaming), torch layouts (each tensor's `torch.perm`),
// int64 for integer buffers. Imports are checked in full before any weight changes, and every missing,
// unexpected or mis-shaped key is named in one error.
import * as tf from '@tensorflow/tfjs';
import { DataError, PluginError } from '../errors.js';
import type { Aggregator, Classifier } from '../../registry/contracts/model.js';
import type { NamedTensorEntry } from './module.js';
import { isFloatDtype, toFloat32, toInt32, type TensorRecord } from './safetensors.js';

/** The parts of a model that carry weights; `MilModel` has this shape. */
export interface ModelParts {
  readonly aggregator: Aggregator;
  /** The `model.classifier` slot, absent when the aggregator owns its heads. */
  readonly classifier?: Classifier | undefined;
}

/** One tensor with its milkit name (slot-prefixed, as `MilModel.namedTensors()`) and its torch name/layout. */
export interface TorchTensorEntry {
  readonly milkitKey: string;
  readonly torchKey: string;
  readonly entry: NamedTensorEntry;
  /** Shape in torch layout. */
  readonly torchShape: number[];
}

function permute(shape: readonly number[], perm: readonly number[] | undefined): number[] {
  return perm ? perm.map((axis) => shape[axis] as number) : [...shape];
}

function inverse(perm: readonly number[]): number[] {
  return perm.map((_, axis) => perm.indexOf(axis));
}

function compileRenames(aggregator: Aggregator): Array<[RegExp, string]> {
  return (aggregator.torchNaming?.renames ?? []).map(([pattern, replacement]) => [new RegExp(pattern), replacement]);
}

/** Every tensor of the model with its torch key, in registration order; torch keys must be unique. */
export function torchEntries(parts: ModelParts): TorchTensorEntry[] {
  const renames = compileRenames(parts.aggregator);
  const rename = (key: string): string => renames.reduce((k, [pattern, replacement]) => k.replace(pattern, replacement), key);
  const out: TorchTensorEntry[] = [];
  for (const [key, entry] of parts.aggregator.namedTensors()) {
    out.push({ milkitKey: `aggregator.${key}`, torchKey: rename(key), entry, torchShape: permute(entry.variable.shape, entry.torch.perm) });
  }
  if (parts.classifier) {
    const prefix = parts.aggregator.torchNaming?.classifierPrefix;
    for (const [key, entry] of parts.classifier.namedTensors()) {
      const torchKey = rename(prefix ? `${prefix}.${key}` : `classifier.${key}`);
      out.push({ milkitKey: `classifier.${key}`, torchKey, entry, torchShape: permute(entry.variable.shape, entry.torch.perm) });
    }
  }
  const seen = new Map<string, string>();
  for (const { torchKey, milkitKey } of out) {
    const other = seen.get(torchKey);
    if (other) throw new PluginError('torch-key-collision', `torch key "${torchKey}" is produced by both "${other}" and "${milkitKey}".`, { hint: 'Fix the aggregator\'s torchNaming (classifierPrefix / renames) so every tensor gets its own key.' });
    seen.set(torchKey, milkitKey);
  }
  return out;
}

/** Host copy of a variable in `layout`: float32 as F32; int32 buffers as I64 (PyTorch's integer default) or I32. */
async function record(variable: tf.Variable, perm: readonly number[] | undefined, intDtype: 'I64' | 'I32'): Promise<TensorRecord> {
  const laidOut = perm ? tf.transpose(variable, [...perm]) : variable;
  try {
    const shape = [...laidOut.shape];
    if (variable.dtype === 'float32') return { dtype: 'F32', shape, data: (await laidOut.data()) as Float32Array };
    const ints = (await laidOut.data()) as Int32Array;
    return intDtype === 'I64' ? { dtype: 'I64', shape, data: BigInt64Array.from(ints, (v) => BigInt(v)) } : { dtype: 'I32', shape, data: Int32Array.from(ints) };
  } finally {
    if (laidOut !== variable) laidOut.dispose();
  }
}

/** The model's weights under torch keys, in torch layout. */
export async function exportTorchState(parts: ModelParts): Promise<Record<string, TensorRecord>> {
  const out: Record<string, TensorRecord> = {};
  for (const { torchKey, entry } of torchEntries(parts)) out[torchKey] = await record(entry.variable, entry.torch.perm, 'I64');
  return out;
}

/** The model's weights under milkit keys (`aggregator.…`, `classifier.…`), in milkit layout. */
export async function exportNativeState(parts: ModelParts): Promise<Record<string, TensorRecord>> {
  const out: Record<string, TensorRecord> = {};
  for (const { milkitKey, entry } of torchEntries(parts)) out[milkitKey] = await record(entry.variable, undefined, 'I32');
  return out;
}

interface PlannedAssignment {
  readonly variable: tf.Variable;
  readonly values: Float32Array | Int32Array;
  readonly shape: number[];
  readonly perm: readonly number[] | undefined;
}

function describeShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Checks `tensors` against the expected (key → shape) table and plans the assignment; collects every problem
 * before reporting, so one run of `milkit weights import` lists them all.
 */
function plan(
  expected: ReadonlyArray<{ key: string; shape: number[]; variable: tf.Variable; perm: readonly number[] | undefined; optional?: boolean }>,
  tensors: Readonly<Record<string, TensorRecord>>,
  source: string,
  layout: string,
): PlannedAssignment[] {
  const missing: string[] = [];
  const misShaped: string[] = [];
  const assignments: PlannedAssignment[] = [];
  const expectedKeys = new Set<string>();
  for (const { key, shape, variable, perm, optional } of expected) {
    expectedKeys.add(key);
    const found = tensors[key];
    if (!found) {
      if (!optional) missing.push(`${key} ${describeShape(shape)}`);
      continue;
    }
    const wantFloat = variable.dtype === 'float32';
    if (found.shape.length !== shape.length || found.shape.some((d, i) => d !== shape[i]) || isFloatDtype(found.dtype) !== wantFloat) {
      misShaped.push(`${key}: got ${found.dtype} ${describeShape(found.shape)}, expected ${wantFloat ? 'float' : 'integer'} ${describeShape(shape)}`);
      continue;
    }
    assignments.push({ variable, values: wantFloat ? toFloat32(found) : toInt32(found), shape, perm });
  }
  const unexpected = Object.keys(tensors).filter((key) => !expectedKeys.has(key));
  if (missing.length + misShaped.length + unexpected.length > 0) {
    const parts: string[] = [];
    if (missing.length) parts.push(`missing ${missing.length}: ${missing.join('; ')}`);
    if (unexpected.length) parts.push(`unexpected ${unexpected.length}: ${unexpected.map((k) => `${k} ${describeShape((tensors[k] as TensorRecord).shape)}`).join('; ')}`);
    if (misShaped.length) parts.push(`mis-shaped ${misShaped.length}: ${misShaped.join('; ')}`);
    throw new DataError('state-dict-mismatch', `${source}: the ${layout} weights do not fit the model — ${parts.join(' | ')}.`, {
      hint: 'Check that the model options (sizes, gated, classes, input dim) match the checkpoint; `milkit weights inspect <file>` lists what the file holds.',
    });
  }
  return assignments;
}

function apply(assignments: readonly PlannedAssignment[]): void {
  for (const { variable, values, shape, perm } of assignments) {
    tf.tidy(() => {
      const stored = tf.tensor(values, shape, variable.dtype);
      variable.assign(perm ? tf.transpose(stored, inverse(perm)) : stored);
    });
  }
}

/** Loads torch-keyed, torch-layout tensors (e.g. a converted PyTorch checkpoint) into the model; all or nothing. */
export function importTorchState(parts: ModelParts, tensors: Readonly<Record<string, TensorRecord>>, source: string): void {
  const optional = new Set(parts.aggregator.torchNaming?.optionalOnImport ?? []);
  const expected = torchEntries(parts).map(({ torchKey, torchShape, entry }) => ({ key: torchKey, shape: torchShape, variable: entry.variable, perm: entry.torch.perm, optional: optional.has(torchKey) }));
  apply(plan(expected, tensors, source, 'PyTorch'));
}

/** Loads milkit-keyed, milkit-layout tensors (`exportNativeState`) into the model; all or nothing. */
export function importNativeState(parts: ModelParts, tensors: Readonly<Record<string, TensorRecord>>, source: string): void {
  const expected = torchEntries(parts).map(({ milkitKey, entry }) => ({ key: milkitKey, shape: [...entry.variable.shape], variable: entry.variable, perm: undefined }));
  apply(plan(expected, tensors, source, 'milkit'));
}

/**
 * One model part's weights under its own tensor names in torch layout, for parts whose names are the original
 * implementation's by construction (HDMIL's LIPN: `extractor.…` of ImageProcessor, docs/methods/state-dict-keys.md#lipn).
 */
export async function exportPartTorchState(part: { namedTensors(): Array<readonly [string, NamedTensorEntry]> }): Promise<Record<string, TensorRecord>> {
  const out: Record<string, TensorRecord> = {};
  for (const [key, entry] of part.namedTensors()) out[key] = await record(entry.variable, entry.torch.perm, 'I64');
  return out;
}
