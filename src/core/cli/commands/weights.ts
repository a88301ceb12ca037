// `milkit weights inspect|import|export`: checkpoint exchange with the original PyTorch implementations.
// import: a torch state_dict saved as .safetensors (original keys and layouts) → a milkit weights file;
// export: a trained fold (run folder, fold folder or checkpoint; src/core/engine/export.ts) or a milkit weights
// file → .safetensors that `model.load_state_dict(..., strict=True)` accepts, with provenance metadata.
import { existsSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError, DataError } from '../../errors.js';
import type { MilModel } from '../../engine/model.js';
import { readSafetensors, writeSafetensors, SafetensorsFormatError, type SafetensorsFile, type TensorRecord } from '../../nn/safetensors.js';
import type { Registry, ResolvedPlugin } from '../../../registry/registry.js';
import { loadActionCode, type CliApp } from '../app.js';

/**
 * The model, checkpoint and config code the actions need, loaded on first use: it pulls in tfjs and zod,
 * which `milkit --help` must not pay (BENCHMARKS.md "coldstart"). The safetensors codec above has no imports.
 */
async function loadModelModules() {
  const [model, exporting, config, stateDict, random] = await loadActionCode('weights', () => Promise.all([
    import('../../engine/model.js'),
    import('../../engine/export.js'),
    import('../../config/index.js'),
    import('../../nn/state-dict.js'),
    import('../../runtime/random.js'),
  ]));
  return {
    MilModel: model.MilModel,
    assertTorchNaming: exporting.assertTorchNaming,
    exportMetadata: exporting.exportMetadata,
    loadTrainedFold: exporting.loadTrainedFold,
    locateFoldCheckpoint: exporting.locateFoldCheckpoint,
    trainedPrescreenerExport: exporting.trainedPrescreenerExport,
    RUN_CONFIG_FILE: exporting.RUN_CONFIG_FILE,
    loadExperiment: config.loadExperiment,
    ModelSection: config.ModelSection,
    exportNativeState: stateDict.exportNativeState,
    exportTorchState: stateDict.exportTorchState,
    importNativeState: stateDict.importNativeState,
    importTorchState: stateDict.importTorchState,
    Rng: random.Rng,
  };
}

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
  const m = await loadModelModules();
  const aggregator = await registry.resolve('aggregator', spec.aggregator, { key: 'aggregator' });
  const classifier = await registry.resolve('classifier', spec.classifier, { key: 'classifier' });
  return new m.MilModel(registry, { aggregator, classifier, losses: {} }, { inputDim: spec.inputDim, numClasses: spec.numClasses }, new m.Rng(0), { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} });
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
  const m = await loadModelModules();
  const inputDim = positiveInt(flags.inputDim, '--input-dim');
  const numClasses = positiveInt(flags.numClasses, '--num-classes');
  if (flags.experiment) {
    if (flags.aggregator) throw new ConfigError('bad-option', '--experiment and --aggregator both given.', { hint: 'Describe the model either by an experiment config or by --aggregator/--classifier.' });
    const resolved = await m.loadExperiment(flags.experiment, overrides, { registry, cwd: app.cwd, env: app.env });
    return { format: 1, inputDim, numClasses, aggregator: slotSpec(resolved.slots.aggregator), classifier: slotSpec(resolved.slots.classifier) };
  }
  if (!flags.aggregator) throw new ConfigError('bad-option', 'no model given.', { hint: 'Pass --aggregator <name> (e.g. clam-sb) with its options, or --experiment <config>.' });
  const aggregator = await registry.resolve('aggregator', { name: flags.aggregator, ...parseJsonOption(flags.aggregatorOptions, '--aggregator-options') }, { key: 'aggregator' });
  const classifier = await registry.resolve('classifier', { name: flags.classifier ?? m.ModelSection.shape.classifier.parse(undefined).name, ...parseJsonOption(flags.classifierOptions, '--classifier-options') }, { key: 'classifier' });
  return { format: 1, inputDim, numClasses, aggregator: slotSpec(aggregator), classifier: slotSpec(classifier) };
}

function specOf(file: string, metadata: Readonly<Record<string, string>>): WeightsModelSpec {
  const text = metadata[WEIGHTS_METADATA_KEY];
  if (text === undefined) {
    throw new DataError('not-milkit-weights', `${file}: no "${WEIGHTS_METADATA_KEY}" metadata, so it is not a milkit weights file.`, { hint: 'For a PyTorch state_dict use `milkit weights import`; to export a trained fold pass its run folder, fold folder or .ckpt; `milkit weights inspect` shows what the file holds.' });
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
      const m = await loadModelModules();
      const registry = app.createRegistry();
      const spec = await importSpec(app, registry, flags, overrides);
      const { tensors } = await readWeightsFile(torchFile, app.cwd);
      const model = await buildModel(registry, spec);
      try {
        m.importTorchState(model, tensors, torchFile);
        const native = await m.exportNativeState(model);
        await writeFile(path.resolve(app.cwd, flags.out), writeSafetensors(native, { [WEIGHTS_METADATA_KEY]: JSON.stringify(spec), source: path.basename(torchFile) }));
        app.io.out(`${flags.out}: ${Object.keys(native).length} tensors of ${spec.aggregator.name} + ${spec.classifier.name} imported from ${torchFile}`);
      } finally {
        model.dispose();
      }
    });

  weights
    .command('export')
    .description('write a trained fold (run folder, fold folder or .ckpt) or a milkit weights file as a PyTorch state_dict (.safetensors, original keys and layouts)')
    .argument('<source>', 'run folder (outputs/<name>/<hash>), fold-<k> folder, fold checkpoint (.ckpt), or milkit weights file (from `milkit weights import`)')
    .option('--fold <k>', 'fold to export from a run folder with several folds')
    .option('-o, --out <file>', '.safetensors file to write (default for a fold: <aggregator>.fold-<k>.torch.safetensors beside its checkpoint)')
    .action(async (source: string, flags: { out?: string; fold?: string }) => {
      const registry = app.createRegistry();
      const full = path.resolve(app.cwd, source);
      const fold = flags.fold === undefined ? undefined : nonNegativeInt(flags.fold, '--fold');
      let weightsFile: SafetensorsFile | undefined;
      if (!existsSync(full) || !statSync(full).isDirectory()) {
        weightsFile = await readWeightsFile(source, app.cwd);
        // A training checkpoint carries the trainer's `milkit` metadata; a weights file carries its model spec.
        if (weightsFile.metadata[WEIGHTS_METADATA_KEY] === undefined && weightsFile.metadata[CHECKPOINT_METADATA_KEY] !== undefined) weightsFile = undefined;
      }
      if (weightsFile === undefined) {
        await exportTrainedFold(app, registry, source, { ...(fold !== undefined ? { fold } : {}), ...(flags.out !== undefined ? { out: flags.out } : {}) });
        return;
      }
      if (fold !== undefined) throw new ConfigError('bad-option', `--fold applies to run folders and checkpoints; ${source} is a milkit weights file.`, { hint: 'Drop --fold.' });
      const { tensors, metadata } = weightsFile;
      const spec = specOf(source, metadata);
      if (flags.out === undefined) throw new ConfigError('bad-option', 'no output file given.', { hint: 'Pass -o <file>.safetensors.' });
      const model = await buildModel(registry, spec);
      const m = await loadModelModules();
      try {
        m.importNativeState(model, tensors, source);
        const torch = await m.exportTorchState(model);
        await writeFile(path.resolve(app.cwd, flags.out), writeSafetensors(torch, { format: 'pt' }));
        app.io.out(`${flags.out}: ${Object.keys(torch).length} tensors under the original ${spec.aggregator.name} keys; load with model.load_state_dict(safetensors.torch.load_file('${path.basename(flags.out)}'))`);
      } finally {
        model.dispose();
      }
    });
}

/** Checkpoint metadata key the trainer writes (src/core/engine/checkpoint.ts). */
const CHECKPOINT_METADATA_KEY = 'milkit';

function nonNegativeInt(text: string, flag: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isInteger(value)) throw new ConfigError('bad-option', `${flag}: expected a fold index (0, 1, ...), got ${JSON.stringify(text)}.`);
  return value;
}

/** The pre-screener's file beside the aggregator's: `<stem>.<prescreener>.safetensors` (stem without `.torch`). */
export function prescreenerExportFile(aggregatorFile: string, prescreener: string): string {
  const stem = aggregatorFile.replace(/\.safetensors$/i, '').replace(/\.torch$/i, '');
  return `${stem}.${prescreener}.torch.safetensors`;
}

/** `milkit weights export <run|fold|ckpt>`: the fold's selected checkpoint under the original PyTorch keys. */
async function exportTrainedFold(app: CliApp, registry: Registry, source: string, options: { readonly fold?: number; readonly out?: string }): Promise<void> {
  const m = await loadModelModules();
  const located = await m.locateFoldCheckpoint(source, { cwd: app.cwd, ...(options.fold !== undefined ? { fold: options.fold } : {}) });
  const trained = await m.loadTrainedFold(located, { registry, cwd: app.cwd, env: app.env });
  try {
    await m.assertTorchNaming(trained, registry);
    const torch = await m.exportTorchState(trained.model);
    const aggregator = trained.resolved.slots.aggregator.name;
    const out = options.out !== undefined ? path.resolve(app.cwd, options.out) : path.join(path.dirname(located.file), `${aggregator}.fold-${located.fold}.torch.safetensors`);
    await writeFile(out, writeSafetensors(torch, m.exportMetadata(trained)));
    const shown = path.relative(app.cwd, out) || out;
    const from = path.relative(app.cwd, located.file) || located.file;
    app.io.out(`${shown}: ${Object.keys(torch).length} tensors of fold ${located.fold} (${from}, epoch ${trained.meta.epoch + 1}) under the original ${aggregator} keys; load with model.load_state_dict(safetensors.torch.load_file('${path.basename(out)}'), strict=True)`);
    if (located.note) app.logger.info(`${from}: ${located.note}.`);
    // A trained pre-screener (HDMIL's LIPN) is a separate network in the original code, so it gets its own file.
    const prescreener = await m.trainedPrescreenerExport(trained, registry);
    let leftOut = trained.leftOut;
    if (prescreener) {
      const file = prescreenerExportFile(out, prescreener.name);
      await writeFile(file, writeSafetensors(prescreener.tensors, { ...m.exportMetadata(trained), 'milkit.part': 'prescreener', 'milkit.prescreener': prescreener.name }));
      const shownFile = path.relative(app.cwd, file) || file;
      app.io.out(`${shownFile}: ${Object.keys(prescreener.tensors).length} tensors of the ${prescreener.name} pre-screener under its original keys; load with model.load_state_dict(safetensors.torch.load_file('${path.basename(file)}'), strict=True)`);
      leftOut = leftOut.filter((key) => !key.startsWith('prescreener.'));
    }
    if (leftOut.length > 0) app.logger.warn(`left out ${leftOut.length} checkpoint tensors of parts the original model does not have: ${leftOut.slice(0, 5).join(', ')}${leftOut.length > 5 ? ', ...' : ''}.`);
    if (trained.meta.configHash !== trained.resolved.configHash) {
      app.logger.warn(`${from} was trained under config hash ${trained.meta.configHash.slice(0, 8)}, but the run's ${m.RUN_CONFIG_FILE} hashes to ${trained.resolved.configHash.slice(0, 8)}; the metadata records the checkpoint's.`);
    }
  } finally {
    trained.model.dispose();
  }
}
