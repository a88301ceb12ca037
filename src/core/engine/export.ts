// Reads a trained fold back out of a run folder: finds the fold's selected checkpoint (old layout
// `fold-<k>/best.ckpt`, or the stages layout `fold-<k>/stage-<name>/…`), rebuilds the model the run trained from
// its config.resolved.yaml through the registry, and loads the checkpoint's weights into it. `milkit weights
// export` then writes those weights under the original PyTorch keys (docs/zoo.md, "Checkpoint exchange").
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { ConfigError, DataError, MilkitError, PluginError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { loadExperiment, type ResolvedExperiment } from '../config/index.js';
import { exportPartTorchState, importNativeState } from '../nn/state-dict.js';
import type { TensorRecord } from '../nn/safetensors.js';
import { Rng } from '../runtime/random.js';
import type { Registry, ResolvedPlugin } from '../../registry/registry.js';
import { assignVariables, loadCheckpoint, type CheckpointMeta } from './checkpoint.js';
import { MilModel, type ModelDims } from './model.js';

/** The run's resolved config, written by every run into its output folder. */
export const RUN_CONFIG_FILE = 'config.resolved.yaml';
/** Weights in a checkpoint live under this prefix (optimizer state under `optim/`). */
const MODEL_PREFIX = 'model/';
/** Model parts `milkit weights export` rebuilds; other parts a checkpoint may hold (pre-screener, strategy modules) are left out. */
const EXPORTED_PARTS = ['aggregator.', 'classifier.'] as const;
const FOLD_DIR = /^fold-(\d+)$/;
/** Checkpoint key prefix of the pre-screener part (exported to its own file under its original keys). */
const PRESCREENER_PART = 'prescreener.';
const STAGE_DIR = /^stage-(.+)$/;

/** Where a fold's selected checkpoint is, and which run it belongs to. */
export interface FoldCheckpoint {
  readonly runDir: string;
  readonly foldDir: string;
  readonly fold: number;
  /** Stage folder name without `stage-`, in the stages layout. */
  readonly stage?: string;
  readonly file: string;
  /** Why this file was chosen when that is not the obvious one (e.g. no best.ckpt, so last.ckpt). */
  readonly note?: string;
}

async function isDirectory(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isDirectory();
  } catch {
    return false;
  }
}

async function subdirectories(dir: string, pattern: RegExp): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory() && pattern.test(e.name)).map((e) => e.name);
}

function foldIndexOf(foldDir: string): number | undefined {
  const match = FOLD_DIR.exec(path.basename(foldDir));
  return match ? Number(match[1]) : undefined;
}

/** The raw (unvalidated) run config, for the few keys needed before the registry is involved. */
function readRawConfig(runDir: string): Record<string, unknown> {
  const file = path.join(runDir, RUN_CONFIG_FILE);
  if (!existsSync(file)) return {};
  let parsed: unknown;
  try {
    parsed = YAML.parse(readFileSync(file, 'utf8')) as unknown;
  } catch {
    return {}; // unreadable here; loading the run's config reports it properly, with the file and line
  }
  return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
}

/** Stage names in the order the run's `stages:` lists them (empty for configs without stages). */
function configuredStageOrder(raw: Record<string, unknown>): string[] {
  const stages = raw.stages;
  if (!Array.isArray(stages)) return [];
  return stages.map((s: unknown) => (s !== null && typeof s === 'object' ? (s as { name?: unknown }).name : undefined)).filter((n): n is string => typeof n === 'string');
}

function selectsLast(raw: Record<string, unknown>): boolean {
  const train = raw.train as { earlyStopping?: { select?: unknown } } | undefined;
  return train?.earlyStopping?.select === 'last';
}

/**
 * The checkpoint a fold folder's training selected. Stages layout: the last stage's folder (config order, else the
 * most recently written), then its `selected.ckpt`, `best.ckpt` or `last.ckpt`. Old layout: `best.ckpt` — the
 * trainer writes it only for an epoch that qualified on validation and restores it for testing — or `last.ckpt`
 * when the run selects the last epoch or no epoch qualified.
 */
async function selectedCheckpointIn(foldDir: string, runDir: string, fold: number): Promise<FoldCheckpoint> {
  const raw = readRawConfig(runDir);
  const stageFolders = await subdirectories(foldDir, STAGE_DIR);
  let dir = foldDir;
  let stage: string | undefined;
  let stageNote: string | undefined;
  if (stageFolders.length > 0) {
    const names = stageFolders.map((f) => (STAGE_DIR.exec(f) as RegExpExecArray)[1] as string);
    const ordered = configuredStageOrder(raw).filter((n) => names.includes(n));
    if (ordered.length > 0) {
      stage = ordered[ordered.length - 1] as string;
    } else {
      const times = await Promise.all(names.map(async (n) => ({ n, t: (await stat(path.join(foldDir, `stage-${n}`))).mtimeMs })));
      stage = times.sort((a, b) => b.t - a.t)[0]?.n as string;
      if (names.length > 1) stageNote = `the run config lists no stages, so the most recently written stage folder (stage-${stage}) was taken`;
    }
    dir = path.join(foldDir, `stage-${stage}`);
  }
  const candidates = selectsLast(raw) ? ['selected.ckpt', 'last.ckpt'] : ['selected.ckpt', 'best.ckpt', 'last.ckpt'];
  const found = candidates.find((name) => existsSync(path.join(dir, name)));
  if (!found) {
    throw new DataError('no-checkpoint', `${dir}: no checkpoint of fold ${fold} (looked for ${candidates.join(', ')}).`, {
      hint: `Train the fold first (milkit run <config> --folds ${fold}); a fold that failed before its first epoch leaves none.`,
    });
  }
  const notes = [stageNote, found === 'last.ckpt' && !selectsLast(raw) ? 'no best.ckpt (no validation set, or no epoch qualified), so last.ckpt — the weights the fold tested' : undefined].filter((n): n is string => n !== undefined);
  return { runDir, foldDir, fold, ...(stage !== undefined ? { stage } : {}), file: path.join(dir, found), ...(notes.length ? { note: notes.join('; ') } : {}) };
}

/**
 * Resolves `target` (a run folder, a fold folder, a stage folder or a checkpoint file) to one fold's selected
 * checkpoint. A run folder with several trained folds needs `fold`.
 */
export async function locateFoldCheckpoint(target: string, options: { readonly cwd: string; readonly fold?: number }): Promise<FoldCheckpoint> {
  const full = path.resolve(options.cwd, target);
  if (!existsSync(full)) throw new DataError('checkpoint-not-found', `${target}: no such file or folder.`, { hint: 'Pass a run folder (outputs/<name>/<hash>), one of its fold-<k> folders, or a .ckpt file in one.' });
  const checkFold = (found: number): void => {
    if (options.fold !== undefined && options.fold !== found) {
      throw new ConfigError('bad-option', `--fold ${options.fold} contradicts ${target}, which belongs to fold ${found}.`, { hint: 'Drop --fold, or pass the run folder.' });
    }
  };
  const notInRun = (what: string): DataError =>
    new DataError('not-a-run', `${target}: ${what}, so the run it belongs to is unknown.`, { hint: `Expected <run>/fold-<k>/[stage-<name>/]<file>.ckpt with <run>/${RUN_CONFIG_FILE}.` });

  if (!(await isDirectory(full))) {
    let dir = path.dirname(full);
    const stageMatch = STAGE_DIR.exec(path.basename(dir));
    if (stageMatch) dir = path.dirname(dir);
    const fold = foldIndexOf(dir);
    if (fold === undefined) throw notInRun('the file is not inside a fold-<k> folder');
    checkFold(fold);
    return { runDir: path.dirname(dir), foldDir: dir, fold, ...(stageMatch ? { stage: stageMatch[1] as string } : {}), file: full };
  }

  if (existsSync(path.join(full, RUN_CONFIG_FILE))) {
    const folds = (await subdirectories(full, FOLD_DIR)).map((f) => foldIndexOf(f) as number).sort((a, b) => a - b);
    if (folds.length === 0) throw new DataError('no-checkpoint', `${target}: the run has no fold-<k> folders, so no trained fold.`, { hint: 'Train it first: milkit run <config>.' });
    let fold = options.fold;
    if (fold === undefined) {
      if (folds.length > 1) throw new ConfigError('fold-required', `${target}: the run has folds ${folds.join(', ')}; say which to export.`, { hint: `Pass --fold <k>, e.g. --fold ${folds[0]}.` });
      fold = folds[0] as number;
    }
    if (!folds.includes(fold)) throw new DataError('no-checkpoint', `${target}: no fold-${fold} folder (the run has folds ${folds.join(', ')}).`, { hint: `Pass one of them to --fold, or train fold ${fold} first.` });
    return selectedCheckpointIn(path.join(full, `fold-${fold}`), full, fold);
  }

  const stageMatch = STAGE_DIR.exec(path.basename(full));
  const foldDir = stageMatch ? path.dirname(full) : full;
  const fold = foldIndexOf(foldDir);
  if (fold === undefined) throw notInRun(`neither ${RUN_CONFIG_FILE} nor a fold-<k> folder name`);
  checkFold(fold);
  const runDir = path.dirname(foldDir);
  if (!stageMatch) return selectedCheckpointIn(foldDir, runDir, fold);
  const inStage = await selectedCheckpointIn(full, runDir, fold);
  return { ...inStage, foldDir, stage: stageMatch[1] as string };
}

/** A fold's trained model, rebuilt and loaded, with what the export records about it. */
export interface TrainedFold {
  readonly model: MilModel;
  readonly checkpoint: FoldCheckpoint;
  readonly meta: CheckpointMeta;
  readonly resolved: ResolvedExperiment;
  readonly dims: ModelDims;
  /** Checkpoint tensors of parts the export leaves out (pre-screener, strategy modules). */
  readonly leftOut: readonly string[];
}

/** Builds the aggregator + classifier slots of a run with the given dims (fresh weights, no losses). */
export function buildSlotModel(registry: Registry, slots: { readonly aggregator: ResolvedPlugin<'aggregator'>; readonly classifier: ResolvedPlugin<'classifier'> }, dims: ModelDims, logger: Logger = silentLogger): MilModel {
  return new MilModel(registry, { aggregator: slots.aggregator, classifier: slots.classifier, losses: {} }, dims, new Rng(0), logger);
}

/** Shapes of the model's tensors by milkit key. */
function shapesOf(model: MilModel): Map<string, readonly number[]> {
  return new Map(model.namedTensors().map(([key, entry]) => [key, entry.variable.shape]));
}

/**
 * A model dimension read off the checkpoint's shapes: two probe models that differ only in that dimension show
 * which axes follow it (linearly, as widths do); the checkpoint's size on those axes gives its value. All axes
 * must agree; undefined when none follows it.
 */
function probeDimension(
  build: (value: number) => MilModel, probes: readonly [number, number], tensors: Readonly<Record<string, TensorRecord>>,
): number | undefined {
  const [p1, p2] = probes;
  const first = build(p1);
  const second = build(p2);
  let a: Map<string, readonly number[]>;
  let b: Map<string, readonly number[]>;
  try {
    a = shapesOf(first);
    b = shapesOf(second);
  } finally {
    first.dispose();
    second.dispose();
  }
  const values = new Set<number>();
  for (const [key, shape1] of a) {
    const shape2 = b.get(key);
    const stored = tensors[key]?.shape;
    if (!shape2 || !stored || stored.length !== shape1.length) continue;
    shape1.forEach((s1, axis) => {
      const s2 = shape2[axis] as number;
      if (s1 === s2) return;
      const slope = (s2 - s1) / (p2 - p1);
      const value = ((stored[axis] as number) - s1) / slope + p1;
      if (Number.isInteger(value) && value > 0) values.add(value);
    });
  }
  return values.size === 1 ? [...values][0] : undefined;
}

/** Number of classes of the run: rows of CLAM's per-class split descriptor the run wrote, when present. */
async function classCountFromSplits(runDir: string, fold: number): Promise<number | undefined> {
  const file = path.join(runDir, 'splits', `splits_${fold}_descriptor.csv`);
  if (!existsSync(file)) return undefined;
  const rows = (await readFile(file, 'utf8')).split(/\r?\n/).filter((line) => line.trim() !== '');
  return rows.length > 1 ? rows.length - 1 : undefined;
}

/** The package version, for the export's provenance. */
export function milkitVersion(): string {
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../package.json');
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Re-raises a config/plugin error as "the registry cannot rebuild this run's model", keeping its exit code. */
function unbuildable(configFile: string, error: unknown): never {
  if (!(error instanceof MilkitError)) throw error;
  // The cause is printed on its own line below this one, with its location and hint.
  const message = `${configFile}: cannot rebuild the run's model from its config (${error.code}).`;
  const hint = 'The run may have used plugins this milkit does not have (a plugins: entry or project plugin missing here), or options an older/newer version named differently.';
  if (error instanceof PluginError) throw new PluginError('unbuildable-config', message, { hint, cause: error });
  throw new ConfigError('unbuildable-config', message, { hint, cause: error });
}

/**
 * Rebuilds the run's model (registry + plugin slots from config.resolved.yaml; input width and class count from
 * the checkpoint's shapes and the run's splits) and loads the fold checkpoint's weights into it, all or nothing.
 */
export async function loadTrainedFold(
  checkpoint: FoldCheckpoint, options: { readonly registry: Registry; readonly cwd: string; readonly env: Readonly<Record<string, string | undefined>>; readonly logger?: Logger },
): Promise<TrainedFold> {
  const { registry } = options;
  const configFile = path.join(checkpoint.runDir, RUN_CONFIG_FILE);
  if (!existsSync(configFile)) {
    throw new DataError('no-run-config', `${configFile}: missing, so the model the checkpoint belongs to is unknown.`, { hint: 'Every run writes it into its folder; point at the run folder the checkpoint came from.' });
  }
  let resolved: ResolvedExperiment;
  try {
    resolved = await loadExperiment(configFile, [], { registry, cwd: options.cwd, env: options.env });
  } catch (error) {
    unbuildable(configFile, error);
  }
  const loaded = await loadCheckpoint(checkpoint.file);
  if (!loaded) throw new DataError('no-checkpoint', `${checkpoint.file}: no such checkpoint.`, { hint: 'Train the fold first.' });

  const weights: Record<string, TensorRecord> = {};
  const leftOut: string[] = [];
  for (const [name, record] of Object.entries(loaded.tensors)) {
    if (!name.startsWith(MODEL_PREFIX)) continue;
    const key = name.slice(MODEL_PREFIX.length);
    if (EXPORTED_PARTS.some((part) => key.startsWith(part))) weights[key] = record;
    else leftOut.push(key);
  }
  const slots = resolved.slots;
  const build = (dims: ModelDims): MilModel => {
    try {
      return buildSlotModel(registry, slots, dims, options.logger);
    } catch (error) {
      return unbuildable(configFile, error);
    }
  };
  const numClasses = (await classCountFromSplits(checkpoint.runDir, checkpoint.fold)) ?? probeDimension((c) => build({ inputDim: 5, numClasses: c }), [3, 4], weights);
  if (numClasses === undefined) {
    throw new DataError('unknown-dims', `${checkpoint.file}: cannot tell the number of classes (no splits/ in the run folder and no tensor shape follows it).`, { hint: 'Export from the complete run folder.' });
  }
  const inputDim = probeDimension((d) => build({ inputDim: d, numClasses }), [5, 7], weights);
  if (inputDim === undefined) {
    throw new DataError('unknown-dims', `${checkpoint.file}: cannot tell the input feature width from the checkpoint's shapes.`, { hint: 'The checkpoint may not belong to this run\'s config; check the run folder.' });
  }
  const dims = { inputDim, numClasses };
  const model = build(dims);
  try {
    importNativeState(model, weights, checkpoint.file);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { model, checkpoint, meta: loaded.meta, resolved, dims, leftOut };
}

/** Registered aggregators that declare original key names (built with defaults to ask them). */
async function aggregatorsWithTorchNaming(registry: Registry, classifier: ResolvedPlugin<'classifier'>): Promise<string[]> {
  const out: string[] = [];
  for (const name of registry.names('aggregator')) {
    try {
      const aggregator = await registry.resolve('aggregator', { name }, { key: 'model.aggregator' });
      const model = buildSlotModel(registry, { aggregator, classifier }, { inputDim: 4, numClasses: 2 });
      if (model.aggregator.torchNaming) out.push(name);
      model.dispose();
    } catch {
      // An aggregator that cannot be built with its defaults is simply not listed.
    }
  }
  return out;
}

/**
 * Refuses a model whose aggregator has no original implementation to take key names from (no `torchNaming`),
 * naming the aggregators that have one.
 */
export async function assertTorchNaming(trained: TrainedFold, registry: Registry): Promise<void> {
  if (trained.model.aggregator.torchNaming) return;
  const name = trained.resolved.slots.aggregator.name;
  const supported = await aggregatorsWithTorchNaming(registry, trained.resolved.slots.classifier);
  throw new PluginError('no-torch-naming', `aggregator "${name}" has no original PyTorch implementation whose key names an export could use (it declares no torchNaming).`, {
    hint: `Export works for ${supported.length ? supported.join(', ') : 'aggregators that declare torchNaming'}; \`milkit weights inspect ${path.basename(trained.checkpoint.file)}\` still lists the checkpoint's tensors under milkit's names.`,
  });
}

/** Provenance written into an exported state_dict's safetensors metadata (string values). */
export function exportMetadata(trained: TrainedFold): Record<string, string> {
  const { resolved, meta, checkpoint, dims } = trained;
  const withOptions = (r: ResolvedPlugin): Record<string, unknown> => ({ name: r.name, ...r.options });
  return {
    format: 'pt',
    'milkit.version': milkitVersion(),
    'milkit.configHash': meta.configHash,
    'milkit.fold': String(checkpoint.fold),
    // The checkpoint's epoch is 0-indexed (the last completed epoch).
    'milkit.epoch': String(meta.epoch),
    ...(checkpoint.stage !== undefined ? { 'milkit.stage': checkpoint.stage } : {}),
    'milkit.checkpoint': path.relative(checkpoint.runDir, checkpoint.file).split(path.sep).join('/'),
    'milkit.plugins': JSON.stringify({ aggregator: resolved.slots.aggregator.name, classifier: resolved.slots.classifier.name }),
    'milkit.aggregator': JSON.stringify(withOptions(resolved.slots.aggregator)),
    'milkit.classifier': JSON.stringify(withOptions(resolved.slots.classifier)),
    'milkit.inputDim': String(dims.inputDim),
    'milkit.numClasses': String(dims.numClasses),
  };
}

/** A trained pre-screener's weights under the original key names, when the fold's checkpoint holds one. */
export interface PrescreenerExport {
  readonly name: string;
  readonly tensors: Record<string, TensorRecord>;
}

/**
 * The fold's trained pre-screener (HDMIL's LIPN, trained in its own stage) in torch layout under its original
 * keys: rebuilt from the run's prescreener slot and loaded from the same checkpoint, all tensors or an error.
 * Undefined when the run has no pre-screener or the checkpoint holds none of its tensors (a run stopped before
 * the stage that trains it).
 */
export async function trainedPrescreenerExport(trained: TrainedFold, registry: Registry): Promise<PrescreenerExport | undefined> {
  const slot = trained.resolved.slots.prescreener;
  if (!slot || !trained.leftOut.some((key) => key.startsWith(PRESCREENER_PART))) return undefined;
  const loaded = await loadCheckpoint(trained.checkpoint.file);
  if (!loaded) return undefined;
  const model = new MilModel(registry, { aggregator: trained.resolved.slots.aggregator, classifier: trained.resolved.slots.classifier, prescreener: slot, losses: {} }, trained.dims, new Rng(0), silentLogger);
  try {
    const prescreener = model.prescreener;
    if (!prescreener) return undefined;
    const weights: Record<string, TensorRecord> = {};
    for (const [name, record] of Object.entries(loaded.tensors)) {
      if (name.startsWith(`${MODEL_PREFIX}${PRESCREENER_PART}`)) weights[name.slice(MODEL_PREFIX.length + PRESCREENER_PART.length)] = record;
    }
    // The part's own tensor names are the original ones; the native import checks every key and shape.
    const expected = prescreener.namedTensors();
    const missing = expected.filter(([key]) => weights[key] === undefined).map(([key]) => key);
    const unexpected = Object.keys(weights).filter((key) => !expected.some(([name]) => name === key));
    if (missing.length + unexpected.length > 0) {
      throw new DataError('state-dict-mismatch', `${trained.checkpoint.file}: the pre-screener's tensors do not fit "${slot.name}" (missing ${missing.length}: ${missing.slice(0, 3).join(', ')}; unexpected ${unexpected.length}: ${unexpected.slice(0, 3).join(', ')}).`, {
        hint: 'The checkpoint belongs to another pre-screener configuration; export from the run folder it was trained in.',
      });
    }
    assignVariables(expected.map(([key, entry]) => [key, entry.variable] as const), weights, '', trained.checkpoint.file);
    return { name: slot.name, tensors: await exportPartTorchState(prescreener) };
  } finally {
    model.dispose();
  }
}
