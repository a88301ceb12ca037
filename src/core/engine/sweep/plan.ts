// Planning a sweep: compose and validate every cell's config before any job starts (fail before compute),
// then derive the jobs — one per cell × fold, id = hash(resolved config, fold). Cells whose resolved configs
// coincide share their jobs, so a duplicated row never trains twice.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { ConfigError, MilkitError, renderError } from '../../errors.js';
import type { SweepCell, SweepDefinition } from './spec.js';
import type { PlannedCellRecord } from './state.js';

/** What planning needs from config composition for one cell. */
export interface ComposedCell {
  /** sha256 of the resolved config (ResolvedExperiment.configHash). */
  readonly configHash: string;
  /** Number of folds the resolved config runs (split.folds). */
  readonly folds: number;
  /** The resolved config as YAML, saved next to the cell's jobs. */
  readonly configYaml: string;
}

/** Composes and validates one cell (the CLI passes loadExperiment; tests pass fakes). */
export type ComposeCell = (experimentFile: string, overrides: readonly string[]) => Promise<ComposedCell>;

export interface PlannedJob {
  readonly id: string;
  readonly fold: number;
  /** The first cell that needs this job (its overrides are the job's). */
  readonly cell: number;
  readonly label: string;
  readonly overrides: readonly string[];
  readonly configYaml: string;
}

export interface SweepPlan {
  readonly specHash: string;
  readonly cells: readonly PlannedCellRecord[];
  /** Unique jobs, in cell order then fold order. */
  readonly jobs: readonly PlannedJob[];
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Stable job id: the first 16 hex digits of sha256(configHash, fold). */
export function jobId(configHash: string, fold: number): string {
  return sha256(`milkit-job\0${configHash}\0fold=${fold}`).slice(0, 16);
}

/**
 * Identity of the sweep's state folder: the experiment path (relative to cwd) and every cell's name and
 * overrides. Editing the experiment YAML keeps the folder (changed cells get new job ids, unchanged ones resume).
 */
export function sweepSpecHash(experimentFile: string, cwd: string, cells: readonly SweepCell[]): string {
  const relative = path.relative(cwd, path.resolve(cwd, experimentFile)).split(path.sep).join('/');
  return sha256(JSON.stringify({ experiment: relative, cells: cells.map((c) => [c.name, c.overrides]) })).slice(0, 8);
}

/** Composes every cell; throws one ConfigError listing every cell that does not compose. */
export async function planSweep(definition: SweepDefinition, cells: readonly SweepCell[], compose: ComposeCell, cwd: string): Promise<SweepPlan> {
  if (cells.length === 0) throw new ConfigError('sweep-empty', 'the sweep has no cells.', { hint: 'Give sweep arguments (a=1,2) or rows in a sweep file.' });
  const composed: Array<ComposedCell | undefined> = [];
  // Identical errors (a bad override shared by every cell) are reported once, with the cells they hit.
  const failures = new Map<string, SweepCell[]>();
  for (const cell of cells) {
    try {
      const result = await compose(definition.experimentFile, cell.overrides);
      if (!Number.isInteger(result.folds) || result.folds < 1) {
        throw new ConfigError('sweep-no-folds', `the resolved config runs ${String(result.folds)} folds.`, { hint: 'Set split.folds ≥ 1.' });
      }
      composed.push(result);
    } catch (error) {
      // Unexpected (non-milkit) errors are bugs, not bad cells: surface them as they are.
      if (!(error instanceof MilkitError)) throw error;
      composed.push(undefined);
      const text = renderError(error);
      failures.set(text, [...(failures.get(text) ?? []), cell]);
    }
  }
  if (failures.size > 0) {
    const failed = [...failures.values()].reduce((n, group) => n + group.length, 0);
    const blocks = [...failures.entries()].map(([text, group]) => `${describeCells(group)}:\n${indent(text, '    ')}`);
    throw new ConfigError('sweep-invalid-cells', `${failed} of ${cells.length} sweep cells do not compose; no job was started:\n${blocks.join('\n')}`, {
      ...(definition.file ? { where: { file: definition.file } } : {}),
      hint: 'Fix the overrides or configs named above and run the sweep again.',
    });
  }
  const jobs: PlannedJob[] = [];
  const seen = new Set<string>();
  const records: PlannedCellRecord[] = cells.map((cell, i) => {
    const result = composed[i] as ComposedCell;
    const jobIds: string[] = [];
    for (let fold = 0; fold < result.folds; fold += 1) {
      const id = jobId(result.configHash, fold);
      jobIds.push(id);
      if (seen.has(id)) continue;
      seen.add(id);
      jobs.push({ id, fold, cell: cell.index, label: `${cell.name} · fold ${fold}`, overrides: cell.overrides, configYaml: result.configYaml });
    }
    return {
      index: cell.index,
      name: cell.name,
      ...(cell.row !== undefined ? { row: cell.row } : {}),
      ...(cell.dataset !== undefined ? { dataset: cell.dataset } : {}),
      params: { ...cell.params },
      overrides: [...cell.overrides],
      configHash: result.configHash,
      folds: result.folds,
      jobIds,
    };
  });
  return { specHash: sweepSpecHash(definition.experimentFile, cwd, cells), cells: records, jobs };
}

/** `  cell 4 "name" [overrides]` for one cell; `  cells 1, 2, 3 ("a", "b", "c")` for several (the first 5 named). */
function describeCells(group: readonly SweepCell[]): string {
  const [first] = group;
  if (group.length === 1 && first) return `  cell ${first.index + 1} "${first.name}" [${first.overrides.join(' ') || 'no overrides'}]`;
  const shown = group.slice(0, 5).map((c) => `${c.index + 1} "${c.name}"`).join(', ');
  return `  ${group.length} cells: ${shown}${group.length > 5 ? `, and ${group.length - 5} more` : ''}`;
}

function indent(text: string, prefix: string): string {
  return text.split('\n').map((line) => prefix + line).join('\n');
}
