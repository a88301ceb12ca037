// What a sweep is: a grid of CLI overrides (Hydra syntax), zipped key groups for paired changes, and/or a
// sweep file of named rows (an ablation table) run on one or more datasets. Expands to an ordered cell list.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../../errors.js';
import { parseOrThrow } from '../../config/zod-issues.js';
import { PluginRef } from '../../config/plugin-ref.js';
import { didYouMean } from '../../util/suggest.js';

/** A named list of overrides: one row of an ablation table, or one dataset. */
export const NamedOverrides = z.strictObject({
  name: z.string().min(1).describe('label shown in the table'),
  overrides: z.array(z.string()).default([]).describe('Hydra-style overrides applied for this entry'),
});
export type NamedOverrides = z.output<typeof NamedOverrides>;

/** The sweep file (`milkit sweep --file table3.yaml`). */
export const SweepFileSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" or "-"').optional().describe('sweep name (state folder outputs/sweeps/<name>-<hash>); default: the file name'),
  experiment: z.string().optional().describe('experiment config, relative to this file (the CLI argument wins)'),
  grid: z.array(z.string()).default([]).describe('overrides applied to every row; sweep values (a=1,2, range(), choice()) multiply the cells'),
  zip: z.array(z.array(z.string()).min(2)).default([]).describe('groups of grid keys whose values pair up instead of multiplying'),
  rows: z.array(NamedOverrides).optional().describe('named rows of the table, in print order'),
  datasets: z.array(z.union([z.string(), NamedOverrides])).optional().describe('run every row on each dataset; a bare name means the override data=<name>'),
  metrics: z.array(z.string()).optional().describe('result metrics to tabulate, in column order (default: every metric the jobs report)'),
  executor: PluginRef.prefault({ name: 'local' }).describe('executor plugin and options, e.g. {name: slurm, partition: gpu}; default local'),
});
export type SweepFile = z.output<typeof SweepFileSchema>;

/** A sweep, normalised from the CLI and an optional sweep file. */
export interface SweepDefinition {
  readonly name: string;
  /** Experiment config path (absolute, or relative to the working directory). */
  readonly experimentFile: string;
  readonly grid: readonly string[];
  readonly zip: ReadonlyArray<readonly string[]>;
  readonly rows?: readonly NamedOverrides[];
  readonly datasets?: readonly NamedOverrides[];
  readonly metrics?: readonly string[];
  /** Where the sweep file came from (for messages). */
  readonly file?: string;
}

/** One grid axis value (or a single-valued override). */
export interface ExpandedArgument {
  /** The key the argument sets (`train.optimizer.lr`, `model/aggregator`). */
  readonly key: string;
  /** One plain override per value, in sweep order: `a=1,2` → [`a=1`, `a=2`]. */
  readonly overrides: readonly string[];
}

/** Splits one override argument into its key and per-value overrides; supplied by the config module's parser. */
export type ExpandArgument = (argument: string) => ExpandedArgument;

/** One cell of the sweep: a resolved set of overrides and its labels. */
export interface SweepCell {
  readonly index: number;
  /** `row | dataset | key=value ...` — unique within the sweep. */
  readonly name: string;
  readonly row?: string;
  readonly dataset?: string;
  /** Values of the grid axes that take more than one value: override key → value as written. */
  readonly params: Readonly<Record<string, string>>;
  /** Overrides in application order: row, dataset, grid (later wins). */
  readonly overrides: readonly string[];
}

interface Axis {
  readonly keys: readonly string[];
  /** Per value: the overrides it applies and its labels (key → override text). */
  readonly values: ReadonlyArray<{ readonly overrides: readonly string[]; readonly labels: Readonly<Record<string, string>> }>;
}

/** Reads and validates a sweep file; relative experiment paths are taken relative to the file. */
export async function readSweepFile(file: string): Promise<SweepFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ConfigError('sweep-file-unreadable', `cannot read sweep file ${file}.`, { hint: 'Check the path given to --file.', cause });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (cause) {
    throw new ConfigError('sweep-file-invalid-yaml', `${file}: not valid YAML.`, { hint: 'Fix the syntax error below.', cause });
  }
  const parsed = parseOrThrow(SweepFileSchema, raw ?? {}, { file }, 'sweep file');
  checkUnique(parsed.rows?.map((r) => r.name) ?? [], file, 'rows');
  checkUnique(parsed.datasets?.map((d) => (typeof d === 'string' ? d : d.name)) ?? [], file, 'datasets');
  if (parsed.experiment !== undefined && !path.isAbsolute(parsed.experiment)) {
    return { ...parsed, experiment: path.join(path.dirname(file), parsed.experiment) };
  }
  return parsed;
}

function checkUnique(names: readonly string[], file: string, key: string): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) {
      throw new ConfigError('sweep-duplicate-name', `${key} name "${name}" appears twice.`, { where: { file, key }, hint: 'Give every entry its own name; the table is keyed by it.' });
    }
    seen.add(name);
  }
}

/** The key a sweep argument sets: `train.lr=1e-4,3e-4` → `train.lr`, `+a.b=1` → `a.b`, `~a.b` → `a.b`. */
export function sweepArgumentKey(argument: string): string {
  const eq = argument.indexOf('=');
  return (eq < 0 ? argument : argument.slice(0, eq)).trim().replace(/^(\+\+|\+|~)/, '');
}

/**
 * Grid arguments of a sweep file and the command line, in that order; a key given on the command line replaces
 * the file's argument for that key (the command line wins, as for every override) instead of setting it twice.
 */
export function mergeGridArguments(fromFile: readonly string[], fromCommandLine: readonly string[]): string[] {
  const overridden = new Set(fromCommandLine.map(sweepArgumentKey));
  return [...fromFile.filter((argument) => !overridden.has(sweepArgumentKey(argument))), ...fromCommandLine];
}

/** A bare dataset name `camelyon16` means the group override `data=camelyon16`. */
export function normaliseDatasets(datasets: SweepFile['datasets']): NamedOverrides[] | undefined {
  return datasets?.map((d) => (typeof d === 'string' ? { name: d, overrides: [`data=${d}`] } : d));
}

/**
 * Expands a sweep into cells: rows (file order) × datasets (file order) × grid axes (argument order, the
 * last axis varying fastest, as Hydra's basic sweeper). Keys listed together in `zip` form one axis whose
 * i-th value sets the i-th value of each key.
 */
export function expandCells(definition: SweepDefinition, expand: ExpandArgument): SweepCell[] {
  const axes = gridAxes(definition, expand);
  const rows: ReadonlyArray<NamedOverrides | undefined> = definition.rows?.length ? definition.rows : [undefined];
  const datasets: ReadonlyArray<NamedOverrides | undefined> = definition.datasets?.length ? definition.datasets : [undefined];
  const cells: SweepCell[] = [];
  for (const row of rows) {
    for (const dataset of datasets) {
      for (const combination of product(axes)) {
        const params: Record<string, string> = {};
        const gridOverrides: string[] = [];
        combination.forEach((value, axisIndex) => {
          gridOverrides.push(...value.overrides);
          if ((axes[axisIndex]?.values.length ?? 0) > 1) Object.assign(params, value.labels);
        });
        const paramText = Object.entries(params).map(([key, value]) => `${key}=${value}`).join(' ');
        const name = [row?.name, dataset?.name, paramText || undefined].filter((p): p is string => p !== undefined).join(' | ') || 'default';
        cells.push({
          index: cells.length,
          name,
          ...(row ? { row: row.name } : {}),
          ...(dataset ? { dataset: dataset.name } : {}),
          params,
          overrides: [...(row?.overrides ?? []), ...(dataset?.overrides ?? []), ...gridOverrides],
        });
      }
    }
  }
  return cells;
}

function gridAxes(definition: SweepDefinition, expand: ExpandArgument): Axis[] {
  const where = definition.file ? { file: definition.file } : {};
  const expanded = definition.grid.map((argument) => ({ argument, ...expand(argument) }));
  const byKey = new Map<string, (typeof expanded)[number]>();
  for (const entry of expanded) {
    if (byKey.has(entry.key)) {
      throw new ConfigError('sweep-duplicate-key', `the sweep sets "${entry.key}" twice (${byKey.get(entry.key)?.argument} and ${entry.argument}).`, {
        where, hint: 'Give each key once; list all its values in one argument (a=1,2,3).',
      });
    }
    if (entry.overrides.length === 0) {
      throw new ConfigError('sweep-empty-axis', `sweep argument ${entry.argument} expands to no values.`, { where, hint: 'Check the range bounds or the value list.' });
    }
    byKey.set(entry.key, entry);
  }
  const zipOf = new Map<string, number>();
  definition.zip.forEach((group, groupIndex) => {
    for (const key of group) {
      if (!byKey.has(key)) {
        throw new ConfigError('sweep-zip-unknown-key', `--zip names "${key}", which no sweep argument sets.${didYouMean(key, [...byKey.keys()])}`, {
          where, hint: `Zip keys must be swept keys: ${[...byKey.keys()].join(', ') || 'none given'}.`,
        });
      }
      if (zipOf.has(key)) throw new ConfigError('sweep-zip-overlap', `"${key}" is in two --zip groups.`, { where, hint: 'A key can pair with one group only.' });
      zipOf.set(key, groupIndex);
    }
    const lengths = group.map((key) => byKey.get(key)?.overrides.length ?? 0);
    if (new Set(lengths).size > 1) {
      throw new ConfigError('sweep-zip-length-mismatch', `zipped keys need the same number of values; got ${group.map((k, i) => `${k}: ${lengths[i]}`).join(', ')}.`, {
        where, hint: 'Pair the values one to one, e.g. n=5,10 a=0.5,0.7 --zip n,a.',
      });
    }
  });
  const axes: Axis[] = [];
  const emitted = new Set<number>();
  for (const entry of expanded) {
    const group = zipOf.get(entry.key);
    if (group === undefined) {
      axes.push({ keys: [entry.key], values: entry.overrides.map((o) => ({ overrides: [o], labels: { [entry.key]: label(o) } })) });
      continue;
    }
    if (emitted.has(group)) continue;
    emitted.add(group);
    const members = (definition.zip[group] ?? []).map((key) => byKey.get(key)).filter((m): m is (typeof expanded)[number] => m !== undefined);
    const count = members[0]?.overrides.length ?? 0;
    const values = Array.from({ length: count }, (_, i) => ({
      overrides: members.map((m) => m.overrides[i] as string),
      labels: Object.fromEntries(members.map((m) => [m.key, label(m.overrides[i] as string)])),
    }));
    axes.push({ keys: members.map((m) => m.key), values });
  }
  return axes;
}

/** The value an override sets, as written (`train.lr=1e-4` → `1e-4`; a deletion `~key` → `deleted`). */
function label(override: string): string {
  const eq = override.indexOf('=');
  if (override.startsWith('~')) return 'deleted';
  return eq < 0 ? override : override.slice(eq + 1);
}

function* product(axes: readonly Axis[]): Generator<Array<Axis['values'][number]>> {
  if (axes.length === 0) {
    yield [];
    return;
  }
  const [first, ...rest] = axes as [Axis, ...Axis[]];
  for (const value of first.values) {
    for (const tail of product(rest)) yield [value, ...tail];
  }
}
