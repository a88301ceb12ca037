// `milkit weights inspect|import|export`: checkpoint exchange with the original PyTorch implementations.
// import: a torch state_dict saved as .safetensors (original keys and layouts) → a milkit weights file;
// export: a milkit weights file → .safetensors that `model.load_state_dict(..., strict=True)` accepts.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError, DataError } from '../../errors.js';
import { MilModel } from '../../engine/model.js';
import { loadExperiment, ModelSection } from '../../config/index.js';
import { readSafetensors, writeSafetensors, SafetensorsFormatError, type SafetensorsFile, type TensorRecord } from '../../nn/safetensors.js';
import { exportNativeState, exportTorchState, importNativeState, importTorchState } from '../../nn/state-dict.js';
import { Rng } from '../../runtime/random.js';
import type { Registry, ResolvedPlugin } from '../../../registry/registry.js';
import type { CliApp } from '../app.js';

/** Metadata key of a milkit weights file: the model it belongs to. */
export const WEIGHTS_METADATA_KEY = 'milkit.weights';

/** What a milkit weights file records about its model (enough to rebuild it). */
export interface WeightsModelSpec {
  readonly format: 1;
  readonly inputDim: number;
  readonly numClasses: number;
  readonly aggregator: Readonly<Record<string, unknown>> & { readonly name: string };
  readonly classifier: Readonly<Record<string, unknown>> & { readonly name: string };
}

async function readWeightsFile(file: string, cwd: string): Promise<SafetensorsFile> {
  const full = path.resolve(cwd, file);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(full));
  } catch (cause) {
    throw new DataError('weights-not-found', `${file}: cannot read the file.`, { hint: 'Check the path.', cause });
  }
  try {
    return readSafetensors(bytes);
  } catch (cause) {
    if (cause instanceof SafetensorsFormatError) {
      throw new DataError('unreadable-weights', `${file}: not a valid safetensors file (${cause.message}).`, {
        hint: 'Convert a PyTorch checkpoint with: python -c "import torch, safetensors.torch as s; s.save_file(torch.load(\'ckpt.pt\', map_location=\'cpu\'), \'ckpt.safetensors\')"',
      });
    }
    throw cause;
  }
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function count(record: TensorRecord): number {
  return record.shape.reduce((a, b) => a * b, 1);
}

function parseJsonOption(text: string | undefined, flag: string): Record<string, unknown> {
  if (text === undefined) return {};
  try {
    const value = JSON.parse(text) as unknown;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch (cause) {
    throw new ConfigError('bad-option', `${flag}: expected a JSON object such as '{"gated": false}', got ${JSON.stringify(text)}.`, { cause });
  }
}

function positiveInt(text: string | undefined, flag: string): number {
  const value = Number(text);
  if (text === undefined || !Number.isInteger(value) || value <= 0) {
    throw new ConfigError('bad-option', `${flag}: expected a positive integer, got ${text === undefined ? 'nothing' : JSON.stringify(text)}.`, { hint: `Pass ${flag} <n> (the feature width D, or the number of classes C, the checkpoint was trained with).` });
  }
  return value;
}

/** The model (aggregator + classifier slot) a spec describes, with fresh weights. */
async function buildModel(registry: Registry, spec: WeightsModelSpec): Promise<MilModel> {
  const aggregator = await registry.resolve('aggregator', spec.aggregator, { key: 'aggregator' });
  const classifier = await registry.resolve('classifier', spec.classifier, { key: 'classifier' });
  return new MilModel(registry, { aggregator, classifier, losses: {} }, { inputDim: spec.inputDim, numClasses: spec.numClasses }, new Rng(0), { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} });
}

function slotSpec(resolved: ResolvedPlugin): Readonly<Record<string, unknown>> & { readonly name: string } {
  return { name: resolved.name, ...resolved.options };
}

interface ImportFlags {
  readonly out: string;
  readonly experiment?: string;
  readonly aggregator?: string;
  readonly aggregatorOptions?: string;
  readonly classifier?: string;
  readonly classifierOptions?: string;
  readonly inputDim?: string;
  readonly numClasses?: string;
}

async function importSpec(app: CliApp, registry: Registry, flags: ImportFlags, overrides: readonly string[]): Promise<WeightsModelSpec> {
  const inputDim = positiveInt(flags.inputDim, '--input-dim');
  const numClasses = positiveInt(flags.numClasses, '--num-classes');
  if (flags.experiment) {
    if (flags.aggregator) throw new ConfigError('bad-option', '--experiment and --aggregator both given.', { hint: 'Describe the model either by an experiment config or by --aggregator/--classifier.' });
    const resolved = await loadExperiment(flags.experiment, overrides, { registry, cwd: app.cwd, env: app.env });
    return { format: 1, inputDim, numClasses, aggregator: slotSpec(resolved.slots.aggregator), classifier: slotSpec(resolved.slots.classifier) };
  }
  if (!flags.aggregator) throw new ConfigError('bad-option', 'no model given.', { hint: 'Pass --aggregator <name> (e.g. clam-sb) with its options, or --experiment <config>.' });
  const aggregator = await registry.resolve('aggregator', { name: flags.aggregator, ...parseJsonOption(flags.aggregatorOptions, '--aggregator-options') }, { key: 'aggregator' });
  const classifier = await registry.resolve('classifier', { name: flags.classifier ?? ModelSection.shape.classifier.parse(undefined).name, ...parseJsonOption(flags.classifierOptions, '--classifier-options') }, { key: 'classifier' });
  return { format: 1, inputDim, numClasses, aggregator: slotSpec(aggregator), classifier: slotSpec(classifier) };
}

function specOf(file: string, metadata: Readonly<Record<string, string>>): WeightsModelSpec {
  const text = metadata[WEIGHTS_METADATA_KEY];
  if (text === undefined) {
    throw new DataError('not-milkit-weights', `${file}: no "${WEIGHTS_METADATA_KEY}" metadata, so it is not a milkit weights file.`, { hint: 'For a PyTorch state_dict use `milkit weights import`; `milkit weights inspect` shows what the file holds.' });
  }
  return JSON.parse(text) as WeightsModelSpec;
}

export function register(program: Command, app: CliApp): void {
  const weights = program.command('weights').description('exchange checkpoints with the original PyTorch implementations (.safetensors, original keys and layouts)');

  weights
    .command('inspect')
    .description('list the tensors of a .safetensors file (keys, dtypes, shapes) and the model of a milkit weights file')
    .argument('<file>', '.safetensors file')
    .option('--json', 'machine-readable output')
    .action(async (file: string, opts: { json?: boolean }) => {
      const { tensors, metadata } = await readWeightsFile(file, app.cwd);
      const rows = Object.entries(tensors).map(([key, r]) => ({ key, dtype: r.dtype, shape: [...r.shape], count: count(r) }));
      const total = rows.reduce((sum, r) => sum + r.count, 0);
      if (opts.json) {
        app.io.out(JSON.stringify({ file, metadata, tensors: rows, total }, null, 2));
        return;
      }
      const spec = metadata[WEIGHTS_METADATA_KEY];
      app.io.out(`${file}: ${rows.length} tensors, ${total.toLocaleString('en-US')} values${spec ? ' (milkit weights)' : ''}`);
      if (spec) {
        const model = JSON.parse(spec) as WeightsModelSpec;
        app.io.out(`  model: aggregator ${JSON.stringify(model.aggregator)}, classifier ${JSON.stringify(model.classifier)}, D = ${model.inputDim}, C = ${model.numClasses}`);
      }
      for (const [k, v] of Object.entries(metadata)) if (k !== WEIGHTS_METADATA_KEY) app.io.out(`  metadata ${k}: ${v}`);
      const width = Math.max(...rows.map((r) => r.key.length), 3);
      for (const r of rows) app.io.out(`  ${r.key.padEnd(width)}  ${r.dtype.padEnd(4)}  ${shapeText(r.shape)}`);
    });

  weights
    .command('import')
    .description('load a PyTorch state_dict (.safetensors, original keys) into a milkit model and save it as milkit weights')
    .argument('<torch-file>', 'state_dict saved with safetensors (torch keys and layouts)')
    .argument('[overrides...]', 'overrides for --experiment')
    .requiredOption('-o, --out <file>', 'milkit weights file to write')
    .option('--experiment <config>', 'take the aggregator and classifier slots from this experiment config')
    .option('--aggregator <name>', 'aggregator plugin, e.g. clam-sb, transmil')
    .option('--aggregator-options <json>', 'aggregator options as JSON, e.g. \'{"size": "big"}\'')
    .option('--classifier <name>', 'classifier plugin (default linear)')
    .option('--classifier-options <json>', 'classifier options as JSON')
    .option('--input-dim <D>', 'feature width the checkpoint was trained on')
    .option('--num-classes <C>', 'number of classes')
    .action(async (torchFile: string, overrides: string[], flags: ImportFlags) => {
      const registry = app.createRegistry();
      const spec = await importSpec(app, registry, flags, overrides);
      const { tensors } = await readWeightsFile(torchFile, app.cwd);
      const model = await buildModel(registry, spec);
      try {
        importTorchState(model, tensors, torchFile);
        const native = await exportNativeState(model);
        await writeFile(path.resolve(app.cwd, flags.out), writeSafetensors(native, { [WEIGHTS_METADATA_KEY]: JSON.stringify(spec), source: path.basename(torchFile) }));
        app.io.out(`${flags.out}: ${Object.keys(native).length} tensors of ${spec.aggregator.name} + ${spec.classifier.name} imported from ${torchFile}`);
      } finally {
        model.dispose();
      }
    });

  weights
    .command('export')
    .description('write milkit weights as a PyTorch state_dict (.safetensors, original keys and layouts)')
    .argument('<milkit-file>', 'milkit weights file (from `milkit weights import` or a training run)')
    .requiredOption('-o, --out <file>', '.safetensors file to write')
    .action(async (file: string, flags: { out: string }) => {
      const registry = app.createRegistry();
      const { tensors, metadata } = await readWeightsFile(file, app.cwd);
      const spec = specOf(file, metadata);
      const model = await buildModel(registry, spec);
      try {
        importNativeState(model, tensors, file);
        const torch = await exportTorchState(model);
        await writeFile(path.resolve(app.cwd, flags.out), writeSafetensors(torch, { format: 'pt' }));
        app.io.out(`${flags.out}: ${Object.keys(torch).length} tensors under the original ${spec.aggregator.name} keys; load with model.load_state_dict(safetensors.torch.load_file('${path.basename(flags.out)}'))`);
      } finally {
        model.dispose();
      }
    });
}
