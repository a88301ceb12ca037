// MLflow structure of a sweep: the sweep is a parent run, each cell a child run (its resolved config as
// params, cross-fold mean/std as metrics), each fold a grandchild created by the job that trains it.
// Run ids are kept in the sweep's state folder so a resumed sweep continues the same runs.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import type { Logger } from '../../logger.js';
import type { Tracker } from '../../../registry/contracts/tracker.js';
import { flattenParams, systemTags } from '../../tracking/index.js';
import type { ComparisonResult } from '../../stats/compare.js';
import { methodFootnote } from '../../stats/report.js';
import { rowLabel } from './comparison.js';
import type { SweepPlan } from './plan.js';
import { writeAtomic } from './state.js';
import type { SweepTable } from './table.js';

/** What the sweep engine asks of tracking: open runs before jobs start, close them after the table. */
export interface SweepTracking {
  /** Returns the run each cell's fold runs nest under, by cell index. */
  open(plan: SweepPlan, stateDir: string, sweepName: string): Promise<ReadonlyMap<number, string>>;
  /** Logs the cells' summaries, the comparison with the baseline (when there is one) and the table artifacts. */
  /** `interrupted`: stopped by a signal, so unfinished cells and the sweep run end KILLED rather than FAILED. */
  close(table: SweepTable, stateDir: string, artifacts: readonly string[], comparison?: ComparisonResult, interrupted?: boolean): Promise<void>;
}

interface TrackingFile {
  /** Identity of the tracking target the runs below live in (see SweepTrackingOptions.target). */
  target?: string;
  sweepRunId: string;
  /** configHash → cell run id. */
  cells: Record<string, string>;
}

export interface SweepTrackingOptions {
  readonly tracker: Tracker;
  readonly experimentName: string;
  readonly logger: Logger;
  readonly cwd: string;
  /** The resolved config of a cell by its hash (the CLI composed them while planning). */
  readonly configOf: (configHash: string) => unknown;
  /**
   * Identity of the tracking target (e.g. a hash of the `tracking:` section). Tracking settings are not part of the
   * config hash, so a re-run may log elsewhere with the same cells: the run ids saved for another target are not
   * reused, and the sweep and its cells get new runs there.
   */
  readonly target?: string;
}

export function createSweepTracking(options: SweepTrackingOptions): SweepTracking {
  const { tracker } = options;
  let state: TrackingFile | undefined;
  let plan: SweepPlan | undefined;
  return {
    async open(sweepPlan, stateDir, sweepName) {
      plan = sweepPlan;
      const file = path.join(stateDir, 'tracking.json');
      state = await readFile(file, 'utf8').then((t) => JSON.parse(t) as TrackingFile).catch(() => undefined);
      if (state && state.target !== options.target) {
        options.logger.info(`sweep ${sweepName}: the tracking settings changed since the last run; logging to new sweep and cell runs.`);
        state = undefined;
      }
      if (!state) {
        const runName = `sweep-${sweepName}`;
        const sweepRunId = await tracker.startRun({
          experimentName: options.experimentName,
          runName,
          tags: { ...systemTags({ runName, cwd: options.cwd }), 'milkit.level': 'sweep', 'milkit.run_key': `sweep:${sweepPlan.specHash}`, 'milkit.sweep': sweepName },
        });
        await tracker.logParams(sweepRunId, { 'sweep.name': sweepName, 'sweep.cells': String(sweepPlan.cells.length), 'sweep.jobs': String(sweepPlan.jobs.length) });
        state = { ...(options.target !== undefined ? { target: options.target } : {}), sweepRunId, cells: {} };
      }
      const byCell = new Map<number, string>();
      for (const cell of sweepPlan.cells) {
        let runId = state.cells[cell.configHash];
        if (runId === undefined) {
          runId = await tracker.startRun({
            experimentName: options.experimentName,
            runName: cell.name,
            parentRunId: state.sweepRunId,
            tags: {
              'milkit.level': 'cell', 'milkit.run_key': cell.configHash, 'milkit.configHash': cell.configHash,
              ...(cell.overrides.length ? { 'mlflow.note.content': `overrides: ${cell.overrides.join(' ')}` } : {}),
            },
          });
          const { params, oversized } = flattenParams(options.configOf(cell.configHash));
          await tracker.logParams(runId, params);
          if (Object.keys(oversized).length > 0) {
            const oversizedFile = path.join(stateDir, `params.oversized.${cell.configHash.slice(0, 12)}.json`);
            await writeAtomic(oversizedFile, JSON.stringify(oversized, null, 2));
            await tracker.logArtifact(runId, oversizedFile);
          }
          state.cells[cell.configHash] = runId;
          await writeAtomic(file, JSON.stringify(state, null, 2));
        }
        byCell.set(cell.index, runId);
      }
      await writeAtomic(file, JSON.stringify(state, null, 2));
      await tracker.flush();
      return byCell;
    },
    async close(table, _stateDir, artifacts, comparison, interrupted) {
      if (!state || !plan) return;
      const now = Date.now();
      let allDone = true;
      for (const summary of table.cells) {
        const runId = state.cells[summary.cell.configHash];
        if (runId === undefined) continue;
        const points = Object.entries(summary.metrics).flatMap(([metric, stat]) => [
          ...(stat.mean !== null ? [{ key: `test/${metric}_mean`, value: stat.mean, step: 0, timestamp: now }] : []),
          ...(stat.std !== null ? [{ key: `test/${metric}_std`, value: stat.std, step: 0, timestamp: now }] : []),
        ]).filter((p) => !p.key.includes('/s/slide'));
        if (comparison) points.push(...comparisonPoints(comparison, summary.cell, now));
        if (points.length) await tracker.logMetrics(runId, points);
        const complete = summary.done === summary.cell.folds;
        allDone &&= complete;
        await tracker.endRun(runId, complete ? 'FINISHED' : interrupted ? 'KILLED' : 'FAILED');
      }
      if (comparison) {
        const baselines = [...new Set(comparison.rows.filter((r) => r.isBaseline).map((r) => r.label))];
        await tracker.logParams(state.sweepRunId, {
          'stats.baseline': baselines.join(', ').slice(0, 500),
          'stats.test': 'corrected resampled t-test (Nadeau-Bengio 2003), Holm across rows',
          'stats.alpha': String(comparison.alpha),
          'stats.confidence': String(comparison.confidence),
          'stats.beside': `DeLong (binary AUC), paired patient bootstrap (${comparison.bootstrapResamples} resamples); median over repeats`,
        });
        await tracker.setTags(state.sweepRunId, { 'mlflow.note.content': methodFootnote(comparison) });
        const sweepPoints = sweepComparisonPoints(comparison, now);
        if (sweepPoints.length) await tracker.logMetrics(state.sweepRunId, sweepPoints);
      }
      for (const artifact of artifacts) await tracker.logArtifact(state.sweepRunId, artifact);
      await tracker.endRun(state.sweepRunId, allDone ? 'FINISHED' : interrupted ? 'KILLED' : 'FAILED');
      await tracker.flush();
    },
  };
}

/**
 * A cell's comparison with the baseline as metrics: `compare/<metric>/effect`, `ci_low`, `ci_high`, `p_holm`,
 * `mark` (+1 ▲, −1 ▼, 0 ≈), `delong_p`, `bootstrap_p`. The baseline cell logs none.
 */
function comparisonPoints(comparison: ComparisonResult, cell: SweepTable['cells'][number]['cell'], timestamp: number): Array<{ key: string; value: number; step: number; timestamp: number }> {
  const row = comparison.rows.find((r) => r.label === rowLabel(cell) && r.group === cell.dataset);
  if (!row || row.isBaseline) return [];
  const points: Array<{ key: string; value: number; step: number; timestamp: number }> = [];
  const add = (key: string, value: number | null | undefined): void => {
    if (typeof value === 'number' && Number.isFinite(value)) points.push({ key, value, step: 0, timestamp });
  };
  for (const m of row.metrics) {
    const prefix = `compare/${m.metric}`;
    add(`${prefix}/effect`, m.tTest?.effect);
    add(`${prefix}/ci_low`, m.tTest?.ci?.[0]);
    add(`${prefix}/ci_high`, m.tTest?.ci?.[1]);
    add(`${prefix}/p_holm`, m.adjustedP);
    add(`${prefix}/mark`, m.mark === '▲' ? 1 : m.mark === '▼' ? -1 : m.mark === '≈' ? 0 : null);
    add(`${prefix}/delong_p`, m.delong?.p);
    add(`${prefix}/bootstrap_p`, m.bootstrap?.p);
  }
  return points;
}

/** A row label or dataset as one MLflow key segment: other characters become "_", at most 80 characters. */
function keySegment(text: string): string {
  const cleaned = text.replace(/[^\p{L}\p{N}\p{M}_\-. :]+/gu, '_').replace(/^[. ]+|[. ]+$/g, '_').slice(0, 80);
  return cleaned === '' ? '_' : cleaned;
}

/** The whole comparison on the sweep run: `compare/[<dataset>/]<row>/<metric>/effect`, `p_holm`, `mark`. */
function sweepComparisonPoints(comparison: ComparisonResult, timestamp: number): Array<{ key: string; value: number; step: number; timestamp: number }> {
  const points: Array<{ key: string; value: number; step: number; timestamp: number }> = [];
  for (const row of comparison.rows) {
    if (row.isBaseline) continue;
    const prefix = ['compare', ...(row.group !== undefined ? [keySegment(row.group)] : []), keySegment(row.label)].join('/');
    for (const m of row.metrics) {
      const values: Array<[string, number | null | undefined]> = [
        ['effect', m.tTest?.effect], ['p_holm', m.adjustedP], ['mark', m.mark === '▲' ? 1 : m.mark === '▼' ? -1 : m.mark === '≈' ? 0 : null],
      ];
      for (const [name, value] of values) {
        if (typeof value === 'number' && Number.isFinite(value)) points.push({ key: `${prefix}/${keySegment(m.metric)}/${name}`, value, step: 0, timestamp });
      }
    }
  }
  return points;
}

/** Parses a cell's resolved-config YAML (what the CLI keeps per cell) back to an object for params. */
export function configFromYaml(text: string): unknown {
  return YAML.parse(text);
}
